"""Spectral gating keeps the input's shape and removes stationary noise."""

import numpy as np

from restoration.gating import spectral_gate
from restoration.metrics import measure
from restoration.settings import GatingSettings
from signals import SR, tone_then_noise_bed


def test_gating_keeps_shape_rate_and_does_not_touch_input():
    x = np.concatenate([tone_then_noise_bed(), tone_then_noise_bed(seed=4)])
    before = x.copy()
    y = spectral_gate(x, SR)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_stationary_gating_lowers_the_noise_bed():
    x = tone_then_noise_bed(bed_dbfs=-50.0)
    y = spectral_gate(x, SR, settings=GatingSettings(stationary=True))
    assert measure(y, SR)["noise_floor_dbfs"] < measure(x, SR)["noise_floor_dbfs"] - 10.0


def test_prop_decrease_zero_is_identity_in_level():
    x = tone_then_noise_bed(bed_dbfs=-50.0)
    y = spectral_gate(x, SR, settings=GatingSettings(stationary=True, prop_decrease=0.0))
    assert abs(measure(y, SR)["noise_floor_dbfs"] - measure(x, SR)["noise_floor_dbfs"]) < 1.0

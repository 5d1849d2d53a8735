"""Known-answer tests of the metrics (FACTS.md, issue 2 item 10)."""

import json
import math

import numpy as np
import pytest

from restoration.audio import resample
from restoration.metrics import measure, measure_versions
from restoration.settings import MetricSettings
from signals import SR, lowpassed_noise, sine, tone_then_noise_bed, white_noise


def test_white_noise_flatness_is_exp_minus_gamma():
    m = measure(white_noise(), SR)
    assert m["spectral_flatness"] == pytest.approx(math.exp(-np.euler_gamma), abs=0.02)  # ≈ 0.56


def test_sine_flatness_is_about_zero():
    assert measure(sine(), SR)["spectral_flatness"] < 0.01


def test_flatness_ignores_digital_silence():
    noise = white_noise(2.0)
    padded = np.concatenate([noise, np.zeros_like(noise)], axis=-1)  # half the frames all-zero
    assert measure(padded, SR)["spectral_flatness"] == pytest.approx(measure(noise, SR)["spectral_flatness"], abs=0.02)


def test_gain_scaled_copy_has_zero_hber_delta():
    x = white_noise()
    m = measure(x * 0.25, SR, reference=x)
    assert m["hber_delta_db"] == pytest.approx(0.0, abs=1e-6)
    assert all(abs(v) < 1e-6 for v in m["hber_bands_db"].values())


def test_lowpassed_noise_has_strongly_negative_hber_delta():
    x = white_noise()
    m = measure(lowpassed_noise(4000.0), SR, reference=x)
    assert m["hber_delta_db"] < -30.0
    assert m["hber_bands_db"]["8-12kHz"] < -30.0
    assert m["hber_bands_db"]["4-8kHz"] < -3.0


def test_hber_is_defined_only_for_outputs():
    m = measure_versions({"input": white_noise(), "out": white_noise(seed=3)}, SR)
    assert m["input"]["hber_delta_db"] is None and "reference" in m["input"]["notes"]["hber_delta_db"]
    assert m["input"]["hber_bands_db"] == {"4-8kHz": None, "8-12kHz": None, "12-15kHz": None}
    assert m["out"]["hber_delta_db"] is not None


def test_hber_cutoff_is_configurable():
    x = white_noise()
    y = lowpassed_noise(6000.0)
    low = measure(y, SR, reference=x, settings=MetricSettings(hber_cutoff_hz=2000.0))["hber_delta_db"]
    high = measure(y, SR, reference=x, settings=MetricSettings(hber_cutoff_hz=8000.0))["hber_delta_db"]
    assert high < -30.0 < low


def test_noise_bed_under_silence_gives_its_level():
    m = measure(tone_then_noise_bed(bed_dbfs=-60.0), SR)
    assert m["noise_floor_dbfs"] == pytest.approx(-60.0, abs=2.0)
    assert m["silent_frames"] == 40  # 2 s of 50 ms frames


def test_dense_music_noise_floor_is_null_with_reason_never_nan():
    m = measure(white_noise(), SR)
    assert m["noise_floor_dbfs"] is None and m["silent_frames"] == 0
    assert "undefined" in m["notes"]["noise_floor_dbfs"]
    assert m["noise_floor_p10_dbfs"] == pytest.approx(-20.0, abs=1.0)  # 0.1 RMS noise


def test_p10_floor_is_clamped_for_digital_silence():
    m = measure(np.zeros((1, SR * 2), np.float32), SR)
    assert m["noise_floor_p10_dbfs"] == -120.0
    assert m["spectral_flatness"] is None and "silence" in m["notes"]["spectral_flatness"]
    json.dumps(m, allow_nan=False)


def test_sine_loudness_and_peak():
    m = measure(sine(1000.0, peak=0.1), SR)
    assert m["lufs"] == pytest.approx(-23.0, abs=0.1)
    assert m["peak_dbfs"] == pytest.approx(-20.0, abs=0.01)


def test_bandwidth_rolloff():
    assert measure(lowpassed_noise(4000.0), SR)["bandwidth_hz"] == pytest.approx(4000.0, rel=0.08)
    # white noise fills the analysis band, which stops at 15 kHz for 32 kHz audio
    assert measure(white_noise(), SR)["bandwidth_hz"] == pytest.approx(15000.0, rel=0.02)


def test_residual_of_half_gain_is_minus_6_db():
    x = white_noise()
    assert measure(x * 0.5, SR, reference=x)["residual_db"] == pytest.approx(20 * math.log10(0.5), abs=0.01)
    assert measure(x.copy(), SR, reference=x)["residual_db"] == -120.0  # identical → floor, finite


def test_resampler_cannot_pass_for_restoration():
    """A 32 kHz input round-tripped through 44.1 kHz measures as unchanged in the common band."""
    x = white_noise()
    y = resample(resample(x, orig_rate=SR, target_rate=44100), orig_rate=44100, target_rate=SR)
    m = measure(y, SR, reference=x)
    assert abs(m["hber_delta_db"]) < 0.2
    assert m["spectral_flatness"] == pytest.approx(measure(x, SR)["spectral_flatness"], abs=0.01)


def test_multichannel_metrics_are_channel_means():
    left, right = white_noise(seed=1), lowpassed_noise(4000.0, seed=2)
    stereo = np.concatenate([left, right])
    m = measure(stereo, SR)
    expected = (measure(left, SR)["spectral_flatness"] + measure(right, SR)["spectral_flatness"]) / 2
    assert m["spectral_flatness"] == pytest.approx(expected, rel=1e-6)


def test_band_limit_follows_low_sample_rates():
    sr = 22050
    x = white_noise(sr=sr)
    m = measure(x * 0.5, sr, reference=x)
    assert m["analysis_band_hz"] == pytest.approx(0.47 * sr)
    assert m["hber_bands_db"]["12-15kHz"] is None and "12-15kHz" in m["notes"]["hber_bands_db"]


def test_every_value_is_finite_or_null_with_note():
    versions = {"input": tone_then_noise_bed(), "quiet": np.zeros((1, 4 * SR), np.float32)}
    table = measure_versions(versions, SR)
    text = json.dumps(table, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    for values in table.values():
        for key, value in values.items():
            if value is None:
                assert key in values["notes"], key

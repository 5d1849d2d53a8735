"""Known answers of the full-reference metrics, on a multi-instrument piece rendered by FluidSynth."""

from __future__ import annotations

import numpy as np
import pytest

from restoration import reference_metrics as rm
from restoration.audio import lowpass

METRICS = tuple(rm.REFERENCE_METRIC_INFO)


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """6 s of the built-in jazz piece (drums, walking bass, piano, tenor sax), 44.1 kHz stereo."""
    import soundfile as sf

    from restoration import cleanset

    path = cleanset.render(cleanset.compose(cleanset.PIECES[2], seconds=8.0),
                           tmp_path_factory.mktemp("music") / "jazz.wav")
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 44100 and audio.shape[1] == 2
    return np.ascontiguousarray(audio.T[:, rate:7 * rate]), rate


def noisy(x: np.ndarray, level_db: float, seed: int = 0) -> np.ndarray:
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).standard_normal(x.shape) * rms * 10 ** (level_db / 20)
    return (x + noise).astype(np.float32)


def better(metric: str, a: float, b: float) -> bool:
    """Whether value ``a`` of ``metric`` is strictly closer to the reference than ``b``."""
    return a > b if rm.higher_is_better(metric) else a < b


@pytest.fixture(scope="module")
def damage(music):
    x, sr = music
    versions = {"identical": x.copy()}
    for cutoff in (16000, 8000, 4000):
        versions[f"lowpass {cutoff}"] = lowpass(x, sr, cutoff_hz=cutoff)
    for level in (-40, -30, -20):
        versions[f"noise {level}"] = noisy(x, level)
    return rm.measure_versions_against(x, versions, sr)


def test_identical_signals_get_each_metric_s_best_value(damage):
    best = damage["identical"]
    assert best["si_sdr_db"] == pytest.approx(rm.SI_SDR_CAP_DB)
    assert best["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    assert best["mel_distance_db"] == pytest.approx(0.0, abs=1e-9)
    assert best["zimtohrli_mos"] == pytest.approx(5.0, abs=1e-6)
    for name, values in damage.items():
        for metric in METRICS:
            assert values[metric] is not None
            if name != "identical":
                assert better(metric, best[metric], values[metric]), (metric, name)


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_worsens_as_the_low_pass_cutoff_falls(damage, metric):
    chain = [damage[k][metric] for k in ("identical", "lowpass 16000", "lowpass 8000", "lowpass 4000")]
    assert all(better(metric, a, b) for a, b in zip(chain, chain[1:])), chain


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_worsens_as_added_noise_rises(damage, metric):
    chain = [damage[k][metric] for k in ("identical", "noise -40", "noise -30", "noise -20")]
    assert all(better(metric, a, b) for a, b in zip(chain, chain[1:])), chain


@pytest.mark.parametrize("gain", [0.05, 1.0, 3.0, -2.0])
def test_si_sdr_of_noise_20_db_down_is_20_db_whatever_the_gain(music, gain):
    x, _ = music
    estimate = gain * noisy(x, -20.0, seed=7)
    assert rm.si_sdr_db(x, estimate) == pytest.approx(20.0, abs=0.5)


def test_lsd_of_a_rescaled_copy_is_zero(music):
    x, sr = music
    assert rm.log_spectral_distance_db(x, 2.0 * x, sr) == pytest.approx(0.0, abs=1e-6)
    assert rm.mel_distance_db(x, 2.0 * x, sr) == pytest.approx(0.0, abs=1e-6)


def test_the_rescaled_metrics_ignore_level_but_not_damage(music):
    x, sr = music
    damaged = noisy(x, -30.0)
    quiet = rm.measure_against(x, 0.25 * damaged, sr)
    loud = rm.measure_against(x, damaged, sr)
    for metric in METRICS:
        assert quiet[metric] == pytest.approx(loud[metric], abs=1e-3 if metric != "zimtohrli_mos" else 0.02), metric
    assert quiet["ls_gain_db"] == pytest.approx(loud["ls_gain_db"] + 12.04, abs=0.05)


def test_spectral_metrics_ignore_what_lies_above_the_band(music):
    """A difference only above 15 kHz changes SI-SDR but not the band-limited spectral metrics' order of magnitude."""
    from scipy.signal import butter, sosfiltfilt

    x, sr = music
    sos = butter(8, 16500, btype="high", fs=sr, output="sos")
    hiss = sosfiltfilt(sos, np.random.default_rng(3).standard_normal(x.shape), axis=-1) * 0.01
    values = rm.measure_against(x, (x + hiss).astype(np.float32), sr)
    assert values["lsd_db"] < 0.5 and values["mel_distance_db"] < 0.1
    assert values["si_sdr_db"] < 60.0


def test_a_frames_first_array_or_a_shape_mismatch_is_bad_input(music):
    from restoration.errors import BadInputError

    x, sr = music
    with pytest.raises(BadInputError):
        rm.si_sdr_db(x.T, x.T)
    with pytest.raises(BadInputError):
        rm.measure_against(x, x[:, :-1], sr)


def test_improvement_is_signed_so_that_positive_means_closer():
    assert rm.improvement("si_sdr_db", estimate=12.0, degraded=10.0) == pytest.approx(2.0)
    assert rm.improvement("lsd_db", estimate=3.0, degraded=5.0) == pytest.approx(2.0)
    assert rm.improvement("zimtohrli_mos", estimate=2.0, degraded=3.0) == pytest.approx(-1.0)
    assert rm.improvement("mel_distance_db", estimate=None, degraded=3.0) is None

"""Known-answer tests of the metrics (the facts they rest on: docs/FACTS.md)."""

import json
import math

import numpy as np
import pytest

from restoration.audio import integrated_lufs, loudness_match, resample
from restoration.errors import BadInputError
from restoration.metrics import CSV_METRICS, METRIC_INFO, METRICS, measure, measure_versions, registry_markdown
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
    assert m["noise_floor_raw_dbfs"] == pytest.approx(-60.0, abs=2.0)
    assert m["silent_frames_raw"] == 40  # 2 s of 50 ms frames


def test_matched_floors_are_the_raw_ones_moved_by_the_matching_gain():
    x = tone_then_noise_bed(bed_dbfs=-60.0)
    m = measure(x, SR)
    gain_db = -23.0 - integrated_lufs(x, SR)  # the tone's peak stays far below the −1 dBFS ceiling
    assert m["loudness_matched_lufs"] == pytest.approx(-23.0, abs=0.05)
    assert m["noise_floor_dbfs"] == pytest.approx(m["noise_floor_raw_dbfs"] + gain_db, abs=0.01)
    assert m["noise_floor_p10_dbfs"] == pytest.approx(m["noise_floor_p10_raw_dbfs"] + gain_db, abs=0.01)


def test_a_quieter_copy_has_a_lower_raw_floor_but_the_same_matched_floor():
    """Gating-like level loss: 0.1 × x reads 20 dB lower raw, and the same once loudness-matched."""
    x = tone_then_noise_bed(bed_dbfs=-50.0)
    table = measure_versions({"input": x, "quiet": (0.1 * x).astype(np.float32)}, SR)
    raw = table["quiet"]["noise_floor_raw_dbfs"] - table["input"]["noise_floor_raw_dbfs"]
    fair = table["quiet"]["noise_floor_dbfs"] - table["input"]["noise_floor_dbfs"]
    assert raw == pytest.approx(-20.0, abs=0.01)
    assert fair == pytest.approx(0.0, abs=0.01)
    assert table["quiet"]["silent_frames"] == table["input"]["silent_frames"] == 40
    assert table["quiet"]["noise_floor_p10_dbfs"] == pytest.approx(table["input"]["noise_floor_p10_dbfs"], abs=0.01)


def test_measure_versions_matches_like_the_listening_copies():
    x = tone_then_noise_bed(bed_dbfs=-50.0)
    versions = {"input": x, "quiet": (0.3 * x).astype(np.float32)}
    matched, _ = loudness_match(versions, SR)
    table = measure_versions(versions, SR)
    for name in versions:
        assert table[name]["loudness_matched_lufs"] == pytest.approx(integrated_lufs(matched[name], SR), abs=1e-9)


def test_dense_music_noise_floor_is_null_with_reason_never_nan():
    m = measure(white_noise(), SR)
    assert m["noise_floor_dbfs"] is None and m["silent_frames"] == 0
    assert m["noise_floor_raw_dbfs"] is None and m["silent_frames_raw"] == 0
    assert "undefined" in m["notes"]["noise_floor_dbfs"] and "undefined" in m["notes"]["noise_floor_raw_dbfs"]
    assert m["noise_floor_p10_raw_dbfs"] == pytest.approx(-20.0, abs=1.0)  # 0.1 RMS noise


def test_p10_floor_is_clamped_for_digital_silence():
    m = measure(np.zeros((1, SR * 2), np.float32), SR)
    assert m["noise_floor_p10_dbfs"] == m["noise_floor_p10_raw_dbfs"] == -120.0
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


def test_identical_stereo_channels_measure_mono_plus_3_01_db_like_pyloudnorm():
    import pyloudnorm

    mono = sine(1000.0, peak=0.1)
    stereo = np.repeat(mono, 2, axis=0)
    direct = pyloudnorm.Meter(SR).integrated_loudness(stereo.T.astype(np.float64))
    m_mono, m_stereo = measure(mono, SR)["lufs"], measure(stereo, SR)["lufs"]
    assert m_mono == pytest.approx(-23.0, abs=0.1)
    assert m_stereo == pytest.approx(m_mono + 10 * math.log10(2), abs=0.01)  # BS.1770 sums channel powers
    assert m_stereo == pytest.approx(direct, abs=1e-9)


def test_silent_frames_is_an_int_for_any_channel_count():
    bed = tone_then_noise_bed(bed_dbfs=-60.0)
    for audio in (bed, np.repeat(bed, 2, axis=0)):
        m = measure(audio, SR)
        for key in ("silent_frames", "silent_frames_raw"):
            assert type(m[key]) is int and m[key] == 40


@pytest.mark.parametrize("shape", [(SR, 2), (SR, 1), (4000, 9)])
def test_a_frames_first_array_is_bad_input(shape):
    x = np.zeros(shape, np.float32) + white_noise(1.0)[0, : shape[0], None]
    with pytest.raises(BadInputError, match="channels, frames"):
        measure(x, SR)
    with pytest.raises(BadInputError, match="channels, frames"):
        measure_versions({"input": white_noise(1.0, channels=2), "out": x}, SR)
    with pytest.raises(BadInputError):
        measure(white_noise(1.0), SR, reference=x)


@pytest.mark.parametrize("bad", [np.zeros((1, 2, SR), np.float32), np.zeros((1, 0), np.float32),
                                 np.full((1, SR), np.nan, np.float32), np.array(["a", "b"])])
def test_other_malformed_arrays_are_bad_input_not_librosa_errors(bad):
    with pytest.raises(BadInputError):
        measure(bad, SR)


def test_reference_of_another_shape_is_bad_input():
    with pytest.raises(BadInputError, match="differs"):
        measure(white_noise(1.0), SR, reference=white_noise(1.0, channels=2))


def test_registry_drives_the_table_the_csv_and_the_readme():
    from pathlib import Path

    names = [m.name for m in METRICS]
    assert list(CSV_METRICS) == names and len(set(names)) == len(names)
    assert list(METRIC_INFO) == [m.name for m in METRICS if m.in_table]
    measured = measure(white_noise(1.0), SR, reference=white_noise(1.0, seed=4))
    scalar = {k for k, v in measured.items() if not isinstance(v, dict)}
    assert set(names) <= scalar
    assert {m.level for m in METRICS} == {"raw", "matched", "gain-invariant"}
    assert all(m.name.endswith(("_raw", "_raw_dbfs")) for m in METRICS if not m.in_table)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert registry_markdown() in readme

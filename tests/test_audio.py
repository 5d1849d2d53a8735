"""Audio I/O, validation and loudness matching."""

import numpy as np
import pytest
import soundfile as sf

from restoration.audio import (
    apply_fades,
    integrated_lufs,
    loudness_match,
    peak_dbfs,
    read_audio,
    resample,
    validate_audio,
    write_wav,
)
from restoration.errors import BadInputError
from signals import SR, sine, white_noise


def test_read_keeps_native_rate_and_layout(tmp_path):
    x = np.concatenate([white_noise(1.0, sr=48000), white_noise(1.0, sr=48000, seed=5)])
    path = write_wav(tmp_path / "a.wav", x, 48000)
    y, sr = read_audio(path)
    assert sr == 48000 and y.shape == (2, 48000) and y.dtype == np.float32
    np.testing.assert_array_equal(x, y)  # 32-bit float WAV is lossless


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_reads_flac_ogg_mp3(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, sine(440.0, 1.0, sr=44100)[0], 44100, format=fmt, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == 44100 and y.shape[0] == 1 and abs(y.shape[1] - 44100) < 2000


@pytest.mark.parametrize(
    "name,content,message",
    [("missing.wav", None, "not found"), ("empty.wav", b"", "empty"), ("text.wav", b"hello, not audio", "cannot read")],
)
def test_bad_files_are_bad_input(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=message):
        read_audio(path)


def test_validation_rejects_nan_zero_samples_many_channels_and_too_long(monkeypatch):
    with pytest.raises(BadInputError, match="NaN"):
        validate_audio(np.array([[0.0, np.nan]]), SR)
    with pytest.raises(BadInputError, match="zero samples"):
        validate_audio(np.zeros((1, 0)), SR)
    with pytest.raises(BadInputError, match="channels"):
        validate_audio(np.zeros((9, 100)), SR)
    monkeypatch.setenv("RESTORATION_MAX_SECONDS", "1")
    with pytest.raises(BadInputError, match="RESTORATION_MAX_SECONDS"):
        validate_audio(np.zeros((1, 2 * SR)), SR)


def test_loudness_match_equalises_lufs_under_peak_ceiling():
    versions = {"a": sine(1000.0, peak=0.5), "b": white_noise(rms=0.01), "c": sine(300.0, peak=0.05)}
    matched, info = loudness_match(versions, SR, target_lufs=-23.0, peak_ceiling_dbfs=-1.0)
    lufs = [integrated_lufs(v, SR) for v in matched.values()]
    assert max(lufs) - min(lufs) < 0.1
    assert all(peak_dbfs(v) <= -1.0 + 1e-3 for v in matched.values())
    assert all(i.lufs_after == pytest.approx(i.target_lufs, abs=0.1) for i in info.values())


def test_loudness_match_lowers_target_for_all_when_one_would_clip():
    spiky = np.zeros((1, 4 * SR), np.float32)
    spiky[0, ::SR] = 0.9  # clicks: high peak, very low loudness
    spiky += white_noise(rms=0.001)
    matched, info = loudness_match({"spiky": spiky, "sine": sine(1000.0, peak=0.1)}, SR)
    targets = {round(i.target_lufs, 6) for i in info.values()}
    assert len(targets) == 1 and targets.pop() < -23.0
    assert peak_dbfs(matched["spiky"]) == pytest.approx(-1.0, abs=0.01)


def test_fades_are_raised_cosine_and_copy():
    x = np.ones((1, 1000), np.float32)
    y = apply_fades(x, 1000, fade_s=0.1)
    assert x.min() == 1.0 and y[0, 0] < 0.01 and y[0, -1] < 0.01 and y[0, 500] == 1.0


def test_resample_preserves_a_tone():
    x = sine(1000.0, 1.0, sr=44100, peak=0.5)
    y = resample(x, orig_rate=44100, target_rate=SR)
    assert y.shape == (1, SR) and peak_dbfs(y) == pytest.approx(peak_dbfs(x), abs=0.1)

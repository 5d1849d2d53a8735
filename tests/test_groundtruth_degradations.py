"""Degradations: each returns the degraded clip and its clean reference, same rate, layout and length, aligned."""

from __future__ import annotations

import numpy as np
import pytest

from restoration import degradations as dg
from restoration.errors import BadInputError, ModelUnavailableError
from restoration.reference_metrics import si_sdr_db


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """4 s of the built-in funk piece, 44.1 kHz stereo, rendered by FluidSynth."""
    import soundfile as sf

    from restoration import cleanset

    path = cleanset.render(cleanset.compose(cleanset.PIECES[1], seconds=6.0),
                           tmp_path_factory.mktemp("music") / "funk.wav")
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T[:, rate:5 * rate]), rate


def test_find_lag_recovers_a_known_delay(music):
    x, _ = music
    for delay in (0, 1, 1105, 2000):
        late = np.concatenate([np.zeros((2, delay), np.float32), x], axis=-1)
        assert dg.find_lag(x, late, max_lag=4000) == delay
        aligned, lag = dg.align(x, late, max_lag=4000)
        assert lag == delay and aligned.shape == x.shape
        np.testing.assert_array_equal(aligned, x)


@pytest.mark.parametrize("kbps", [32, 128])
def test_mp3_round_trip_is_aligned_trimmed_and_at_the_asked_bitrate(music, kbps):
    x, sr = music
    result = dg.degrade(x, sr, name=f"mp3-{kbps}")
    assert result.sample_rate == sr and result.degraded.shape == x.shape == result.reference.shape
    np.testing.assert_array_equal(result.reference, x)
    assert result.info["bitrate_kbps_measured"] == pytest.approx(kbps, rel=0.06)
    # Aligned: no residual delay, and the waveform follows the original closely.
    assert dg.find_lag(x, result.degraded, max_lag=2000) == 0
    aligned_sdr = si_sdr_db(x, result.degraded)
    for shift in (1, 5):
        shifted = np.concatenate([result.degraded[:, shift:], np.zeros((2, shift), np.float32)], axis=-1)
        assert si_sdr_db(x, shifted) < aligned_sdr
    assert aligned_sdr > 5.0
    assert not np.allclose(result.degraded, x, atol=1e-3)  # MP3 changed it


def test_mp3_delay_is_found_when_the_decoder_keeps_it(music):
    """At 32 kbps libsndfile returns the audio late by LAME's encoder delay plus the decoder's (576 + 529 samples)."""
    x, sr = music
    result = dg.degrade(x, sr, name="mp3-32")
    assert result.info["decoded_frames"] > x.shape[-1]
    assert result.info["delay_samples"] == 576 + 529


def test_noise_degradation_has_the_stated_level_and_is_seeded(music):
    x, sr = music
    a = dg.degrade(x, sr, name="noise-20", seed=4)
    b = dg.degrade(x, sr, name="noise-20", seed=4)
    c = dg.degrade(x, sr, name="noise-20", seed=5)
    np.testing.assert_array_equal(a.degraded, b.degraded)
    assert not np.array_equal(a.degraded, c.degraded)
    assert si_sdr_db(x, a.degraded) == pytest.approx(20.0, abs=0.5)


def test_lowpass_degradation_removes_the_top_band(music):
    x, sr = music
    result = dg.degrade(x, sr, name="lowpass-4")
    spectrum = np.abs(np.fft.rfft(result.degraded[0]))
    freqs = np.fft.rfftfreq(result.degraded.shape[-1], 1 / sr)
    original = np.abs(np.fft.rfft(x[0]))
    top = freqs > 6000
    assert np.sum(spectrum[top] ** 2) < 1e-4 * np.sum(original[top] ** 2)


def test_musicgen_codec_uses_the_configured_model_s_own_codec(music, musicgen_env):
    from restoration import generation

    x, sr = music
    first = dg.degrade(x, sr, name="musicgen-codec")
    second = dg.degrade(x, sr, name="musicgen-codec")
    bundle = generation.load_musicgen(mode="exact")
    assert first.sample_rate == bundle.sample_rate == 32000
    assert first.reference.shape == first.degraded.shape == (1, 4 * 32000)
    assert first.info["model"] == str(musicgen_env) and first.info["codebooks"] == 4
    # The reference is the clean clip at the codec's rate and layout (mono mix, resampled).
    from restoration.audio import convert_audio

    np.testing.assert_allclose(first.reference, convert_audio(x, orig_rate=sr, target_rate=32000, channels=1),
                               atol=1e-6)
    np.testing.assert_array_equal(first.degraded, second.degraded)  # deterministic
    assert not np.allclose(first.degraded, first.reference, atol=1e-3)  # the codec changed it
    assert np.isfinite(first.degraded).all()


def test_musicgen_codec_without_the_model_is_model_unavailable(music, monkeypatch, tmp_path):
    from restoration import generation

    monkeypatch.setenv("MUSICGEN_MODEL", str(tmp_path / "no-such-model"))
    generation.clear_model_cache()
    x, sr = music
    with pytest.raises(ModelUnavailableError):
        dg.degrade(x, sr, name="musicgen-codec")
    generation.clear_model_cache()


@pytest.mark.parametrize("text", ["", "mp4-32", "mp3", "mp3-4", "lowpass-", "noise-x", "musicgen-codec,musicgen-codec"])
def test_unknown_or_malformed_degradations_are_bad_input(text):
    with pytest.raises(BadInputError):
        dg.parse_degradations(text)


def test_a_list_of_degradations_is_parsed_in_order():
    assert dg.parse_degradations("musicgen-codec, MP3-32,noise-30") == ("musicgen-codec", "mp3-32", "noise-30")

"""Named, deterministic degradations of clean music, each returning its own clean reference.

A degradation turns a clean clip (float32 ``(channels, frames)`` at its own rate) into a
:class:`Degraded`: the degraded audio and the clean reference at the **same** rate, channel
layout and length, sample-aligned, so a full-reference metric
(:mod:`restoration.reference_metrics`) compares like with like.

- ``musicgen-codec`` — MusicGen's own artefact. MusicGen writes music as tokens of its neural
  codec (EnCodec at 32 kHz, 4 codebooks, about 2.2 kbps) and its audio is that codec's decoding.
  The clean clip is resampled to the codec's rate and channels, encoded and decoded by the
  ``audio_encoder`` of the configured MusicGen (``MUSICGEN_MODEL``, loaded by
  :func:`restoration.generation.load_musicgen` exactly as for generation, with the same offline
  rules). The reference is the clean clip at that rate and layout. EnCodec is non-causal and
  returns as many samples as it was given, so no alignment is needed.
- ``mp3-<kbps>`` (e.g. ``mp3-32``) — a constant-bitrate MP3 round trip through libsndfile's LAME
  encoder and mpg123 decoder (soundfile). MP3 adds encoder delay and padding, so the decoded
  audio is aligned to the reference by cross-correlation (:func:`align`) and trimmed.
- ``lowpass-<kHz>`` (e.g. ``lowpass-8``) — a zero-phase 8th-order Butterworth low-pass.
- ``noise-<dB>`` (e.g. ``noise-30``) — white Gaussian noise whose RMS lies ``dB`` below the
  clip's RMS, seeded, so the same clip and seed always get the same noise.

The last two need no model and have obvious answers, so they serve as sanity checks of a study.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np

from .audio import convert_audio, fit_length, lowpass
from .errors import BadInputError

MUSICGEN_CODEC = "musicgen-codec"
#: The patterns a degradation name may take, for messages and ``--help``.
NAMES_HELP = "musicgen-codec, mp3-<kbps> (e.g. mp3-32), lowpass-<kHz> (e.g. lowpass-8), noise-<dB> (e.g. noise-30)"
MAX_ALIGN_S = 0.2  # the farthest an MP3 round trip is searched for its delay, in seconds

_MP3 = re.compile(r"mp3-(\d+)")
_LOWPASS = re.compile(r"lowpass-(\d+(?:\.\d+)?)")
_NOISE = re.compile(r"noise-(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Degraded:
    """A degraded clip and its clean reference, float32 ``(channels, frames)`` at ``sample_rate``.

    ``info`` records what was done (codec, bitrate, delay found, model, …) for the report.
    """

    name: str
    reference: np.ndarray
    degraded: np.ndarray
    sample_rate: int
    info: dict = field(default_factory=dict)


def parse_degradations(text: str) -> tuple[str, ...]:
    """Split a comma-separated list and check every name; raise :class:`BadInputError` on an unknown one."""
    names = tuple(part.strip().lower() for part in str(text or "").split(",") if part.strip())
    if not names:
        raise BadInputError(f"no degradation given; use one or more of: {NAMES_HELP}")
    for name in names:
        check_name(name)
    if len(set(names)) != len(names):
        raise BadInputError(f"a degradation is listed twice in {text!r}")
    return names


def check_name(name: str) -> str:
    """Return ``name`` if it is a known degradation with valid parameters, else raise :class:`BadInputError`."""
    if name == MUSICGEN_CODEC:
        return name
    if match := _MP3.fullmatch(name):
        kbps = int(match.group(1))
        if not 8 <= kbps <= 320:
            raise BadInputError(f"MP3 bitrate must be 8–320 kbps, got {name!r}")
        return name
    if match := _LOWPASS.fullmatch(name):
        if not 0.5 <= float(match.group(1)) <= 24.0:
            raise BadInputError(f"low-pass cutoff must be 0.5–24 kHz, got {name!r}")
        return name
    if match := _NOISE.fullmatch(name):
        if not 0.0 <= float(match.group(1)) <= 120.0:
            raise BadInputError(f"noise level must be 0–120 dB below the clip, got {name!r}")
        return name
    raise BadInputError(f"unknown degradation {name!r}; use one of: {NAMES_HELP}")


def needs_musicgen(names) -> bool:
    """Whether any of ``names`` loads MusicGen (so a caller can check the model before any work)."""
    return MUSICGEN_CODEC in names


def degrade(audio: np.ndarray, sample_rate: int, *, name: str, seed: int = 0) -> Degraded:
    """Apply degradation ``name`` to the clean ``audio``; see the module docstring for each.

    ``seed`` only matters for ``noise-<dB>``. Raises :class:`BadInputError` for an unknown name,
    :class:`~restoration.errors.ModelUnavailableError` when ``musicgen-codec`` cannot load MusicGen.
    """
    check_name(name)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if name == MUSICGEN_CODEC:
        return musicgen_codec(audio, sample_rate)
    if match := _MP3.fullmatch(name):
        return mp3_round_trip(audio, sample_rate, bitrate_kbps=int(match.group(1)))
    if match := _LOWPASS.fullmatch(name):
        cutoff_hz = float(match.group(1)) * 1000.0
        if cutoff_hz >= sample_rate / 2:
            raise BadInputError(f"{name}: the cutoff {cutoff_hz:g} Hz is at or above the clip's Nyquist "
                                f"frequency {sample_rate / 2:g} Hz")
        return Degraded(name, audio, lowpass(audio, sample_rate, cutoff_hz=cutoff_hz), int(sample_rate),
                        {"cutoff_hz": cutoff_hz, "filter": "Butterworth, 8th order, zero-phase"})
    level_db = -float(_NOISE.fullmatch(name).group(1))
    return add_noise(audio, sample_rate, level_db=level_db, seed=seed)


def add_noise(audio: np.ndarray, sample_rate: int, *, level_db: float, seed: int = 0) -> Degraded:
    """White Gaussian noise with RMS = clip RMS · 10^(level_db/20), from ``numpy.random.default_rng(seed)``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    noise = np.random.default_rng(seed).standard_normal(audio.shape) * rms * 10.0 ** (level_db / 20.0)
    return Degraded(f"noise-{-level_db:g}", audio, (audio + noise).astype(np.float32), int(sample_rate),
                    {"noise": "white Gaussian", "level_db_re_clip_rms": level_db, "seed": int(seed)})


# --------------------------------------------------------------------------- MusicGen's codec


def musicgen_codec(audio: np.ndarray, sample_rate: int) -> Degraded:
    """Encode and decode with the configured MusicGen's own EnCodec (its ``audio_encoder``).

    The clip is resampled to the codec's rate (32 kHz) and converted to the model's channels
    (mono for musicgen-small; a stereo MusicGen codes each channel with the same codec). The
    codec runs at its configured bandwidth (``target_bandwidths[0]``: 2.2 kbps, all 4 codebooks,
    for musicgen-small). Reference and output have the same length.
    """
    import torch

    from . import generation

    bundle = generation.load_musicgen(mode=generation.resolve_mode(None))
    codec = bundle.model.audio_encoder
    rate = int(bundle.sample_rate)
    reference = convert_audio(audio, orig_rate=int(sample_rate), target_rate=rate, channels=int(bundle.audio_channels))
    bandwidths = list(getattr(codec.config, "target_bandwidths", None) or [])
    bandwidth = float(bandwidths[0]) if bandwidths else None
    outputs = []
    with torch.inference_mode():
        for channel in reference:
            values = torch.from_numpy(np.ascontiguousarray(channel))[None, None, :].to(bundle.device)
            encoded = codec.encode(values, bandwidth=bandwidth)
            decoded = codec.decode(encoded.audio_codes, encoded.audio_scales).audio_values
            outputs.append(decoded[0, 0].float().cpu().numpy())
            codebooks = int(encoded.audio_codes.shape[-2])
    degraded = fit_length(np.stack(outputs).astype(np.float32), reference.shape[-1])
    info = {
        "codec": "EnCodec (MusicGen's audio_encoder)",
        "model": bundle.model_id,
        "codec_rate_hz": rate,
        "channels": int(bundle.audio_channels),
        "bandwidth_kbps": bandwidth,
        "codebooks": codebooks,
        "frame_rate_hz": int(bundle.frame_rate),
    }
    return Degraded(MUSICGEN_CODEC, reference.astype(np.float32), degraded, rate, info)


# --------------------------------------------------------------------------- MP3


def mp3_compression_level(*, bitrate_kbps: int, sample_rate: int) -> float:
    """soundfile's ``compression_level`` (0–1) that makes libsndfile ask LAME for ``bitrate_kbps`` CBR.

    libsndfile maps a level c to a bitrate linearly by MPEG version: 320 − c·288 kbps at
    ≥ 32 kHz (MPEG-1), 160 − c·152 at 16–24 kHz (MPEG-2), 64 − c·56 below (MPEG-2.5), then
    truncates to an integer. Half a kbps of margin keeps the truncation on ``bitrate_kbps``.
    LAME then uses the nearest bitrate its MPEG version allows.
    """
    if sample_rate >= 32000:
        top, bottom = 320.0, 32.0
    elif sample_rate >= 16000:
        top, bottom = 160.0, 8.0
    else:
        top, bottom = 64.0, 8.0
    if not bottom <= bitrate_kbps <= top:
        raise BadInputError(f"MP3 at {sample_rate} Hz allows {bottom:g}–{top:g} kbps, got {bitrate_kbps}")
    return float(min(max((top - bitrate_kbps - 0.5) / (top - bottom), 0.0), 1.0))


def mp3_round_trip(audio: np.ndarray, sample_rate: int, *, bitrate_kbps: int) -> Degraded:
    """Encode to constant-bitrate MP3 and decode again in memory, then align and trim to the clip.

    ``info`` holds the measured bitrate (from the encoded size), the delay found by
    :func:`align` in samples, and the decoded length before trimming.
    """
    import soundfile as sf

    if int(sample_rate) not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        raise BadInputError(f"MP3 needs a sample rate MP3 defines (8–48 kHz), got {sample_rate} Hz")
    if audio.shape[0] > 2:
        raise BadInputError(f"MP3 holds mono or stereo, got {audio.shape[0]} channels")
    level = mp3_compression_level(bitrate_kbps=bitrate_kbps, sample_rate=int(sample_rate))
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).T, int(sample_rate), format="MP3", subtype="MPEG_LAYER_III",
             compression_level=level, bitrate_mode="CONSTANT")
    encoded_bytes = buffer.tell()
    buffer.seek(0)
    decoded, decoded_rate = sf.read(buffer, dtype="float32", always_2d=True)
    decoded = decoded.T
    if decoded_rate != sample_rate:
        decoded = convert_audio(decoded, orig_rate=int(decoded_rate), target_rate=int(sample_rate),
                                channels=audio.shape[0])
    aligned, lag = align(audio, decoded, max_lag=int(MAX_ALIGN_S * sample_rate))
    info = {
        "codec": "MP3 (LAME via libsndfile), constant bitrate",
        "bitrate_kbps_requested": int(bitrate_kbps),
        "bitrate_kbps_measured": round(encoded_bytes * 8 / (audio.shape[-1] / sample_rate) / 1000.0, 2),
        "decoded_frames": int(decoded.shape[-1]),
        "delay_samples": int(lag),
    }
    return Degraded(f"mp3-{int(bitrate_kbps)}", audio, aligned, int(sample_rate), info)


def find_lag(reference: np.ndarray, candidate: np.ndarray, *, max_lag: int) -> int:
    """The delay ``d`` (in samples, 0 ≤ d ≤ max_lag) that maximises Σ ref[n] · cand[n + d].

    Cross-correlation of the channel-averaged signals by FFT; a positive ``d`` means the
    candidate starts ``d`` samples late.
    """
    from scipy.signal import correlate

    ref = np.asarray(reference, dtype=np.float64).mean(axis=0)
    cand = np.asarray(candidate, dtype=np.float64).mean(axis=0)
    corr = correlate(cand, ref, mode="full", method="fft")  # index k ↔ lag k − (len(ref) − 1)
    zero = ref.size - 1
    lags = np.arange(0, min(int(max_lag), cand.size - 1) + 1)
    return int(lags[int(np.argmax(corr[zero + lags]))])


def align(reference: np.ndarray, candidate: np.ndarray, *, max_lag: int) -> tuple[np.ndarray, int]:
    """Shift ``candidate`` earlier by its delay (:func:`find_lag`) and trim or pad it to the reference's length.

    Returns ``(aligned candidate, delay in samples)``.
    """
    lag = find_lag(reference, candidate, max_lag=max_lag)
    return fit_length(np.ascontiguousarray(candidate[:, lag:], dtype=np.float32), reference.shape[-1]), lag

"""Audio I/O and conversions.

One shape convention, everywhere in this package: audio is a float32 numpy array of
shape ``(channels, frames)`` together with an integer ``sample_rate`` in Hz.
Files are read with soundfile (never ``librosa.load``, which resamples to 22 050 Hz).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import BadInputError

MAX_CHANNELS = 8
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DIGITAL_SILENCE_DBFS = -120.0
#: BS.1770 gives channel weights for L, R, C, Ls, Rs only (pyloudnorm likewise).
LUFS_MAX_CHANNELS = 5


def max_seconds() -> float:
    """The longest accepted input in seconds: env ``RESTORATION_MAX_SECONDS``, default 600."""
    raw = os.environ.get("RESTORATION_MAX_SECONDS", "600")
    try:
        value = float(raw)
    except ValueError:
        raise BadInputError(f"RESTORATION_MAX_SECONDS must be a number of seconds, got {raw!r}") from None
    return value


def as_audio(array, *, name: str = "audio") -> np.ndarray:
    """Return ``array`` as float32 ``(channels, frames)``; a 1-D array becomes one channel."""
    audio = np.asarray(array)
    if audio.dtype.kind not in "fiu":
        raise BadInputError(f"{name} must be numeric samples, got dtype {audio.dtype}")
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise BadInputError(f"{name} must have shape (channels, frames), got {audio.shape}")
    if audio.dtype.kind in "iu":
        scale = float(np.iinfo(audio.dtype).max) + 1.0
        audio = audio.astype(np.float64) / scale
    return np.ascontiguousarray(audio, dtype=np.float32)


def validate_audio(audio: np.ndarray, sample_rate: int, *, name: str = "audio") -> np.ndarray:
    """Check the constraints every input must meet and return it as float32 ``(channels, frames)``.

    Raises :class:`BadInputError` for: no samples, NaN or inf samples, more than
    :data:`MAX_CHANNELS` channels, a non-positive rate, or a duration above :func:`max_seconds`.
    """
    audio = as_audio(audio, name=name)
    if int(sample_rate) <= 0:
        raise BadInputError(f"{name}: sample rate must be positive, got {sample_rate}")
    channels, frames = audio.shape
    if channels == 0 or frames == 0:
        raise BadInputError(f"{name} has zero samples")
    if channels > MAX_CHANNELS:
        raise BadInputError(f"{name} has {channels} channels; at most {MAX_CHANNELS} are supported")
    if not np.isfinite(audio).all():
        raise BadInputError(f"{name} contains NaN or infinite samples")
    limit = max_seconds()
    seconds = frames / sample_rate
    if seconds > limit:
        raise BadInputError(
            f"{name} lasts {seconds:.1f} s, longer than the limit of {limit:g} s (RESTORATION_MAX_SECONDS)"
        )
    return audio


def check_not_silent(audio: np.ndarray, *, name: str = "the audio") -> None:
    """Raise :class:`BadInputError` when ``audio``'s peak is at or below −120 dBFS (all zeros included).

    A silent input has nothing to restore, and its loudness (−∞ LUFS) cannot be matched.
    """
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 0.0
    if peak <= 10.0 ** (DIGITAL_SILENCE_DBFS / 20.0):
        raise BadInputError(
            f"{name} is silent (peak below {DIGITAL_SILENCE_DBFS:g} dBFS): there is nothing to restore or measure"
        )


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read a wav, flac, ogg or mp3 file at its own rate as float32 ``(channels, frames)``."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"audio file not found: {path}")
    if not path.is_file():
        raise BadInputError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise BadInputError(f"audio file is empty: {path}")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError
        raise BadInputError(
            f"cannot read {path.name} as audio (wav, flac, ogg or mp3 expected): {str(exc).strip() or type(exc).__name__}"
        ) from None
    return validate_audio(data.T, int(sample_rate), name=path.name), int(sample_rate)


def write_wav(path, audio: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """Write ``audio`` as WAV, atomically (temporary file, then rename).

    ``subtype="FLOAT"`` (32-bit float) is used for analysis files, so nothing clips;
    ``"PCM_16"`` for listening copies.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".wav")
    os.close(fd)
    try:
        sf.write(tmp, np.asarray(audio, dtype=np.float32).T, int(sample_rate), subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resample(audio: np.ndarray, *, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window) along the frame axis."""
    if int(orig_rate) == int(target_rate):
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(int(target_rate), int(orig_rate))
    out = resample_poly(np.asarray(audio, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)


def convert_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert to ``channels`` channels: same count is a no-op, otherwise down-mix to mono and copy."""
    if audio.shape[0] == channels:
        return audio
    mono = audio.mean(axis=0, keepdims=True)
    return np.repeat(mono, channels, axis=0).astype(np.float32)


def fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    """Trim or zero-pad to exactly ``frames`` frames."""
    if audio.shape[-1] >= frames:
        return audio[..., :frames]
    pad = np.zeros((audio.shape[0], frames - audio.shape[-1]), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)


def convert_audio(audio: np.ndarray, *, orig_rate: int, target_rate: int, channels: int) -> np.ndarray:
    """Resample and change the channel layout in one step."""
    return resample(convert_channels(audio, channels), orig_rate=orig_rate, target_rate=target_rate)


def to_dbfs(value: float, *, floor_dbfs: float = DIGITAL_SILENCE_DBFS) -> float:
    """20·log10(value) in dB relative to full scale, clamped below at ``floor_dbfs``."""
    return float(max(20.0 * np.log10(max(float(value), 1e-30)), floor_dbfs))


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak in dBFS (0 dBFS = 1.0), clamped at −120."""
    return to_dbfs(float(np.max(np.abs(audio))) if audio.size else 0.0)


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness (ITU-R BS.1770-4, pyloudnorm) of the whole signal in LUFS; ``None`` when undefined.

    This is the package's one loudness measure. ``audio`` is ``(channels, frames)`` (or
    ``(frames,)``); a multichannel signal is measured as BS.1770 prescribes, K-weighted channel
    powers summed (channels 4 and 5 weighted 1.41), so two identical channels read
    10·log10(2) = 3.01 dB louder than one. Undefined for silence (every block gated away), a
    clip shorter than one 400 ms block, or more than :data:`LUFS_MAX_CHANNELS` channels.
    """
    import pyloudnorm

    audio = np.atleast_2d(np.asarray(audio))
    if audio.shape[0] > LUFS_MAX_CHANNELS or audio.shape[-1] < int(0.4 * sample_rate) + 1:
        return None
    meter = pyloudnorm.Meter(int(sample_rate))
    with np.errstate(divide="ignore"):
        value = meter.integrated_loudness(np.asarray(audio, dtype=np.float64).T)
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class LoudnessMatch:
    """What loudness matching did to one version (all in dB / LUFS)."""

    lufs_before: float | None
    lufs_after: float | None
    gain_db: float
    peak_dbfs: float
    target_lufs: float


def shared_loudness_target(versions: dict[str, np.ndarray], lufs: dict[str, float | None], *,
                           target_lufs: float, peak_ceiling_dbfs: float) -> float:
    """The loudness (LUFS) every version can be scaled to with no peak above ``peak_ceiling_dbfs``.

    target = min(``target_lufs``, min_i(ceiling − (peak_i − LUFS_i))) over the versions whose
    loudness ``lufs[i]`` is defined: the nominal target, lowered by the largest peak excess.
    """
    target = float(target_lufs)
    for name, audio in versions.items():
        if lufs.get(name) is not None:
            target = min(target, float(peak_ceiling_dbfs) - (peak_dbfs(audio) - lufs[name]))
    return target


def loudness_match(
    versions: dict[str, np.ndarray],
    sample_rate: int,
    *,
    target_lufs: float = -23.0,
    peak_ceiling_dbfs: float = -1.0,
) -> tuple[dict[str, np.ndarray], dict[str, LoudnessMatch]]:
    """Scale every version to one integrated loudness under one shared peak ceiling.

    gain_i = target − LUFS_i. If any version's peak would exceed ``peak_ceiling_dbfs``,
    the target is lowered for **all** versions by the largest excess, so they stay equal.
    A version whose loudness is undefined (silence) is left at unit gain.
    """
    lufs = {name: integrated_lufs(audio, sample_rate) for name, audio in versions.items()}
    target = shared_loudness_target(versions, lufs, target_lufs=target_lufs, peak_ceiling_dbfs=peak_ceiling_dbfs)
    matched, info = {}, {}
    for name, audio in versions.items():
        gain_db = 0.0 if lufs[name] is None else target - lufs[name]
        out = (audio * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
        matched[name] = out
        info[name] = LoudnessMatch(
            lufs_before=lufs[name],
            lufs_after=integrated_lufs(out, sample_rate),
            gain_db=float(gain_db),
            peak_dbfs=peak_dbfs(out),
            target_lufs=target,
        )
    return matched, info


def apply_fades(audio: np.ndarray, sample_rate: int, *, fade_s: float = 0.015) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``fade_s`` seconds each (returns a copy)."""
    n = min(int(round(fade_s * sample_rate)), audio.shape[-1] // 2)
    out = np.array(audio, dtype=np.float32, copy=True)
    if n <= 0:
        return out
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    out[..., :n] *= ramp
    out[..., -n:] *= ramp[::-1]
    return out


def lowpass(audio: np.ndarray, sample_rate: int, *, cutoff_hz: float, order: int = 8) -> np.ndarray:
    """Zero-phase Butterworth low-pass (scipy ``sosfiltfilt``) at ``cutoff_hz``."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, float(cutoff_hz), btype="low", fs=float(sample_rate), output="sos")
    return sosfiltfilt(sos, np.asarray(audio, dtype=np.float64), axis=-1).astype(np.float32)

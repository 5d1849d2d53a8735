"""Proxy metrics of restoration, measured fairly.

Every version is measured at one common sample rate (the input's) and, for the spectral
metrics, in one common band: frequencies below ``min(15 kHz, 0.47 × rate)``. That keeps a
resampler's empty top octave from passing for "restoration" (see docs/FACTS.md).

Audio is float32 ``(channels, frames)``. Every entry point checks that layout and raises
:class:`~restoration.errors.BadInputError` for anything else; a frames-first array (more
than :data:`~restoration.audio.MAX_CHANNELS` rows, or no more frames than channels) is refused
rather than read as thousands of two-sample channels.

- Spectral metrics (flatness, HBR/ΔHBER, bandwidth, residual) use an STFT with ``n_fft`` =
  2048, ``hop_length`` = 512 and a Hann window, per channel; the channel values are averaged.
  They are gain-invariant (ratios), except the residual, which compares levels on purpose.
- Integrated loudness is one ITU-R BS.1770-4 measure of the whole multichannel signal
  (:func:`restoration.audio.integrated_lufs`: channel powers summed, not averaged).
- Level-dependent frame metrics (both noise floors, the silent-frame count) use the 50 ms
  frame RMS of all channels together (mean square over channels and samples). They are
  reported twice: on the **loudness-matched** copy (the copy a listener hears; the keys the
  table shows) and at the **raw** level (``…_raw`` keys). Spectral gating lowers the level,
  so at raw level its floor looks lower for a reason no listener of the matched players hears.

:data:`METRICS` is the registry: one :class:`Metric` per row of the table, with its label,
unit, what "better" means, formula and computing function. The app's table, the CSV columns,
the About tab and the README's metric table derive from it.

Each metric is a finite number or ``None``; a ``None`` always has its reason in ``notes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .audio import (DIGITAL_SILENCE_DBFS, LUFS_MAX_CHANNELS, MAX_CHANNELS, as_audio, integrated_lufs, loudness_match,
                    peak_dbfs)
from .errors import BadInputError
from .settings import MetricSettings

_EPS_RATIO = 1e-12  # −120 dB floor for energy ratios, so a ratio of 0 stays finite


def validate_layout(audio, sample_rate: int, *, name: str = "audio") -> np.ndarray:
    """Return ``audio`` as float32 ``(channels, frames)`` or raise :class:`BadInputError`.

    The rule: 1–:data:`~restoration.audio.MAX_CHANNELS` channels and more frames than channels
    (a 1-D array is one channel). A frames-first ``(frames, channels)`` array breaks it and is
    refused with a hint to transpose. Empty arrays, NaN/inf samples and a non-positive sample
    rate are bad input too.
    """
    data = as_audio(audio, name=name)
    channels, frames = data.shape
    if int(sample_rate) <= 0:
        raise BadInputError(f"{name}: sample rate must be positive, got {sample_rate}")
    if channels == 0 or frames == 0:
        raise BadInputError(f"{name} has zero samples")
    if channels > MAX_CHANNELS or frames <= channels:
        raise BadInputError(
            f"{name} has shape {data.shape}, which is not (channels, frames) with 1–{MAX_CHANNELS} channels and "
            "more frames than channels; a frames-first array must be transposed (audio.T)"
        )
    if not np.isfinite(data).all():
        raise BadInputError(f"{name} contains NaN or infinite samples")
    return data


def _ratio_db(numerator: float, denominator: float) -> float:
    """10·log10(numerator / denominator) in dB, floored at −120 dB."""
    if denominator <= 0.0:
        return -120.0
    return 10.0 * math.log10(max(numerator / denominator, _EPS_RATIO))


class _Spectrum:
    """Band-limited power STFT of one channel, computed once and shared by the metrics."""

    def __init__(self, channel: np.ndarray, sample_rate: int, settings: MetricSettings):
        import librosa

        n_fft = settings.n_fft
        stft = librosa.stft(channel.astype(np.float32), n_fft=n_fft, hop_length=settings.hop_length, center=True)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
        self.band_hz = settings.band_limit_hz(sample_rate)
        keep = freqs < self.band_hz
        self.freqs = freqs[keep]
        self.magnitude = np.abs(stft[keep])
        self.power = self.magnitude.astype(np.float64) ** 2
        # Frame RMS on the same framing as the STFT; digital silence is excluded from frame statistics.
        rms = librosa.feature.rms(y=channel, frame_length=n_fft, hop_length=settings.hop_length, center=True)[0]
        frames = min(rms.shape[-1], self.power.shape[-1])
        self.active = np.zeros(self.power.shape[-1], dtype=bool)
        self.active[:frames] = rms[:frames] > 10.0 ** (DIGITAL_SILENCE_DBFS / 20.0)

    def energy(self, lo_hz: float = 0.0, hi_hz: float = math.inf) -> float:
        sel = (self.freqs >= lo_hz) & (self.freqs < hi_hz)
        return float(self.power[sel].sum())


def spectral_flatness(spec: _Spectrum) -> float | None:
    """Mean over active frames of librosa's flatness, exp(mean log P) / mean P, in the band (0–1)."""
    import librosa

    if not spec.active.any():
        return None
    flat = librosa.feature.spectral_flatness(S=spec.magnitude[:, spec.active], power=2.0)[0]
    return float(np.mean(flat))


def bandwidth_hz(spec: _Spectrum) -> float | None:
    """Median over active frames of the 99 % spectral roll-off frequency in the band, in Hz."""
    import librosa

    if not spec.active.any():
        return None
    rolloff = librosa.feature.spectral_rolloff(
        S=spec.magnitude[:, spec.active], freq=spec.freqs, roll_percent=0.99
    )[0]
    return float(np.median(rolloff))


def high_band_ratio_db(spec: _Spectrum, *, cutoff_hz: float, upper_hz: float = math.inf) -> float | None:
    """HBR = 10·log10(E[cutoff ≤ f < upper] / E[f < band edge]) in dB; gain-invariant."""
    total = spec.energy()
    if total <= 0.0:
        return None
    return _ratio_db(spec.energy(cutoff_hz, upper_hz), total)


def frame_rms_dbfs(audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.05) -> np.ndarray:
    """RMS of consecutive non-overlapping ``frame_s`` frames, in dBFS (a full-scale sine is −3 dBFS).

    ``audio`` is ``(frames,)`` or ``(channels, frames)``; the mean square is taken over the
    channels and the samples of each frame together, so identical channels read as one. A
    trailing partial frame is dropped unless it is the only one. Clamped at −400 dBFS.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    frames = audio.shape[-1]
    n = max(1, int(round(frame_s * sample_rate)))
    count = max(1, frames // n)
    if frames >= n:
        blocks = audio[:, : count * n].reshape(audio.shape[0], count, n)
    else:
        blocks = audio[:, None, :]
    ms = np.mean(blocks ** 2, axis=(0, 2))
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(ms), -400.0)


def silence_noise_floor(frame_db: np.ndarray, *, gate_dbfs: float = -45.0) -> tuple[float | None, int]:
    """The seed paper's floor: RMS over the frames with −120 < RMS < ``gate_dbfs`` dBFS.

    Returns (floor in dBFS or ``None`` when no frame qualifies, count of such frames).
    Digital silence (≤ −120 dBFS) is not noise and does not count.
    """
    silent = (frame_db < gate_dbfs) & (frame_db > DIGITAL_SILENCE_DBFS)
    count = int(silent.sum())
    if count == 0:
        return None, 0
    mean_square = float(np.mean(10.0 ** (frame_db[silent] / 10.0)))
    return 10.0 * math.log10(mean_square), count



def percentile_noise_floor(frame_db: np.ndarray, *, percentile: float = 10.0) -> float:
    """The 10th percentile of frame RMS in dBFS, clamped at −120 dBFS; always defined."""
    return float(max(np.percentile(frame_db, percentile), DIGITAL_SILENCE_DBFS))


def removed_energy_db(difference: _Spectrum, reference: _Spectrum) -> float | None:
    """Removed energy 10·log10(E[input − output] / E[input]) in the band, in dB.

    ``difference`` is the spectrum of input − output, ``reference`` the input's. Floored at
    −120 dB (identical signals); ``None`` when the input has no energy in the band.
    """
    ref_energy = reference.energy()
    return _ratio_db(difference.energy(), ref_energy) if ref_energy > 0 else None


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def level_metrics(audio: np.ndarray, sample_rate: int, *, settings: MetricSettings = MetricSettings()) -> dict:
    """The level-dependent frame metrics of ``audio`` at the level it has.

    Returns ``noise_floor_dbfs`` (dBFS or ``None``), ``silent_frames`` (int) and
    ``noise_floor_p10_dbfs`` (dBFS), from the 50 ms frame RMS of all channels together.
    Raises :class:`BadInputError` for an array that is not ``(channels, frames)``.
    """
    audio = validate_layout(audio, sample_rate)
    frame_db = frame_rms_dbfs(audio, sample_rate, frame_s=settings.frame_s)
    floor, count = silence_noise_floor(frame_db, gate_dbfs=settings.silence_gate_dbfs)
    return {"noise_floor_dbfs": floor, "silent_frames": int(count),
            "noise_floor_p10_dbfs": percentile_noise_floor(frame_db)}


def measure(
    audio: np.ndarray,
    sample_rate: int,
    *,
    reference: np.ndarray | None = None,
    matched: np.ndarray | None = None,
    settings: MetricSettings = MetricSettings(),
) -> dict:
    """Measure one version; ``reference`` is the input it is compared against (``None`` for the input).

    ``matched`` is the loudness-matched copy the level-dependent rows are measured on; when
    ``None`` it is ``audio`` matched alone to −23 LUFS under a −1 dBFS peak ceiling
    (:func:`restoration.audio.loudness_match`). :func:`measure_versions` matches the versions
    together instead, exactly as the listening copies are.

    Returns a dict of metric name → finite float, int or ``None`` (the keys of
    :data:`METRICS`), plus ``hber_bands_db`` (band label → ΔHBER in dB or ``None``),
    ``loudness_matched_lufs`` (the loudness of the matched copy) and ``notes`` (metric name →
    why it is ``None``).

    Raises :class:`BadInputError` for an array that is not ``(channels, frames)`` (see
    :func:`validate_layout`) or a reference of another shape.
    """
    audio = validate_layout(audio, sample_rate)
    if reference is not None:
        reference = validate_layout(reference, sample_rate, name="reference")
    if matched is None:
        matched = loudness_match({"x": audio}, sample_rate)[0]["x"]
    return _measure(audio, sample_rate, reference=reference, matched=matched, settings=settings, spectra={})


def _spectrum(spectra: dict, audio: np.ndarray, ch: int, sample_rate: int, settings: MetricSettings) -> _Spectrum:
    """The spectrum of ``audio[ch]``, computed once per array within one :func:`measure_versions` call.

    The cache holds the array itself, so its ``id`` cannot be reused while the cache lives.
    """
    key = (id(audio), ch)
    if key not in spectra:
        spectra[key] = (audio, _Spectrum(audio[ch], sample_rate, settings))
    return spectra[key][1]


def _measure(audio, sample_rate: int, *, reference, matched, settings: MetricSettings, spectra: dict) -> dict:
    if reference is not None and reference.shape != audio.shape:
        raise BadInputError(f"version shape {audio.shape} differs from the reference's {reference.shape}")
    matched = validate_layout(matched, sample_rate, name="loudness-matched copy")
    if matched.shape != audio.shape:
        raise BadInputError(f"loudness-matched copy has shape {matched.shape}, the version {audio.shape}")
    notes: dict[str, str] = {}
    band_hz = settings.band_limit_hz(sample_rate)
    cutoff = float(settings.hber_cutoff_hz)
    bands = [(lo, hi) for lo, hi in settings.hber_bands_hz]

    per_channel: dict[str, list] = {k: [] for k in ("flat", "bw", "hbr", "resid")}
    band_delta: dict[str, list] = {_band_label(lo, hi): [] for lo, hi in bands}
    hber_delta: list = []
    for ch in range(audio.shape[0]):
        channel = audio[ch]
        spec = _spectrum(spectra, audio, ch, sample_rate, settings)
        per_channel["flat"].append(spectral_flatness(spec))
        per_channel["bw"].append(bandwidth_hz(spec))
        hbr = high_band_ratio_db(spec, cutoff_hz=cutoff) if cutoff < band_hz else None
        per_channel["hbr"].append(hbr)
        if reference is None:
            continue
        ref_spec = _spectrum(spectra, reference, ch, sample_rate, settings)
        for lo, hi in bands:
            label = _band_label(lo, hi)
            if lo >= band_hz:
                band_delta[label].append(None)
                continue
            value = high_band_ratio_db(spec, cutoff_hz=lo, upper_hz=hi)
            ref_value = high_band_ratio_db(ref_spec, cutoff_hz=lo, upper_hz=hi)
            band_delta[label].append(None if value is None or ref_value is None else value - ref_value)
        ref_hbr = high_band_ratio_db(ref_spec, cutoff_hz=cutoff) if cutoff < band_hz else None
        hber_delta.append(None if hbr is None or ref_hbr is None else hbr - ref_hbr)
        per_channel["resid"].append(removed_energy_db(_Spectrum(reference[ch] - channel, sample_rate, settings), ref_spec))

    raw = level_metrics(audio, sample_rate, settings=settings)
    fair = level_metrics(matched, sample_rate, settings=settings)
    result: dict = {
        "lufs": integrated_lufs(audio, sample_rate),
        "peak_dbfs": peak_dbfs(audio),
        "spectral_flatness": _mean(per_channel["flat"]),
        "hber_delta_db": _mean(hber_delta) if reference is not None else None,
        "hbr_db": _mean(per_channel["hbr"]),
        "bandwidth_hz": _mean(per_channel["bw"]),
        "noise_floor_dbfs": fair["noise_floor_dbfs"],
        "silent_frames": fair["silent_frames"],
        "noise_floor_p10_dbfs": fair["noise_floor_p10_dbfs"],
        "residual_db": _mean(per_channel["resid"]) if reference is not None else None,
        "noise_floor_raw_dbfs": raw["noise_floor_dbfs"],
        "silent_frames_raw": raw["silent_frames"],
        "noise_floor_p10_raw_dbfs": raw["noise_floor_p10_dbfs"],
        "hber_bands_db": {k: (_mean(v) if reference is not None else None) for k, v in band_delta.items()},
        "loudness_matched_lufs": integrated_lufs(matched, sample_rate),
        "analysis_band_hz": band_hz,
        "hber_cutoff_hz": cutoff,
        "sample_rate": int(sample_rate),
    }
    silent_everywhere = result["spectral_flatness"] is None
    if silent_everywhere:
        for key in ("spectral_flatness", "bandwidth_hz"):
            notes[key] = "every frame is digital silence (below −120 dBFS)"
    if result["hbr_db"] is None:
        notes["hbr_db"] = (
            f"the cutoff {cutoff:g} Hz is at or above the analysis band edge {band_hz:g} Hz"
            if cutoff >= band_hz
            else "the signal has no energy in the analysis band"
        )
    if reference is None:
        notes["hber_delta_db"] = "the input is the reference: ΔHBER is defined for outputs only"
        notes["hber_bands_db"] = "the input is the reference: per-band ΔHBER is defined for outputs only"
        notes["residual_db"] = "the input is the reference: nothing was removed from it"
    else:
        if result["hber_delta_db"] is None:
            notes["hber_delta_db"] = notes.get("hbr_db") or "the input or the output has no energy in the band"
        empty = [k for k, v in result["hber_bands_db"].items() if v is None]
        if empty:
            notes["hber_bands_db"] = f"undefined for {', '.join(empty)}: above the band edge {band_hz:g} Hz or no energy"
        if result["residual_db"] is None:
            notes["residual_db"] = "the input has no energy in the analysis band"
    for key in ("noise_floor_dbfs", "noise_floor_raw_dbfs"):
        if result[key] is not None:
            continue
        if silent_everywhere:
            notes[key] = "every frame is digital silence (below −120 dBFS), which is not noise"
        else:
            notes[key] = (
                f"no {settings.frame_s * 1000:g} ms frame lies between −120 and {settings.silence_gate_dbfs:g} dBFS "
                "(dense music has no silence), so the paper's silence floor is undefined; see noise_floor_p10_dbfs"
            )
    if result["lufs"] is None:
        notes["lufs"] = _lufs_note(audio)
    if result["loudness_matched_lufs"] is None:
        notes["loudness_matched_lufs"] = _lufs_note(audio) + "; the matched rows are then at unit gain"
    result["notes"] = notes
    _assert_finite(result)
    return result


def _lufs_note(audio: np.ndarray) -> str:
    if audio.shape[0] > LUFS_MAX_CHANNELS:
        return f"BS.1770 loudness is defined for at most {LUFS_MAX_CHANNELS} channels; this signal has {audio.shape[0]}"
    return "loudness is undefined for silence or a clip shorter than 0.4 s"


def measure_versions(
    versions: dict[str, np.ndarray],
    sample_rate: int,
    *,
    reference: str = "input",
    matched: dict[str, np.ndarray] | None = None,
    settings: MetricSettings = MetricSettings(),
) -> dict[str, dict]:
    """Measure every version against ``versions[reference]``, all at ``sample_rate``.

    The caller brings every version to the reference's rate and layout first (the pipeline
    resamples Demucs's 44.1 kHz output back to the input's rate). The level-dependent rows are
    measured on ``matched`` (version → loudness-matched copy); when ``None``, the versions are
    matched together with :func:`restoration.audio.loudness_match`'s defaults, which is how the
    listening copies are made. The reference's spectra are computed once and shared by every
    comparison.
    """
    checked = {name: validate_layout(audio, sample_rate, name=name) for name, audio in versions.items()}
    if reference not in checked:
        raise BadInputError(f"no version named {reference!r} to compare against; have {sorted(checked)}")
    if matched is None:
        matched = loudness_match(checked, sample_rate)[0]
    ref = checked[reference]
    spectra: dict = {}
    return {
        name: _measure(audio, sample_rate, reference=None if name == reference else ref, matched=matched[name],
                       settings=settings, spectra=spectra)
        for name, audio in checked.items()
    }


def _band_label(lo_hz: float, hi_hz: float) -> str:
    return f"{lo_hz / 1000:g}-{hi_hz / 1000:g}kHz"


def _assert_finite(obj) -> None:
    """Internal invariant: no NaN or inf ever leaves this module."""
    if isinstance(obj, dict):
        for value in obj.values():
            _assert_finite(value)
    elif isinstance(obj, float):
        assert math.isfinite(obj), "a metric came out non-finite"


# ---------------------------------------------------------------------------------------------
# The registry: one entry per row of the table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One row of the metrics table.

    ``name`` is the key in ``metrics.json`` and the CSV column; ``label``, ``unit`` and
    ``better`` are what the table shows; ``formula`` says how it is computed; ``function`` is
    the function of this module (or of :mod:`restoration.audio`) that computes it; ``level`` is
    ``"matched"`` (measured on the loudness-matched copy), ``"raw"`` (at the level the version
    came out) or ``"gain-invariant"``; ``in_table`` says whether the app's table shows it
    (every entry is a column of the CSV files and a key of ``metrics.json``).
    """

    name: str
    label: str
    unit: str
    better: str
    formula: str
    function: Callable
    level: str = "gain-invariant"
    in_table: bool = True


METRICS: tuple[Metric, ...] = (
    Metric("lufs", "Integrated loudness (raw)", "LUFS",
           "context only; versions are loudness-matched before listening",
           "ITU-R BS.1770-4 integrated loudness of all channels together (pyloudnorm)", integrated_lufs, "raw"),
    Metric("peak_dbfs", "Sample peak (raw)", "dBFS", "≤ 0 means no clipping; context only",
           "20·log10 max|x| over all channels", peak_dbfs, "raw"),
    Metric("spectral_flatness", "Mean spectral flatness", "0–1", "lower = more tonal, less noise-like",
           "exp(mean log P) / mean P of each STFT frame in the band; mean over non-silent frames, then channels",
           spectral_flatness),
    Metric("hber_delta_db", "ΔHBER (≥ cutoff)", "dB", "> 0 = more high-band energy than the input",
           "HBR(output) − HBR(input) at the cutoff (default 8 kHz); per band in hber_bands_db",
           high_band_ratio_db),
    Metric("hbr_db", "High-band energy ratio", "dB", "share of energy above the cutoff; higher = brighter",
           "10·log10(E[cutoff ≤ f < band edge] / E[f < band edge]) of the power STFT", high_band_ratio_db),
    Metric("bandwidth_hz", "Bandwidth (99 % roll-off)", "Hz", "higher = wider band kept",
           "median over non-silent frames of the frequency below which 99 % of the frame's STFT magnitude "
           "(magnitude, not power) lies, in the band", bandwidth_hz),
    Metric("noise_floor_dbfs", "Silence floor (matched)", "dBFS",
           "lower = quieter pauses at equal loudness (undefined without pauses)",
           "power mean of the 50 ms frames whose RMS lies between −120 and −45 dBFS, on the copy matched "
           "to −23 LUFS", silence_noise_floor, "matched"),
    Metric("silent_frames", "Silent frames (matched)", "count",
           "frames below the −45 dBFS gate at equal loudness; context for the silence floor",
           "count of 50 ms frames with −120 < RMS < −45 dBFS on the loudness-matched copy",
           silence_noise_floor, "matched"),
    Metric("noise_floor_p10_dbfs", "Noise floor p10 (matched)", "dBFS",
           "lower = quieter quiet parts at equal loudness",
           "10th percentile of 50 ms frame RMS on the loudness-matched copy, clamped at −120 dBFS",
           percentile_noise_floor, "matched"),
    Metric("residual_db", "Removed energy", "dB",
           "energy of input − output relative to the input; closer to −∞ = less changed",
           "10·log10(E[input − output] / E[input]) in the band, at raw levels", removed_energy_db, "raw"),
    Metric("noise_floor_raw_dbfs", "Silence floor (raw level)", "dBFS",
           "level-dependent: a quieter version reads lower; compare the loudness-matched row",
           "the silence noise floor at the level the version came out", silence_noise_floor, "raw", False),
    Metric("silent_frames_raw", "Silent frames (raw level)", "count",
           "level-dependent: compare the loudness-matched row", "the silent-frame count at raw level",
           silence_noise_floor, "raw", False),
    Metric("noise_floor_p10_raw_dbfs", "Noise floor p10 (raw level)", "dBFS",
           "level-dependent: a quieter version reads lower; compare the loudness-matched row",
           "the 10th-percentile floor at raw level", percentile_noise_floor, "raw", False),
)

#: name → registry entry.
METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

#: name → (label, unit, what "better" means) of the rows the app's table shows, in order.
METRIC_INFO: dict[str, tuple[str, str, str]] = {m.name: (m.label, m.unit, m.better) for m in METRICS if m.in_table}

#: Every scalar key of one version's metrics, in registry order: the CSV columns.
CSV_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS)


def registry_markdown() -> str:
    """The README's metric table, built from :data:`METRICS` (a row per entry)."""
    lines = ["| Key | Label | Unit | Computed as | Level | Better means |", "|---|---|---|---|---|---|"]
    for m in METRICS:
        lines.append(f"| `{m.name}` | {m.label} | {m.unit} | {m.formula} | {m.level} | {m.better} |")
    return "\n".join(lines)

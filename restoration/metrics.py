"""Proxy metrics of restoration, measured fairly.

Every version is measured at one common sample rate (the input's) and, for the spectral
metrics, in one common band: frequencies below ``min(15 kHz, 0.47 × rate)``. That keeps a
resampler's empty top octave from passing for "restoration" (see FACTS.md).

Spectral metrics (flatness, HBER, bandwidth, residual) use an STFT with ``n_fft`` = 2048,
``hop_length`` = 512 and a Hann window. Level metrics (LUFS, peak, noise floors) use the
whole signal. A multichannel signal is measured per channel and the channel values are
averaged (the peak is the maximum over channels).

Each metric is a finite number or ``None``; a ``None`` always has its reason in ``notes``.
"""

from __future__ import annotations

import math

import numpy as np

from .audio import DIGITAL_SILENCE_DBFS, integrated_lufs, peak_dbfs
from .settings import MetricSettings

#: name → (label, unit, what "better" means). The app's table and the README use it.
METRIC_INFO: dict[str, tuple[str, str, str]] = {
    "lufs": ("Integrated loudness", "LUFS", "context only; versions are loudness-matched before listening"),
    "peak_dbfs": ("Sample peak", "dBFS", "≤ 0 means no clipping; context only"),
    "spectral_flatness": ("Mean spectral flatness", "0–1", "lower = more tonal, less noise-like"),
    "hber_delta_db": ("ΔHBER (≥ cutoff)", "dB", "> 0 = more high-band energy than the input"),
    "hbr_db": ("High-band energy ratio", "dB", "share of energy above the cutoff; higher = brighter"),
    "bandwidth_hz": ("Bandwidth (99 % roll-off)", "Hz", "higher = wider band kept"),
    "noise_floor_dbfs": ("Silence noise floor", "dBFS", "lower = quieter pauses (undefined without pauses)"),
    "silent_frames": ("Silent 50 ms frames", "count", "frames below the −45 dBFS gate"),
    "noise_floor_p10_dbfs": ("Noise floor (10th pct.)", "dBFS", "lower = quieter quiet parts; level-dependent"),
    "residual_db": ("Removed energy", "dB", "energy of input − output relative to the input; closer to −∞ = less changed"),
}

_EPS_RATIO = 1e-12  # −120 dB floor for energy ratios, so a ratio of 0 stays finite


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


def frame_rms_dbfs(channel: np.ndarray, sample_rate: int, *, frame_s: float = 0.05) -> np.ndarray:
    """RMS of consecutive non-overlapping ``frame_s`` frames, in dBFS (a full-scale sine is −3 dBFS).

    A trailing partial frame is dropped unless it is the only one.
    """
    n = max(1, int(round(frame_s * sample_rate)))
    count = max(1, channel.shape[-1] // n)
    frames = channel[: count * n].reshape(count, -1) if channel.shape[-1] >= n else channel[None, :]
    ms = np.mean(frames.astype(np.float64) ** 2, axis=-1)
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


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def measure(
    audio: np.ndarray,
    sample_rate: int,
    *,
    reference: np.ndarray | None = None,
    settings: MetricSettings = MetricSettings(),
) -> dict:
    """Measure one version; ``reference`` is the input it is compared against (``None`` for the input).

    Returns a dict of metric name → finite float, int or ``None``, plus ``hber_bands_db``
    (band label → dB or ``None``) and ``notes`` (metric name → why it is ``None``).
    """
    return _measure(audio, sample_rate, reference=reference, settings=settings, spectra={})


def _spectrum(spectra: dict, audio: np.ndarray, ch: int, sample_rate: int, settings: MetricSettings) -> _Spectrum:
    """The spectrum of ``audio[ch]``, computed once per array within one :func:`measure_versions` call.

    The cache holds the array itself, so its ``id`` cannot be reused while the cache lives.
    """
    key = (id(audio), ch)
    if key not in spectra:
        spectra[key] = (audio, _Spectrum(audio[ch], sample_rate, settings))
    return spectra[key][1]


def _measure(audio, sample_rate: int, *, reference, settings: MetricSettings, spectra: dict) -> dict:
    audio = np.asarray(audio, dtype=np.float32)
    if reference is not None and reference.shape != audio.shape:
        raise ValueError(f"version shape {audio.shape} differs from the reference's {reference.shape}")
    notes: dict[str, str] = {}
    band_hz = settings.band_limit_hz(sample_rate)
    cutoff = float(settings.hber_cutoff_hz)
    bands = [(lo, hi) for lo, hi in settings.hber_bands_hz]

    per_channel: dict[str, list] = {k: [] for k in ("flat", "bw", "hbr", "floor", "count", "p10", "lufs", "resid")}
    band_hbr: dict[str, list] = {_band_label(lo, hi): [] for lo, hi in bands}
    band_delta: dict[str, list] = {_band_label(lo, hi): [] for lo, hi in bands}
    hber_delta: list = []
    for ch in range(audio.shape[0]):
        channel = audio[ch]
        spec = _spectrum(spectra, audio, ch, sample_rate, settings)
        per_channel["flat"].append(spectral_flatness(spec))
        per_channel["bw"].append(bandwidth_hz(spec))
        hbr = high_band_ratio_db(spec, cutoff_hz=cutoff) if cutoff < band_hz else None
        per_channel["hbr"].append(hbr)
        frame_db = frame_rms_dbfs(channel, sample_rate, frame_s=settings.frame_s)
        floor, count = silence_noise_floor(frame_db, gate_dbfs=settings.silence_gate_dbfs)
        per_channel["floor"].append(floor)
        per_channel["count"].append(count)
        per_channel["p10"].append(percentile_noise_floor(frame_db))
        per_channel["lufs"].append(integrated_lufs(channel[None, :], sample_rate))
        ref_spec = _spectrum(spectra, reference, ch, sample_rate, settings) if reference is not None else None
        for lo, hi in bands:
            label = _band_label(lo, hi)
            value = high_band_ratio_db(spec, cutoff_hz=lo, upper_hz=hi) if lo < band_hz else None
            band_hbr[label].append(value)
            if ref_spec is not None:
                ref_value = high_band_ratio_db(ref_spec, cutoff_hz=lo, upper_hz=hi) if lo < band_hz else None
                band_delta[label].append(None if value is None or ref_value is None else value - ref_value)
        if ref_spec is not None:
            ref_hbr = high_band_ratio_db(ref_spec, cutoff_hz=cutoff) if cutoff < band_hz else None
            hber_delta.append(None if hbr is None or ref_hbr is None else hbr - ref_hbr)
            diff_spec = _Spectrum(reference[ch] - channel, sample_rate, settings)
            ref_energy = ref_spec.energy()
            per_channel["resid"].append(_ratio_db(diff_spec.energy(), ref_energy) if ref_energy > 0 else None)

    result: dict = {
        "lufs": _mean(per_channel["lufs"]),
        "peak_dbfs": peak_dbfs(audio),
        "spectral_flatness": _mean(per_channel["flat"]),
        "hbr_db": _mean(per_channel["hbr"]),
        "hber_delta_db": _mean(hber_delta) if reference is not None else None,
        "hber_bands_db": {k: (_mean(band_delta[k]) if reference is not None else None) for k in band_delta},
        "hbr_bands_db": {k: _mean(v) for k, v in band_hbr.items()},
        "bandwidth_hz": _mean(per_channel["bw"]),
        "noise_floor_dbfs": _mean(per_channel["floor"]),
        "silent_frames": int(per_channel["count"][0]) if audio.shape[0] == 1 else float(np.mean(per_channel["count"])),
        "noise_floor_p10_dbfs": _mean(per_channel["p10"]),
        "residual_db": _mean(per_channel["resid"]) if reference is not None else None,
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
    if result["noise_floor_dbfs"] is None and silent_everywhere:
        notes["noise_floor_dbfs"] = "every frame is digital silence (below −120 dBFS), which is not noise"
    elif result["noise_floor_dbfs"] is None:
        notes["noise_floor_dbfs"] = (
            f"no {settings.frame_s * 1000:g} ms frame lies between −120 and {settings.silence_gate_dbfs:g} dBFS "
            "(dense music has no silence), so the paper's silence floor is undefined; see noise_floor_p10_dbfs"
        )
    if result["lufs"] is None:
        notes["lufs"] = "loudness is undefined for silence or a clip shorter than 0.4 s"
    result["notes"] = notes
    _assert_finite(result)
    return result


def measure_versions(
    versions: dict[str, np.ndarray],
    sample_rate: int,
    *,
    reference: str = "input",
    settings: MetricSettings = MetricSettings(),
) -> dict[str, dict]:
    """Measure every version against ``versions[reference]``, all at ``sample_rate``.

    The caller brings every version to the reference's rate and layout first (the pipeline
    resamples Demucs's 44.1 kHz output back to the input's rate). The reference's spectra are
    computed once and shared by every comparison.
    """
    ref = versions[reference]
    spectra: dict = {}
    return {
        name: _measure(audio, sample_rate, reference=None if name == reference else ref, settings=settings,
                       spectra=spectra)
        for name, audio in versions.items()
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


def scalar_metric_names() -> list[str]:
    """The metric names of one table row, in display order."""
    return list(METRIC_INFO)

"""Full-reference metrics: how close an estimate comes to the clean original.

The proxy metrics of :mod:`restoration.metrics` look at one version alone (or at its change
from the input). When the clean original is known (see :mod:`restoration.degradations`), a
version can be compared with it directly. Every function here takes the clean ``reference``
and an ``estimate`` as float32 ``(channels, frames)`` arrays of the same shape at one
``sample_rate``; a multichannel value is the mean over channels.

Fairness rules, shared by every metric:

- **Level.** A restoration that only changes the level is neither rewarded nor punished. SI-SDR
  is scale-invariant by construction; every other metric is computed on the estimate rescaled
  by its least-squares gain ``α = <x, ŷ> / <ŷ, ŷ>`` (one gain for all channels), the gain that
  brings it closest to the reference.
- **Band.** The spectral metrics (log-spectral distance, Mel distance) are limited to
  ``f < min(15 kHz, 0.47 × rate)``, the band of the proxy metrics (:class:`MetricSettings`).
  SI-SDR and Zimtohrli see the full band.
- **Floors.** Log spectra are floored at ``floor_db`` (80 dB) below the reference's loudest
  bin, on both sides, so bins far below anything audible do not dominate a log distance.

Every value is a finite float, or ``None`` with its reason in ``notes``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .errors import BadInputError
from .settings import MetricSettings

SI_SDR_CAP_DB = 120.0  # the value of identical signals: the error energy is floored at 1e-12 of the target's
ZIMTOHRLI_RATE = 48000


@dataclass(frozen=True)
class ReferenceMetricSettings:
    """Analysis settings of the full-reference metrics.

    ``n_fft``/``hop_length``: the STFT of the log-spectral distance (Hann window).
    ``mel_resolutions``: ``(n_fft, n_mels)`` pairs of the multi-resolution Mel distance
    (hop = n_fft / 4). ``floor_db``: log spectra are floored this far below the reference's
    loudest bin. ``max_band_hz``: the spectral metrics' band edge, capped at 0.47 × rate.
    ``perceptual``: compute Zimtohrli (about 0.15 s per second of audio and channel here).
    """

    n_fft: int = 2048
    hop_length: int = 512
    mel_resolutions: tuple[tuple[int, int], ...] = ((512, 40), (1024, 64), (2048, 128))
    floor_db: float = 80.0
    max_band_hz: float = MetricSettings().max_band_hz
    perceptual: bool = True

    def band_limit_hz(self, sample_rate: int) -> float:
        """Upper edge of the spectral metrics' band: min(max_band_hz, 0.47 × sample_rate)."""
        return float(min(self.max_band_hz, 0.47 * sample_rate))


#: name → (label, unit, what "better" means, True when higher is better). The study's tables, the
#: app's table and the README use it. An *improvement* is signed so that > 0 means closer to the
#: clean original: estimate − degraded for higher-is-better metrics, degraded − estimate otherwise.
REFERENCE_METRIC_INFO: dict[str, tuple[str, str, str, bool]] = {
    "si_sdr_db": ("SI-SDR", "dB", "higher = closer to the clean waveform (identical: 120)", True),
    "lsd_db": ("Log-spectral distance", "dB", "lower = closer spectrum (identical: 0)", False),
    "mel_distance_db": ("Mel distance (multi-resolution)", "dB", "lower = closer Mel spectrogram (identical: 0)",
                        False),
    "zimtohrli_mos": ("Zimtohrli MOS", "1–5", "higher = perceptually closer (identical: 5)", True),
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of full-reference ``metric`` means closer to the reference."""
    return REFERENCE_METRIC_INFO[metric][3]


def improvement(metric: str, *, estimate: float | None, degraded: float | None) -> float | None:
    """How much closer ``estimate`` is than ``degraded``, in the metric's unit; > 0 = closer.

    ``estimate − degraded`` for higher-is-better metrics, ``degraded − estimate`` otherwise;
    ``None`` when either is undefined.
    """
    if estimate is None or degraded is None:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    return sign * (float(estimate) - float(degraded))


def _check_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[0] > reference.shape[1]:
        raise BadInputError(f"the reference must be (channels, frames) with fewer channels than frames, "
                            f"got shape {reference.shape}")
    if estimate.shape != reference.shape:
        raise BadInputError(f"the estimate's shape {estimate.shape} differs from the reference's {reference.shape}")
    return reference, estimate


def least_squares_gain(reference: np.ndarray, estimate: np.ndarray) -> float:
    """α = Σ x·ŷ / Σ ŷ² over all channels: the gain that minimises ‖x − α ŷ‖². 1.0 for a silent estimate."""
    reference, estimate = _check_pair(reference, estimate)
    energy = float(np.sum(estimate * estimate))
    if energy <= 0.0:
        return 1.0
    return float(np.sum(reference * estimate) / energy)


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al., 2019), in dB; higher is better.

    Per channel, after removing each signal's mean: the target is the reference scaled to fit
    the estimate, ``s = (<ŷ, x> / <x, x>) · x``, and
    ``SI-SDR = 10·log10(‖s‖² / ‖ŷ − s‖²)``. Multiplying the estimate by any non-zero gain leaves
    it unchanged. White noise 20 dB below the reference gives 20 dB. The error energy is floored
    at 10⁻¹² of the target's, so identical signals give 120 dB (the best). The channel values are
    averaged.
    """
    reference, estimate = _check_pair(reference, estimate)
    values = []
    for x, y in zip(reference, estimate):
        x = x - x.mean()
        y = y - y.mean()
        energy = float(np.dot(x, x))
        if energy <= 0.0:
            values.append(-SI_SDR_CAP_DB)
            continue
        target = (float(np.dot(y, x)) / energy) * x
        error = y - target
        target_energy = float(np.dot(target, target))
        if target_energy <= 0.0:
            values.append(-SI_SDR_CAP_DB)
            continue
        ratio = max(float(np.dot(error, error)) / target_energy, 10.0 ** (-SI_SDR_CAP_DB / 10.0))
        values.append(float(np.clip(-10.0 * math.log10(ratio), -SI_SDR_CAP_DB, SI_SDR_CAP_DB)))
    return float(np.mean(values))


def _floored_db(power: np.ndarray, floor: float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power.astype(np.float64), floor))


@functools.lru_cache(maxsize=16)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmax_hz: float) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=fmax_hz).astype(np.float32)


class _Spectra:
    """The band-limited power STFT and Mel spectrograms of one signal, per channel.

    The reference's are computed once and shared by every estimate compared with it. An
    estimate's are computed unscaled: rescaling a signal by α scales its power spectra by α².
    """

    def __init__(self, audio: np.ndarray, sample_rate: int, settings: ReferenceMetricSettings):
        import librosa

        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=settings.n_fft)
        keep = freqs < settings.band_limit_hz(sample_rate)
        self.stft: list[np.ndarray] = []
        self.mel: list[list[np.ndarray]] = []
        for channel in np.asarray(audio, dtype=np.float32):
            spec = librosa.stft(channel, n_fft=settings.n_fft, hop_length=settings.hop_length)
            self.stft.append(np.abs(spec[keep]) ** 2)
            mels = []
            for n_fft, n_mels in settings.mel_resolutions:
                basis = _mel_filters(int(sample_rate), int(n_fft), int(n_mels), settings.band_limit_hz(sample_rate))
                power = np.abs(librosa.stft(channel, n_fft=n_fft, hop_length=n_fft // 4)) ** 2
                mels.append(basis @ power)
            self.mel.append(mels)


def _lsd(ref: _Spectra, est: _Spectra, gain: float, floor_db: float) -> float:
    values = []
    for px, py in zip(ref.stft, est.stft):
        floor = max(float(px.max()), 1e-30) * 10.0 ** (-floor_db / 10.0)
        diff = _floored_db(px, floor) - _floored_db(py * gain**2, floor)
        values.append(float(np.mean(np.sqrt(np.mean(diff**2, axis=0)))))
    return float(np.mean(values))


def _mel_distance(ref: _Spectra, est: _Spectra, gain: float, floor_db: float) -> float:
    values = []
    for mels_x, mels_y in zip(ref.mel, est.mel):
        per_resolution = []
        for mx, my in zip(mels_x, mels_y):
            floor = max(float(mx.max()), 1e-30) * 10.0 ** (-floor_db / 10.0)
            per_resolution.append(float(np.mean(np.abs(_floored_db(mx, floor) - _floored_db(my * gain**2, floor)))))
        values.append(float(np.mean(per_resolution)))
    return float(np.mean(values))


def log_spectral_distance_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    *,
    settings: ReferenceMetricSettings = ReferenceMetricSettings(),
) -> float:
    """Log-spectral distance in dB, on the least-squares-rescaled estimate, in the band; lower is better.

    With P and P̂ the power STFTs of the reference and of ``α·ŷ`` (n_fft 2048, hop 512, Hann),
    restricted to ``f < band edge`` and floored at ``floor_db`` below the reference's loudest bin:

        LSD = mean over frames t of sqrt( mean over bins f of (10·log10 P[f,t] − 10·log10 P̂[f,t])² )

    0 for identical signals and for any gain (LSD(x, 2x) = 0). Channels are averaged.
    """
    reference, estimate = _check_pair(reference, estimate)
    gain = least_squares_gain(reference, estimate)
    return _lsd(_Spectra(reference, sample_rate, settings), _Spectra(estimate, sample_rate, settings), gain,
                settings.floor_db)


def mel_distance_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    *,
    settings: ReferenceMetricSettings = ReferenceMetricSettings(),
) -> float:
    """Multi-resolution Mel distance in dB, on the least-squares-rescaled estimate; lower is better.

    For each resolution (n_fft, n_mels) in ``mel_resolutions`` (hop n_fft / 4, Hann), with M and
    M̂ the Mel power spectrograms (librosa's Slaney filterbank from 0 Hz to the band edge) of the
    reference and of ``α·ŷ``, floored at ``floor_db`` below the reference's loudest Mel bin:

        D = mean over Mel bins and frames of |10·log10 M − 10·log10 M̂|

    and the distance is the mean of D over the resolutions (short windows see transients and
    pre-echo, long ones tones and noise between partials). 0 for identical signals and for any
    gain. Channels are averaged.
    """
    reference, estimate = _check_pair(reference, estimate)
    gain = least_squares_gain(reference, estimate)
    return _mel_distance(_Spectra(reference, sample_rate, settings), _Spectra(estimate, sample_rate, settings),
                         gain, settings.floor_db)


def zimtohrli_unavailable() -> str | None:
    """Why Zimtohrli cannot run here (``None`` when it can): the package is missing or fails to load."""
    try:
        import zimtohrli  # noqa: F401
    except Exception as exc:  # ImportError, or a binary wheel that does not load on this platform
        return (f"the zimtohrli package is not available ({type(exc).__name__}: {exc}); "
                "install it with `pip install zimtohrli` (wheels for CPython 3.10–3.12 on x86-64 Linux)")
    return None


def zimtohrli_mos(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Zimtohrli's mean-opinion-score estimate (Google's psychoacoustic metric), 1–5; higher is better.

    Both signals are resampled to 48 kHz (the rate Zimtohrli requires) and the estimate is
    rescaled by its least-squares gain. Per channel, Zimtohrli computes a distance between the
    two signals' auditory spectrograms (a filterbank of resonators, loudness and masking, then
    a neurogram similarity) and maps it to a MOS with its own fitted curve (``mos_from_zimtohrli``).
    Identical signals score 5.0. Channels are averaged.

    Raises :class:`RuntimeError` when the package is unavailable (see :func:`zimtohrli_unavailable`).
    """
    reference, estimate = _check_pair(reference, estimate)
    return _zimtohrli(_at_48k(reference, sample_rate), estimate, sample_rate, least_squares_gain(reference, estimate))


def _at_48k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    from .audio import resample

    return resample(np.asarray(audio, dtype=np.float32), orig_rate=int(sample_rate), target_rate=ZIMTOHRLI_RATE)


def _zimtohrli(reference_48k: np.ndarray, estimate: np.ndarray, sample_rate: int, gain: float) -> float:
    reason = zimtohrli_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    import zimtohrli

    estimate_48k = _at_48k(gain * estimate, sample_rate)
    metric = zimtohrli.Pyohrli()
    scores = [float(zimtohrli.mos_from_zimtohrli(metric.distance(x, y))) for x, y in zip(reference_48k, estimate_48k)]
    return float(np.mean(scores))


def measure_against(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    *,
    settings: ReferenceMetricSettings = ReferenceMetricSettings(),
) -> dict:
    """Every full-reference metric of ``estimate`` against ``reference``, plus ``notes``.

    Returns ``{"si_sdr_db", "lsd_db", "mel_distance_db", "zimtohrli_mos", "ls_gain_db", "notes"}``;
    ``ls_gain_db`` is 20·log10 |α|, the level correction the rescaled metrics applied (context).
    A metric that cannot be computed is ``None`` and ``notes`` says why.
    """
    return measure_versions_against(reference, {"estimate": estimate}, sample_rate, settings=settings)["estimate"]


def measure_versions_against(
    reference: np.ndarray,
    versions: dict[str, np.ndarray],
    sample_rate: int,
    *,
    settings: ReferenceMetricSettings = ReferenceMetricSettings(),
) -> dict[str, dict]:
    """:func:`measure_against` for every version, with the reference analysed once."""
    reference = _check_pair(reference, reference)[0]
    ref_spectra = _Spectra(reference, sample_rate, settings)
    reason = None if settings.perceptual else "perceptual metric switched off in the settings"
    reason = reason or zimtohrli_unavailable()
    ref_48k = _at_48k(reference, sample_rate) if reason is None else None
    out = {}
    for name, estimate in versions.items():
        _, estimate = _check_pair(reference, estimate)
        gain = least_squares_gain(reference, estimate)
        spectra = _Spectra(estimate, sample_rate, settings)
        result: dict = {
            "si_sdr_db": si_sdr_db(reference, estimate),
            "lsd_db": _lsd(ref_spectra, spectra, gain, settings.floor_db),
            "mel_distance_db": _mel_distance(ref_spectra, spectra, gain, settings.floor_db),
            "zimtohrli_mos": None if reason else _zimtohrli(ref_48k, estimate, sample_rate, gain),
            "ls_gain_db": float(20.0 * math.log10(max(abs(gain), 1e-6))),
        }
        for key, value in result.items():
            assert value is None or math.isfinite(value), f"{key} came out non-finite"
        result["notes"] = {"zimtohrli_mos": reason} if reason else {}
        out[name] = result
    return out

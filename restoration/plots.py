"""Figures: Mel spectrograms on one shared scale, a difference view, and the long-term spectrum.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state), so
several requests can draw at once. Every function writes a PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .settings import MetricSettings

DB_RANGE = 80.0  # dB shown below the loudest Mel bin of all versions
N_MELS = 128
COLORS = {"input": "#444444", "demucs": "#1f77b4", "spectral_gating": "#d62728"}
TITLES = {"input": "Input (MusicGen)", "demucs": "Demucs", "spectral_gating": "Spectral gating"}


def mel_db(audio: np.ndarray, sample_rate: int, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Mel power spectrogram in dB re full scale (10·log10 P, floored at −160 dB), channels averaged."""
    import librosa

    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    power = librosa.feature.melspectrogram(
        y=mono, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=N_MELS, fmax=sample_rate / 2
    )
    return 10.0 * np.log10(np.maximum(power, 1e-16))


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_mel(ax, spec_db: np.ndarray, sample_rate: int, *, hop_length: int, vmin: float, vmax: float, cmap: str):
    import librosa

    seconds = spec_db.shape[-1] * hop_length / sample_rate
    edges = librosa.mel_frequencies(n_mels=N_MELS + 1, fmin=0.0, fmax=sample_rate / 2)
    times = np.linspace(0.0, seconds, spec_db.shape[-1] + 1)
    mesh = ax.pcolormesh(times, edges, spec_db, vmin=vmin, vmax=vmax, cmap=cmap, shading="flat")
    ax.set_yscale("symlog", linthresh=1000.0, linscale=1.0)
    ax.set_ylim(0, sample_rate / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    return mesh


def mel_spectrograms(
    versions: dict[str, np.ndarray], sample_rate: int, out_dir, *, hop_length: int = 512
) -> dict[str, Path]:
    """One Mel spectrogram PNG per version, on one shared dB colour scale and identical axes.

    The scale runs from the loudest bin of all versions down ``DB_RANGE`` = 80 dB, so a
    darker image always means less energy. Returns name → ``mel_<name>.png``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = {name: mel_db(audio, sample_rate, hop_length=hop_length) for name, audio in versions.items()}
    vmax = max(float(s.max()) for s in specs.values())
    vmin = vmax - DB_RANGE
    paths = {}
    for name, spec in specs.items():
        fig = _figure(5.0, 3.2)
        ax = fig.add_subplot()
        mesh = _draw_mel(ax, spec, sample_rate, hop_length=hop_length, vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_title(TITLES.get(name, name))
        fig.colorbar(mesh, ax=ax, label="dB re full scale")
        paths[name] = out_dir / f"mel_{name}.png"
        fig.savefig(paths[name])
    return paths


def mel_difference(
    output: np.ndarray, reference: np.ndarray, sample_rate: int, path, *, title: str, hop_length: int = 512
) -> Path:
    """Mel dB difference output − reference (blue: removed, red: added), clipped to ±20 dB."""
    diff = mel_db(output, sample_rate, hop_length=hop_length) - mel_db(reference, sample_rate, hop_length=hop_length)
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot()
    mesh = _draw_mel(ax, diff, sample_rate, hop_length=hop_length, vmin=-20.0, vmax=20.0, cmap="RdBu_r")
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label="dB (output − input)")
    fig.savefig(path)
    return Path(path)


def average_spectrum_db(audio: np.ndarray, sample_rate: int, *, n_fft: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average spectrum: Welch PSD (Hann, n_fft, 50 % overlap) in dB re full scale, channels averaged."""
    from scipy.signal import welch

    freqs, psd = welch(np.asarray(audio, dtype=np.float64), fs=sample_rate, nperseg=min(n_fft, audio.shape[-1]))
    psd = np.atleast_2d(psd).mean(axis=0)
    return freqs, 10.0 * np.log10(np.maximum(psd, 1e-20))


def average_spectra(
    versions: dict[str, np.ndarray], sample_rate: int, path, *, settings: MetricSettings = MetricSettings()
) -> Path:
    """Overlay the long-term average spectra of all versions (dB vs log frequency), HBER cutoff marked.

    The shaded region above the analysis band edge is excluded from every spectral metric.
    """
    fig = _figure(10.0, 3.6)
    ax = fig.add_subplot()
    top = -np.inf
    for name, audio in versions.items():
        freqs, db = average_spectrum_db(audio, sample_rate)
        top = max(top, float(db[1:].max()))
        ax.semilogx(freqs[1:], db[1:], label=TITLES.get(name, name), color=COLORS.get(name), linewidth=1.2)
    band = settings.band_limit_hz(sample_rate)
    ax.axvline(settings.hber_cutoff_hz, color="black", linestyle="--", linewidth=1)
    ax.text(settings.hber_cutoff_hz, 0.98, " HBER cutoff", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.axvspan(band, sample_rate / 2, color="grey", alpha=0.15, label="outside analysis band")
    ax.set_xlim(20, sample_rate / 2)
    ax.set_ylim(top - 100.0, top + 5.0)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power spectral density (dB re FS²/Hz)")
    ax.set_title("Were the highs restored? Long-term average spectrum")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.savefig(path)
    return Path(path)


def warm_up() -> None:
    """Pay the cold costs (librosa/numba JIT, matplotlib fonts) once, off the request path."""
    import tempfile

    sr = 16000
    audio = (np.random.default_rng(0).standard_normal((1, sr)) * 0.1).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        mel_spectrograms({"input": audio}, sr, tmp)
        average_spectra({"input": audio}, sr, Path(tmp) / "ltas.png")

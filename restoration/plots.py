"""Figures: Mel spectrograms on one shared scale, a difference view, and the long-term spectrum.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state), so
several requests can draw at once. Every function writes a PNG and returns its path.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from .settings import MetricSettings
from . import versions as _versions

DB_RANGE = 80.0  # dB shown below the loudest Mel bin of all versions
N_MELS = 128
_MEL_MARGINS = {"left": 0.14, "right": 0.99, "bottom": 0.15, "top": 0.9}
#: The colour bar of the Mel spectrograms: 0 dB is the loudest bin of all versions of the clip.
MEL_COLORBAR_LABEL = "dB below the loudest bin"
#: The long-term spectrum's margins: the legend sits outside the axes, right of the curves.
_SPECTRUM_MARGINS = {"left": 0.08, "right": 0.80, "bottom": 0.14, "top": 0.9}
SPECTRUM_TITLE = "Were the highs restored? Long-term average spectrum"
#: zlib level of the PNGs: 1 encodes a spectrogram ~3× faster than PIL's default 6, for files a
#: few per cent larger (spectrograms are noise-like and barely compress); the pixels are the same.
PNG_OPTIONS = {"compress_level": 1}
#: matplotlib is not thread-safe (fonts and cached canvases are shared): one drawing at a time.
#: Drawing holds the GIL anyway, so this costs concurrent requests nothing.
_DRAW_LOCK = threading.RLock()


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=N_MELS, fmax=sample_rate / 2).astype(np.float32)


def mel_db(audio: np.ndarray, sample_rate: int, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Mel power spectrogram in dB (10·log10 P, floored at −160 dB), channels averaged.

    P = M · |STFT|², with M librosa's Slaney-normalised Mel filterbank (128 bands up to Nyquist).
    The filterbank's normalisation scales every band, so these dB are not "re full scale": only
    differences between bins and between versions mean anything. The figures show them relative
    to the loudest bin of all versions (:func:`mel_spectrograms`).
    """
    import librosa

    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    power = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop_length, center=True)) ** 2
    mel = _mel_basis(int(sample_rate), int(n_fft)) @ power
    return 10.0 * np.log10(np.maximum(mel, 1e-16))


def _figure(width_in: float, height_in: float, *, margins: dict | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins: constrained layout costs ~0.2 s a figure.
    fig.subplots_adjust(**(margins or {"left": 0.14, "right": 0.98, "bottom": 0.15, "top": 0.9}))
    return fig


def _draw_mel(ax, spec_db: np.ndarray, sample_rate: int, *, hop_length: int, vmin: float, vmax: float, cmap: str):
    """Draw a Mel spectrogram with a Mel-spaced frequency axis labelled in Hz."""
    import librosa

    seconds = spec_db.shape[-1] * hop_length / sample_rate
    image = ax.imshow(spec_db, origin="lower", aspect="auto", interpolation="nearest", cmap=cmap,
                      vmin=vmin, vmax=vmax, extent=(0.0, seconds, 0.0, float(N_MELS)))
    top_mel = librosa.hz_to_mel(sample_rate / 2)
    ticks_hz = [f for f in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if f <= sample_rate / 2]
    ax.set_yticks([N_MELS * librosa.hz_to_mel(f) / top_mel for f in ticks_hz],
                  [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks_hz])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    return image


class _MelCanvas:
    """A laid-out Mel figure, kept between calls, whose static pixels are drawn once.

    The axes, ticks, labels and title position depend only on the spectrogram's shape and
    rate, so they are drawn once into a saved background. A series then draws only its colour
    bar (whose scale follows the loudest bin) and, per spectrogram, the image, the spines over
    it and the title. Every PNG has the same pixels as a full ``savefig`` of that figure
    (``tests/test_plots.py`` compares them); drawing is most of the cost of a figure, so this
    is several times faster once the canvas exists.
    """

    def __init__(self, shape: tuple, sample_rate: int, hop_length: int, cmap: str, colorbar_label: str):
        self.figure = _figure(5.0, 3.2, margins=_MEL_MARGINS)
        self.axes = self.figure.add_subplot()
        self.image = _draw_mel(self.axes, np.zeros(shape, dtype=np.float32), sample_rate, hop_length=hop_length,
                               vmin=0.0, vmax=1.0, cmap=cmap)
        self.colorbar = self.figure.colorbar(self.image, ax=self.axes, label=colorbar_label, pad=0.02)
        changing = [self.image, self.colorbar.ax, *self.axes.spines.values()]
        for artist in changing:
            artist.set_visible(False)
        self.axes.set_title("")
        self.figure.canvas.draw()
        self.background = self.figure.canvas.copy_from_bbox(self.figure.bbox)
        for artist in changing:
            artist.set_visible(True)

    def save(self, specs: dict, paths: dict, titles: dict, *, vmin: float, vmax: float) -> None:
        import matplotlib.image

        canvas, axes = self.figure.canvas, self.axes
        canvas.restore_region(self.background)
        self.image.set_clim(vmin, vmax)
        self.figure.draw_artist(self.colorbar.ax)
        series = canvas.copy_from_bbox(self.figure.bbox)
        for name, spec in specs.items():
            canvas.restore_region(series)
            self.image.set_data(spec)
            axes.draw_artist(self.image)
            for spine in axes.spines.values():
                axes.draw_artist(spine)
            axes.set_title(titles[name])
            axes.draw_artist(axes.title)
            matplotlib.image.imsave(paths[name], canvas.buffer_rgba(), format="png", origin="upper",
                                    dpi=self.figure.dpi, pil_kwargs=dict(PNG_OPTIONS))


@functools.lru_cache(maxsize=8)
def _mel_canvas(shape: tuple, sample_rate: int, hop_length: int, cmap: str, colorbar_label: str) -> _MelCanvas:
    return _MelCanvas(shape, sample_rate, hop_length, cmap, colorbar_label)


def _save_mel_series(specs: dict, sample_rate: int, paths: dict, titles: dict, *, hop_length: int,
                     vmin: float, vmax: float, cmap: str, colorbar_label: str) -> None:
    """Draw same-shaped spectrograms on one canvas (identical axes and colour scale by construction)."""
    shape = tuple(next(iter(specs.values())).shape)
    with _DRAW_LOCK:
        canvas = _mel_canvas(shape, int(sample_rate), int(hop_length), cmap, colorbar_label)
        canvas.save(specs, paths, titles, vmin=vmin, vmax=vmax)


def mel_spectrograms(
    versions: dict[str, np.ndarray], sample_rate: int, out_dir, *, hop_length: int = 512, specs: dict | None = None
) -> dict[str, Path]:
    """One Mel spectrogram PNG per version, on one shared dB colour scale and identical axes.

    Levels are in dB relative to the loudest Mel bin of all versions (0 dB), and the scale runs
    down ``DB_RANGE`` = 80 dB from there, so a darker image always means less energy and the
    same colour means the same level in every version. Returns name → ``mel_<name>.png``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = specs or {name: mel_db(audio, sample_rate, hop_length=hop_length) for name, audio in versions.items()}
    loudest = max(float(s.max()) for s in specs.values())
    relative = {name: spec - loudest for name, spec in specs.items()}
    paths = {name: out_dir / f"mel_{name}.png" for name in specs}
    titles = {n: _versions.TITLES.get(n, n) for n in specs}
    _save_mel_series(relative, sample_rate, paths, titles, hop_length=hop_length,
                     vmin=-DB_RANGE, vmax=0.0, cmap="magma", colorbar_label=MEL_COLORBAR_LABEL)
    return paths


def mel_differences(
    versions: dict[str, np.ndarray], sample_rate: int, out_dir, *, reference: str = "input", hop_length: int = 512,
    specs: dict | None = None,
) -> dict[str, Path]:
    """Mel dB difference (output − reference) per output, clipped to ±20 dB; blue = removed, red = added.

    Returns name → ``mel_diff_<name>.png`` for every version but the reference.
    """
    out_dir = Path(out_dir)
    specs = specs or {name: mel_db(audio, sample_rate, hop_length=hop_length) for name, audio in versions.items()}
    ref = specs[reference]
    specs = {n: spec - ref for n, spec in specs.items() if n != reference}
    if not specs:
        return {}
    paths = {name: out_dir / f"mel_diff_{name}.png" for name in specs}
    titles = {n: f"{_versions.TITLES.get(n, n)} − input (Mel dB)" for n in specs}
    _save_mel_series(specs, sample_rate, paths, titles, hop_length=hop_length, vmin=-20.0, vmax=20.0,
                     cmap="RdBu_r", colorbar_label="dB (output − input)")
    return paths


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
    The dB axis spans 105 dB: from 100 dB below the highest point of any curve to 5 dB above it.
    """
    spectra = {name: average_spectrum_db(audio, sample_rate) for name, audio in versions.items()}
    key = (tuple(spectra), int(sample_rate), float(settings.band_limit_hz(sample_rate)), float(settings.hber_cutoff_hz))
    with _DRAW_LOCK:
        _spectrum_canvas(*key).save(spectra, path)
    return Path(path)


class _SpectrumCanvas:
    """The long-term-spectrum figure, kept between calls, whose static pixels are drawn once.

    The frequency axis, band shading, title and labels depend only on the version names, the
    rate and the band edges; they are drawn once into a saved background. A call then draws
    the dB axis (its range follows the data), the curves, the cutoff line, the spines, the
    text and the legend, in the order and stacking a full draw uses, so every PNG has the same
    pixels as a full ``savefig`` (``tests/test_plots.py`` compares them).
    """

    def __init__(self, names: tuple, sample_rate: int, band_hz: float, cutoff_hz: float):
        fig = _figure(10.0, 3.6, margins=_SPECTRUM_MARGINS)
        ax = fig.add_subplot()
        self.figure, self.axes = fig, ax
        self.lines = [
            ax.semilogx([1.0, 2.0], [0.0, 0.0], label=_versions.TITLES.get(name, name),
                        color=_versions.COLORS.get(name), linewidth=1.2)[0]
            for name in names
        ]
        self.cutoff = ax.axvline(cutoff_hz, color="black", linestyle="--", linewidth=1)
        self.text = ax.text(cutoff_hz, 0.98, " HBER cutoff", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
        ax.axvspan(band_hz, sample_rate / 2, color="grey", alpha=0.15, label="outside analysis band")
        ax.set_xlim(20, sample_rate / 2)
        ax.set_ylim(-100.0, 5.0)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("power spectral density (dB re FS²/Hz)")
        ax.set_title(SPECTRUM_TITLE)
        ax.grid(True, which="both", alpha=0.3)
        # Outside the axes, so it never covers a curve.
        self.legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
        # Drawn per call, in a full draw's order: axes (zorder 1.5, below lines), lines (2),
        # spines (2.5), text (3), legend (5).
        self.changing = [ax.yaxis, *self.lines, self.cutoff, *ax.spines.values(), self.text, self.legend]
        for artist in self.changing:
            artist.set_visible(False)
        fig.canvas.draw()
        self.background = fig.canvas.copy_from_bbox(fig.bbox)
        for artist in self.changing:
            artist.set_visible(True)

    def save(self, spectra: dict, path) -> None:
        import matplotlib.image

        top = -np.inf
        for line, (freqs, db) in zip(self.lines, spectra.values()):
            top = max(top, float(db[1:].max()))
            line.set_data(freqs[1:], db[1:])
        self.axes.set_ylim(top - 100.0, top + 5.0)
        canvas = self.figure.canvas
        canvas.restore_region(self.background)
        for artist in self.changing:
            self.axes.draw_artist(artist)
        matplotlib.image.imsave(path, canvas.buffer_rgba(), format="png", origin="upper", dpi=self.figure.dpi,
                                pil_kwargs=dict(PNG_OPTIONS))


@functools.lru_cache(maxsize=4)
def _spectrum_canvas(names: tuple, sample_rate: int, band_hz: float, cutoff_hz: float) -> _SpectrumCanvas:
    return _SpectrumCanvas(names, sample_rate, band_hz, cutoff_hz)


def warm_up(*, duration_s: float = 5.0, sample_rate: int = 32000) -> None:
    """Pay the cold costs once, off the request path.

    That is librosa's and numba's first calls, matplotlib's fonts, and the laid-out figures
    (:class:`_MelCanvas`, :class:`_SpectrumCanvas`) for the three versions of a
    ``duration_s`` clip at ``sample_rate``, which every later request of that length reuses.
    The defaults are the app's default request (5 s of MusicGen audio at 32 kHz).
    """
    import tempfile

    frames = int(round(duration_s * sample_rate))
    audio = (np.random.default_rng(0).standard_normal((1, frames)) * 0.1).astype(np.float32)
    versions = {name: audio for name in _versions.VERSIONS}
    with tempfile.TemporaryDirectory() as tmp:
        specs = {name: mel_db(audio, sample_rate) for name in versions}
        mel_spectrograms(versions, sample_rate, tmp, specs=specs)
        mel_differences(versions, sample_rate, tmp, specs=specs)
        average_spectra(versions, sample_rate, Path(tmp) / "spectrum.png")


# --------------------------------------------------------------------------- alt text


def _khz(hz: float) -> str:
    return f"{hz / 1000:.1f} kHz"


def mel_alt_text(version: str, *, duration_s: float, sample_rate: int, bandwidth_hz: float | None = None,
                 title: str | None = None) -> str:
    """What the Mel spectrogram of ``version`` shows, for a screen reader (the image's ``alt``).

    ``bandwidth_hz`` (the version's 99 % roll-off, from the metrics) says where its energy ends.
    """
    name = title or _versions.TITLES.get(version, version)
    text = (f"Mel spectrogram of {name}: time 0 to {duration_s:.1f} s across, frequency 0 to "
            f"{_khz(sample_rate / 2)} upwards on a Mel scale; brighter means louder, from 0 dB (the loudest "
            f"bin of all versions) down to −{DB_RANGE:g} dB.")
    if bandwidth_hz is not None:
        text += f" 99 % of its energy lies below {_khz(bandwidth_hz)}."
    return text


def mel_difference_alt_text(version: str, *, duration_s: float, sample_rate: int,
                            hber_delta_db: float | None = None) -> str:
    """What the difference spectrogram of ``version`` (output − input) shows, for a screen reader."""
    name = _versions.TITLES.get(version, version)
    text = (f"Difference of Mel spectrograms, {name} minus input, over {duration_s:.1f} s and 0 to "
            f"{_khz(sample_rate / 2)}: red where {name} added energy, blue where it removed energy, "
            "clipped at ±20 dB.")
    if hber_delta_db is not None:
        text += (f" Above the high-band cutoff it has {abs(hber_delta_db):.2g} dB "
                 f"{'more' if hber_delta_db >= 0 else 'less'} energy share than the input.")
    return text


def spectrum_alt_text(bandwidths_hz: dict[str, float | None], *, cutoff_hz: float, band_hz: float) -> str:
    """What the long-term spectrum shows: one curve per version, the cutoff, and where each curve ends."""
    names = [_versions.TITLES.get(v, v) for v in bandwidths_hz]
    text = (f"Long-term average spectrum, level in dB against frequency on a log scale, one curve each for "
            f"{', '.join(names)}. A dashed line marks the {_khz(cutoff_hz)} high-band cutoff; above "
            f"{_khz(band_hz)} is shaded, outside the analysis band.")
    ends = [f"{_versions.TITLES.get(v, v)} {_khz(hz)}" for v, hz in bandwidths_hz.items() if hz is not None]
    if ends:
        text += f" 99 % of the energy lies below: {'; '.join(ends)}."
    return text

"""The figures drawn from cached canvases have the same pixels as a full draw of each figure.

``plots`` draws the static parts of a figure (axes, ticks, labels) once and, per image,
only what changes. These tests draw the same figures the plain way — a new figure and a
full ``savefig`` each — and compare every pixel, across canvas reuse with other data.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from restoration import plots
from restoration.versions import COLORS, TITLES
from restoration.settings import MetricSettings

NAMES = ("input", "demucs", "spectral_gating")


def clip_versions(seed: int, seconds: float, sample_rate: int) -> dict:
    rng = np.random.default_rng(seed)
    frames = int(seconds * sample_rate)
    versions = {name: (rng.standard_normal((1, frames)) * 0.05 * (i + 1) * (seed + 1)).astype(np.float32)
                for i, name in enumerate(NAMES)}
    versions["demucs"][:, : sample_rate // 2] *= 0.01  # a quiet stretch: other colours, other scale
    return versions


def full_draw_mel(spec, sample_rate, path, *, title, vmin, vmax, cmap, label):
    fig = plots._figure(5.0, 3.2, margins=plots._MEL_MARGINS)
    ax = fig.add_subplot()
    image = plots._draw_mel(ax, spec, sample_rate, hop_length=512, vmin=vmin, vmax=vmax, cmap=cmap)
    fig.colorbar(image, ax=ax, label=label, pad=0.02)
    ax.set_title(title)
    fig.savefig(path)


def full_draw_spectrum(versions, sample_rate, path, settings=MetricSettings()):
    fig = plots._figure(10.0, 3.6, margins={"left": 0.08, "right": 0.80, "bottom": 0.14, "top": 0.9})
    ax = fig.add_subplot()
    top = -np.inf
    for name, audio in versions.items():
        freqs, db = plots.average_spectrum_db(audio, sample_rate)
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
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    fig.savefig(path)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.mark.parametrize(("seed", "seconds", "sample_rate"), [(0, 5.0, 32000), (1, 5.0, 32000), (2, 3.0, 44100)])
def test_cached_canvases_draw_the_pixels_of_a_full_draw(tmp_path, seed, seconds, sample_rate):
    plots.warm_up(duration_s=5.0, sample_rate=32000)  # the canvases exist already, drawn for other data
    versions = clip_versions(seed, seconds, sample_rate)
    specs = {name: plots.mel_db(audio, sample_rate) for name, audio in versions.items()}
    fast = tmp_path / "fast"
    mel = plots.mel_spectrograms(versions, sample_rate, fast, specs=specs)
    diff = plots.mel_differences(versions, sample_rate, fast, specs=specs)
    spectrum = plots.average_spectra(versions, sample_rate, fast / "spectrum.png")

    slow = tmp_path / "slow"
    slow.mkdir()
    loudest = max(float(s.max()) for s in specs.values())
    for name in NAMES:
        full_draw_mel(specs[name] - loudest, sample_rate, slow / mel[name].name, title=TITLES[name],
                      vmin=-plots.DB_RANGE, vmax=0.0, cmap="magma", label="dB below the loudest bin")
    for name in NAMES[1:]:
        full_draw_mel(specs[name] - specs["input"], sample_rate, slow / diff[name].name,
                      title=f"{TITLES[name]} − input (Mel dB)", vmin=-20.0, vmax=20.0, cmap="RdBu_r",
                      label="dB (output − input)")
    full_draw_spectrum(versions, sample_rate, slow / "spectrum.png")

    for path in [*mel.values(), *diff.values(), spectrum]:
        expected = pixels(slow / path.name)
        got = pixels(path)
        assert got.shape == expected.shape, path.name
        differing = int((got != expected).any(axis=-1).sum())
        assert differing == 0, f"{path.name}: {differing} pixels differ from a full draw"


def test_mel_colour_scale_is_relative_to_the_loudest_bin(tmp_path):
    """The loudest bin of all versions is 0 dB, the bar runs 80 dB down from it (never above 0)."""
    versions = clip_versions(0, 2.0, 32000)
    plots.mel_spectrograms(versions, 32000, tmp_path)
    shape = tuple(plots.mel_db(versions["input"], 32000).shape)
    canvas = plots._mel_canvas(shape, 32000, 512, "magma", plots.MEL_COLORBAR_LABEL)
    assert canvas.image.get_clim() == (-plots.DB_RANGE, 0.0)
    assert canvas.colorbar.ax.get_ylabel() == "dB below the loudest bin"
    ticks = canvas.colorbar.get_ticks()
    assert max(ticks) <= 0.0 and min(ticks) >= -plots.DB_RANGE


def test_spectrum_legend_lies_outside_the_curves(tmp_path):
    """The legend's box and the axes' box do not overlap, so no curve is ever hidden."""
    versions = clip_versions(1, 2.0, 32000)
    plots.average_spectra(versions, 32000, tmp_path / "spectrum.png")
    settings = MetricSettings()
    canvas = plots._spectrum_canvas(tuple(versions), 32000, float(settings.band_limit_hz(32000)),
                                    float(settings.hber_cutoff_hz))
    renderer = canvas.figure.canvas.get_renderer()
    legend = canvas.legend.get_window_extent(renderer)
    axes = canvas.axes.get_window_extent(renderer)
    assert legend.x0 >= axes.x1, (legend, axes)
    assert legend.x1 <= canvas.figure.bbox.x1  # and it is not cut off


def test_alt_texts_say_what_each_figure_shows():
    mel = plots.mel_alt_text("demucs", duration_s=5.0, sample_rate=32000, bandwidth_hz=11_250.0)
    assert mel.startswith("Mel spectrogram of Demucs")
    assert "5.0 s" in mel and "16.0 kHz" in mel and "−80 dB" in mel and "below 11.2 kHz" in mel
    diff = plots.mel_difference_alt_text("spectral_gating", duration_s=3.0, sample_rate=44100, hber_delta_db=-2.5)
    assert "Spectral gating minus input" in diff and "2.5 dB less" in diff and "22.1 kHz" in diff
    spectrum = plots.spectrum_alt_text({"input": 8000.0, "demucs": None, "spectral_gating": 7000.0},
                                       cutoff_hz=8000.0, band_hz=15000.0)
    assert "Input, Demucs, Spectral gating" in spectrum
    assert "8.0 kHz high-band cutoff" in spectrum and "Input 8.0 kHz; Spectral gating 7.0 kHz" in spectrum


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("freq_hz", [250.0, 1000.0, 4000.0, 10000.0])
def test_a_sines_mel_spectrogram_peaks_in_the_band_holding_its_frequency(freq_hz):
    import librosa

    sr = 32000
    t = np.arange(2 * sr) / sr
    sine = (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)[None]
    spec = plots.mel_db(sine, sr)
    band = int(np.argmax(spec[:, 5:-5].mean(axis=1)))  # frames away from the padded edges
    # Band k of a Mel filterbank is a triangle from edge k to edge k + 2 (Slaney Mel scale, as librosa builds it).
    edges = librosa.mel_frequencies(n_mels=spec.shape[0] + 2, fmin=0.0, fmax=sr / 2)
    assert edges[band] < freq_hz < edges[band + 2]
    assert abs(edges[band + 1] - freq_hz) <= (edges[band + 2] - edges[band]) / 2  # the nearest band centre


def test_white_noise_long_term_spectrum_lies_at_its_analytic_level():
    """One-sided PSD of white noise of variance σ² sampled at fs: 2σ²/fs per Hz, flat."""
    sr, sigma = 32000, 0.1
    noise = (sigma * np.random.default_rng(0).standard_normal((1, 8 * sr))).astype(np.float32)
    freqs, psd_db = plots.average_spectrum_db(noise, sr)
    inner = (freqs > 50.0) & (freqs < sr / 2 - 50.0)
    expected = 10 * np.log10(2 * sigma**2 / sr)  # −59.0 dB re full scale per Hz
    assert np.median(psd_db[inner]) == pytest.approx(expected, abs=1.0)
    assert np.mean(psd_db[inner]) == pytest.approx(expected, abs=1.0)
    assert np.percentile(np.abs(psd_db[inner] - expected), 95) < 3.0  # flat: no band far off the level

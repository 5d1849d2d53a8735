"""Known-answer test signals (float32, (channels, frames))."""

from __future__ import annotations

import numpy as np

SR = 32000


def white_noise(seconds: float = 4.0, *, sr: int = SR, rms: float = 0.1, seed: int = 0, channels: int = 1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(seconds * sr))) * rms).astype(np.float32)


def sine(freq_hz: float = 1000.0, seconds: float = 4.0, *, sr: int = SR, peak: float = 0.1):
    t = np.arange(int(seconds * sr)) / sr
    return (peak * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)[None, :]


def lowpassed_noise(cutoff_hz: float = 4000.0, seconds: float = 4.0, *, sr: int = SR, seed: int = 0):
    from scipy.signal import butter, sosfiltfilt

    sos = butter(12, cutoff_hz, fs=sr, output="sos")
    return sosfiltfilt(sos, white_noise(seconds, sr=sr, seed=seed)).astype(np.float32)


def tone_then_noise_bed(*, bed_dbfs: float = -60.0, sr: int = SR, seed: int = 1):
    """2 s of a loud tone, then 2 s of silence, all over a noise bed of RMS ``bed_dbfs``."""
    rng = np.random.default_rng(seed)
    n = 4 * sr
    x = np.zeros(n)
    x[: 2 * sr] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)
    x += rng.standard_normal(n) * 10 ** (bed_dbfs / 20)
    return x.astype(np.float32)[None, :]

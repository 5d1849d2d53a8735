"""Spectral-gating baseline (noisereduce)."""

from __future__ import annotations

import numpy as np

from .audio import fit_length, validate_audio
from .settings import GatingSettings


def spectral_gate(audio: np.ndarray, sample_rate: int, *, settings: GatingSettings = GatingSettings()) -> np.ndarray:
    """Denoise ``audio`` by spectral gating and return it with the input's shape and rate.

    Each STFT bin is attenuated by ``prop_decrease`` where its magnitude falls below a
    threshold of ``threshold_std`` standard deviations above the estimated noise level.
    Stationary gating estimates one noise spectrum from the whole clip; non-stationary
    gating tracks it with a ``time_constant_s`` = 2 s smoother. Channels are gated
    independently: each channel is one noisereduce call with its own noise estimate
    (noisereduce, given several channels, averages one stationary estimate over them, so a
    noisy channel would set the threshold of a clean one). ``prop_decrease`` = 0 removes
    nothing and returns a copy of the waveform (noisereduce's stationary mask smoothing would
    still dip at the spectrum's edges, by up to 0.01 in amplitude on a note over noise). The
    caller's array is not modified.
    """
    audio = validate_audio(audio, sample_rate)
    if float(settings.prop_decrease) == 0.0:
        return np.array(audio, dtype=np.float32, copy=True)
    out = np.stack([_gate_channel(channel, int(sample_rate), settings) for channel in audio])
    return np.ascontiguousarray(out, dtype=np.float32)


def _gate_channel(channel: np.ndarray, sample_rate: int, settings: GatingSettings) -> np.ndarray:
    """One channel through ``noisereduce.reduce_noise``, trimmed or padded to its length."""
    import noisereduce

    threshold = settings.resolved_threshold_std()
    kwargs = dict(
        y=np.array(channel, dtype=np.float32, copy=True),
        sr=sample_rate,
        stationary=bool(settings.stationary),
        prop_decrease=float(settings.prop_decrease),
        n_jobs=1,
    )
    if settings.stationary:
        kwargs["n_std_thresh_stationary"] = threshold
    else:
        kwargs["thresh_n_mult_nonstationary"] = threshold
    out = np.asarray(noisereduce.reduce_noise(**kwargs), dtype=np.float32).reshape(1, -1)
    return fit_length(out, channel.shape[-1])[0]

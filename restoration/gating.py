"""Spectral-gating baseline (noisereduce)."""

from __future__ import annotations

import numpy as np

from .audio import validate_audio
from .settings import GatingSettings


def spectral_gate(audio: np.ndarray, sample_rate: int, *, settings: GatingSettings = GatingSettings()) -> np.ndarray:
    """Denoise ``audio`` by spectral gating and return it with the input's shape and rate.

    Each STFT bin is attenuated by ``prop_decrease`` where its magnitude falls below a
    threshold of ``threshold_std`` standard deviations above the estimated noise level.
    Stationary gating estimates one noise spectrum from the whole clip; non-stationary
    gating tracks it with a ``time_constant_s`` = 2 s smoother. Channels are gated
    independently. The caller's array is not modified.
    """
    import noisereduce

    audio = validate_audio(audio, sample_rate)
    threshold = settings.resolved_threshold_std()
    kwargs = dict(
        y=np.array(audio, dtype=np.float32, copy=True),  # noisereduce takes (channels, frames)
        sr=int(sample_rate),
        stationary=bool(settings.stationary),
        prop_decrease=float(settings.prop_decrease),
        n_jobs=1,
    )
    if settings.stationary:
        kwargs["n_std_thresh_stationary"] = threshold
    else:
        kwargs["thresh_n_mult_nonstationary"] = threshold
    out = np.asarray(noisereduce.reduce_noise(**kwargs), dtype=np.float32).reshape(audio.shape[0], -1)
    if out.shape[-1] != audio.shape[-1]:  # noisereduce keeps the length; guard the contract anyway
        from .audio import fit_length

        out = fit_length(out, audio.shape[-1])
    return np.ascontiguousarray(out)

"""Paying a run's first-call costs before it comes: imports, numba compilations, figures, models.

The app runs :func:`warm_up` in a thread after it starts serving; the command line's forked
restoration process (:mod:`restoration.sidecar`) runs it while MusicGen loads and samples.
"""

from __future__ import annotations

import logging
import time

import numpy as np

logger = logging.getLogger(__name__)


def warm_up(*, duration_s: float = 5.0, sample_rate: int = 32000, musicgen: bool = False,
            mode: str | None = None) -> dict[str, float]:
    """Pay the first-call costs of a run before it comes; seconds per step.

    Steps: the figures for a ``duration_s`` clip at ``sample_rate`` Hz (matplotlib, the
    laid-out canvases), the metrics and spectral gating (librosa, numba), loading Demucs, and
    with ``musicgen`` loading MusicGen in ``mode`` (see
    :func:`restoration.generation.resolve_mode`). Nothing here raises: whatever fails (a model
    that cannot be loaded, say) is logged at INFO and left for the real call to report.
    """
    from . import plots, separation
    from .errors import RestorationError
    from .gating import spectral_gate
    from .metrics import measure_versions
    from .versions import GATING, INPUT

    timings: dict[str, float] = {}

    def step(name: str, fn) -> None:
        start = time.perf_counter()
        try:
            fn()
        except RestorationError as exc:
            logger.info("warm-up: %s skipped: %s", name, exc)
        except Exception:  # an optimisation: the real call meets (and reports) the same failure
            logger.info("warm-up: %s failed", name, exc_info=True)  # the app's log; silent on the command line
        timings[name] = round(time.perf_counter() - start, 3)

    def metrics() -> None:
        noise = (np.random.default_rng(0).standard_normal((1, sample_rate)) * 0.1).astype(np.float32)
        measure_versions({INPUT: noise, GATING: spectral_gate(noise, sample_rate)}, sample_rate)

    def load_musicgen() -> None:
        from . import generation

        generation.load_musicgen(mode=generation.resolve_mode(mode))

    step("figures", lambda: plots.warm_up(duration_s=duration_s, sample_rate=sample_rate))
    step("metrics", metrics)
    if musicgen:
        step("MusicGen", load_musicgen)
    step("Demucs", separation.load_demucs)
    return timings

"""The pipeline: prompt (or audio) → input, Demucs and spectral-gating versions → report.

Every version leaves this module at the input's sample rate, channel layout and length,
so the metrics, plots and players compare like with like.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import LoudnessMatch, loudness_match, validate_audio
from .errors import CancelledError, ModelUnavailableError
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings

VERSIONS = ("input", "demucs", "spectral_gating")

#: progress(stage, fraction of the stage done or None, human detail)
Progress = Callable[[str, "float | None", str], None]


@dataclass
class Report:
    """Everything one comparison produced. Audio is float32 ``(channels, frames)`` at ``sample_rate``."""

    sample_rate: int
    versions: dict[str, np.ndarray]
    residual: np.ndarray | None
    listening: dict[str, np.ndarray]
    loudness: dict[str, LoudnessMatch]
    metrics: dict[str, dict]
    source: dict
    settings: dict
    timings_s: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)  # e.g. a helper process's peak RSS in MB

    def summary(self) -> dict:
        """The JSON-ready part of the report (no audio)."""
        return {
            "source": self.source,
            "sample_rate": self.sample_rate,
            "channels": int(self.versions["input"].shape[0]),
            "frames": int(self.versions["input"].shape[-1]),
            "duration_s": self.versions["input"].shape[-1] / self.sample_rate,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "unavailable": self.unavailable,
            "loudness_matching": {k: asdict(v) for k, v in self.loudness.items()},
            **({"resources": self.resources} if self.resources else {}),
        }


class _Stages:
    """Times stages, reports progress and honours a stop event between stages."""

    def __init__(self, progress: Progress | None, stop_event: threading.Event | None):
        self.progress = progress
        self.stop_event = stop_event
        self.timings: dict[str, float] = {}

    def check(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            raise CancelledError("stopped by the user")

    def report(self, stage: str, fraction: float | None, detail: str = "") -> None:
        if self.progress is not None:
            self.progress(stage, fraction, detail)

    @contextmanager
    def stage(self, name: str, detail: str = ""):
        self.check()
        self.report(name, 0.0, detail)
        start = time.perf_counter()
        yield
        key = f"{name} ({detail})" if detail else name  # "loading models (MusicGen)", "(Demucs)"
        self.timings[key] = round(time.perf_counter() - start, 4)
        self.report(name, 1.0, detail)
        self.check()


def generate_input(
    prompt: str,
    *,
    generation: GenerationSettings,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    on_chunk=None,
    timings: dict | None = None,
) -> tuple[np.ndarray, int]:
    """Generate the input clip with MusicGen, reporting token progress as stage "generating"."""
    from . import generation as gen

    stages = _Stages(progress, stop_event)
    with stages.stage("loading models", "MusicGen"):
        gen.load_musicgen(mode=generation.mode)

    def on_tokens(done: int, total: int) -> None:
        stages.report("generating", done / max(total, 1), f"token {done} of {total}")

    with stages.stage("generating"):
        audio, sample_rate = gen.generate(
            prompt, settings=generation, on_progress=on_tokens, on_chunk=on_chunk, stop_event=stop_event
        )
    if timings is not None:
        timings.update(stages.timings)
    return audio, sample_rate


def compare(
    audio: np.ndarray,
    sample_rate: int,
    *,
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    source: dict | None = None,
    require_demucs: bool = True,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    timings: dict | None = None,
    extra_settings: dict | None = None,
) -> Report:
    """Restore ``audio`` both ways, measure every version, and return the report.

    With ``require_demucs=False`` an unloadable Demucs model does not fail the call: the
    report then lacks the ``demucs`` version and ``unavailable["demucs"]`` says why.
    """
    from . import separation
    from .gating import spectral_gate
    from .metrics import measure_versions

    audio = validate_audio(audio, sample_rate)
    stages = _Stages(progress, stop_event)
    if timings:
        stages.timings.update(timings)
    versions = {"input": audio}
    residual = None
    unavailable: dict[str, str] = {}

    try:
        with stages.stage("loading models", "Demucs"):
            separation.load_demucs()
    except ModelUnavailableError as exc:
        if require_demucs:
            raise
        unavailable["demucs"] = str(exc)
    if "demucs" not in unavailable:
        with stages.stage("demucs"):
            result = separation.restore(
                audio,
                sample_rate,
                settings=demucs,
                on_progress=lambda f: stages.report("demucs", f, "separating"),
                stop_event=stop_event,
            )
        versions["demucs"] = result.restored
        residual = result.residual
    with stages.stage("gating"):
        versions["spectral_gating"] = spectral_gate(audio, sample_rate, settings=gating)
    with stages.stage("metrics"):
        table = measure_versions(versions, sample_rate, settings=metrics)
    with stages.stage("loudness matching"):
        listening, loudness = loudness_match(versions, sample_rate)
    settings = {
        "demucs": {**asdict(demucs), "model": separation.model_name()},
        "gating": asdict(gating) | {"threshold_std_used": gating.resolved_threshold_std()},
        "metrics": asdict(metrics),
        **(extra_settings or {}),
    }
    return Report(
        sample_rate=int(sample_rate),
        versions=versions,
        residual=residual,
        listening=listening,
        loudness=loudness,
        metrics=table,
        source=dict(source or {}),
        settings=settings,
        timings_s=stages.timings,
        unavailable=unavailable,
    )


def warm_up(*, duration_s: float = 5.0, sample_rate: int = 32000, musicgen: bool = False,
            mode: str | None = None) -> dict[str, float]:
    """Pay the first-call costs of a run before it comes; seconds per step.

    Steps: the figures for a ``duration_s`` clip at ``sample_rate`` Hz (matplotlib, the
    laid-out canvases), the metrics and spectral gating (librosa, numba), loading Demucs, and
    with ``musicgen`` loading MusicGen in ``mode`` (see
    :func:`restoration.generation.resolve_mode`). Nothing here raises: whatever fails (a model
    that cannot be loaded, say) is logged at INFO and left for the real call to report.
    """
    import logging

    from . import plots, separation
    from .errors import RestorationError
    from .gating import spectral_gate
    from .metrics import measure_versions

    logger = logging.getLogger(__name__)
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
        measure_versions({"input": noise, "spectral_gating": spectral_gate(noise, sample_rate)}, sample_rate)

    def load_musicgen() -> None:
        from . import generation

        generation.load_musicgen(mode=generation.resolve_mode(mode))

    step("figures", lambda: plots.warm_up(duration_s=duration_s, sample_rate=sample_rate))
    step("metrics", metrics)
    if musicgen:
        step("MusicGen", load_musicgen)
    step("Demucs", separation.load_demucs)
    return timings


def run_prompt(
    prompt: str,
    *,
    generation: GenerationSettings = GenerationSettings(),
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    on_chunk=None,
    finish=None,
) -> Report:
    """Generate a clip from ``prompt`` and compare its restorations (see :func:`compare`).

    ``finish``, when given, replaces the comparison: it is called as
    ``finish(audio, sample_rate, started=<perf_counter at the start>, stop_event=…, **compare_kwargs)``
    and returns the report (:func:`restoration.sidecar.finisher` gives one that runs in a
    process warmed up while MusicGen sampled, and writes the report).
    """
    from . import generation as gen
    from .settings import validate_prompt

    prompt = validate_prompt(prompt)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    audio, sample_rate = generate_input(
        prompt, generation=generation, progress=progress, stop_event=stop_event, on_chunk=on_chunk, timings=timings
    )
    compare_kwargs = dict(
        demucs=demucs,
        gating=gating,
        metrics=metrics,
        source={"kind": "prompt", "prompt": prompt, "seed": generation.seed, "model": gen.current_model_id()},
        timings=timings,
        extra_settings={"generation": asdict(generation)},
    )
    if finish is not None:
        return finish(audio, sample_rate, started=start, stop_event=stop_event, **compare_kwargs)
    report = compare(audio, sample_rate, progress=progress, stop_event=stop_event, **compare_kwargs)
    report.timings_s["total"] = round(time.perf_counter() - start, 4)
    return report


def run_file(
    path,
    *,
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    require_demucs: bool = True,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> Report:
    """Read an audio file (wav, flac, ogg, mp3) and compare its restorations.

    Raises :class:`~restoration.errors.BadInputError` for an unreadable, empty, over-long or
    silent file (see :func:`restoration.audio.read_audio`, :func:`~restoration.audio.check_not_silent`).
    """
    from .audio import check_not_silent, read_audio

    start = time.perf_counter()
    audio, sample_rate = read_audio(path)
    check_not_silent(audio, name=Path(path).name)
    report = compare(
        audio,
        sample_rate,
        demucs=demucs,
        gating=gating,
        metrics=metrics,
        source={"kind": "file", "file": Path(path).name},
        require_demucs=require_demucs,
        progress=progress,
        stop_event=stop_event,
    )
    report.timings_s["total"] = round(time.perf_counter() - start, 4)
    return report

"""The pipeline: one flow from a prompt, a file or a clip in memory to a :class:`Report`.

::

    run(prompt=… | file=… | clip=…)        the one flow; progress, stop and streaming are parameters
      1. the input clip:  generate_clip (MusicGen) | read_clip (a file) | a Clip already in memory
      2. finish(...)      default finish_comparison: compare + total time; or the same elsewhere
                          (restoration.sidecar runs it in a forked, warmed-up process and writes)
           compare:       Demucs → spectral gating → metrics → loudness matching

Front doors: :func:`run_prompt`, :func:`run_file`, and :func:`run_generated` for a clip
MusicGen already produced (``batch`` generates several together, then finishes each here).

Every version leaves this module at the input's sample rate, channel layout and length,
so the metrics, plots and players compare like with like. Figures are drawn by
:mod:`restoration.outputs`, not here.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import loudness_match, validate_audio
from .errors import BadInputError, CancelledError, ModelUnavailableError
from .report import Report
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings, validate_prompt
from .versions import DEMUCS, GATING, INPUT

__all__ = ["Clip", "Progress", "Report", "compare", "finish_comparison", "generate_clip", "prompt_clip",
           "public_model_name", "read_clip", "run", "run_file", "run_generated", "run_prompt"]

#: progress(stage, fraction of the stage done or None, human detail)
Progress = Callable[[str, "float | None", str], None]
#: finish(audio, sample_rate, *, started, stop_event, **compare_kwargs) -> Report; see :func:`finish_comparison`
Finish = Callable[..., Report]


@dataclass(frozen=True)
class Clip:
    """An input clip in memory: float32 ``(channels, frames)`` audio at ``sample_rate`` Hz.

    ``source`` goes to :attr:`Report.source` as it is; ``generation`` (for a generated clip)
    goes to ``report.settings["generation"]``.
    """

    audio: np.ndarray
    sample_rate: int
    source: dict
    generation: GenerationSettings | None = None


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


# --------------------------------------------------------------------------- the input clip


def public_model_name(model_id: str) -> str:
    """A model id safe to record and show: a local folder by its name only, never its server path.

    ``"facebook/musicgen-small"`` stays as it is; ``"/srv/models/musicgen"`` becomes ``"musicgen"``.
    """
    model_id = str(model_id)
    path = Path(model_id)
    local = path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") > 1
    return path.name if local else model_id


def prompt_clip(audio: np.ndarray, sample_rate: int, *, prompt: str, generation: GenerationSettings,
                model_id: str | None = None) -> Clip:
    """The :class:`Clip` of audio MusicGen generated from ``prompt`` with ``generation``.

    ``model_id`` defaults to the model :func:`restoration.generation.current_model_id` names;
    it is recorded through :func:`public_model_name`.
    """
    if model_id is None:
        from .generation import current_model_id

        model_id = current_model_id()
    source = {"kind": "prompt", "prompt": prompt, "seed": generation.seed, "model": public_model_name(model_id)}
    return Clip(audio=audio, sample_rate=int(sample_rate), source=source, generation=generation)


def generate_clip(
    prompt: str,
    *,
    generation: GenerationSettings,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    on_chunk=None,
    timings: dict | None = None,
) -> Clip:
    """Generate the input clip with MusicGen, reporting token progress as stage "generating".

    ``on_chunk(audio_so_far, sample_rate)`` is called as audio is decoded (streaming);
    stage times are added to ``timings``.
    """
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
    return prompt_clip(audio, sample_rate, prompt=prompt, generation=generation)


def read_clip(path, *, name: str | None = None) -> Clip:
    """Read an audio file (wav, flac, ogg, mp3) as a :class:`Clip`; ``name`` is what the report calls it.

    Raises :class:`~restoration.errors.BadInputError` for an unreadable, empty, over-long or
    silent file (see :func:`restoration.audio.read_audio`, :func:`~restoration.audio.check_not_silent`).
    """
    from .audio import check_not_silent, read_audio

    name = name or Path(path).name
    audio, sample_rate = read_audio(path)
    check_not_silent(audio, name=name)
    return Clip(audio=audio, sample_rate=sample_rate, source={"kind": "file", "file": name})


# --------------------------------------------------------------------------- the comparison


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
    versions = {INPUT: audio}
    residual = None
    unavailable: dict[str, str] = {}

    try:
        with stages.stage("loading models", "Demucs"):
            separation.load_demucs()
    except ModelUnavailableError as exc:
        if require_demucs:
            raise
        unavailable[DEMUCS] = str(exc)
    if DEMUCS not in unavailable:
        with stages.stage("demucs"):
            result = separation.restore(
                audio,
                sample_rate,
                settings=demucs,
                on_progress=lambda f: stages.report("demucs", f, "separating"),
                stop_event=stop_event,
            )
        versions[DEMUCS] = result.restored
        residual = result.residual
    with stages.stage("gating"):
        versions[GATING] = spectral_gate(audio, sample_rate, settings=gating)
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


def finish_comparison(audio: np.ndarray, sample_rate: int, *, started: float, progress: Progress | None = None,
                      stop_event: threading.Event | None = None, **compare_kwargs) -> Report:
    """:func:`compare`, then ``timings_s["total"]``: seconds since ``started`` (a ``time.perf_counter()``).

    The default ``finish`` of :func:`run`; :mod:`restoration.sidecar` runs it in another process.
    """
    report = compare(audio, sample_rate, progress=progress, stop_event=stop_event, **compare_kwargs)
    report.timings_s["total"] = round(time.perf_counter() - started, 4)
    return report


def run(
    *,
    prompt: str | None = None,
    file=None,
    clip: Clip | None = None,
    file_name: str | None = None,
    generation: GenerationSettings = GenerationSettings(),
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    require_demucs: bool = True,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    on_chunk=None,
    finish: Finish | None = None,
) -> Report:
    """Run one comparison, from exactly one of ``prompt``, ``file`` or ``clip``, to a :class:`Report`.

    - ``prompt``: MusicGen generates the input with ``generation`` (:func:`generate_clip`);
      ``on_chunk(audio_so_far, sample_rate)`` receives the audio as it is decoded.
    - ``file``: a wav/flac/ogg/mp3 path (:func:`read_clip`); ``file_name`` is what the report
      calls it (default: the file's name).
    - ``clip``: a :class:`Clip` already in memory (see :func:`prompt_clip`).

    Then the versions are made and measured (:func:`compare`). ``progress(stage, fraction,
    detail)`` follows every stage; a set ``stop_event`` raises
    :class:`~restoration.errors.CancelledError` at the next stage boundary (or token).
    ``require_demucs=False`` turns a missing Demucs model into ``report.unavailable["demucs"]``.

    ``finish``, when given, replaces :func:`finish_comparison` (same signature): it is called as
    ``finish(audio, sample_rate, started=…, stop_event=…, **compare_kwargs)`` and returns the report
    (:func:`restoration.sidecar.finisher` gives one that runs in a process warmed up while
    MusicGen sampled, and writes the report).
    """
    if sum(x is not None for x in (prompt, file, clip)) != 1:
        raise BadInputError("give exactly one of a prompt, a file or a clip")
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if prompt is not None:
        clip = generate_clip(validate_prompt(prompt), generation=generation, progress=progress,
                             stop_event=stop_event, on_chunk=on_chunk, timings=timings)
    elif file is not None:
        clip = read_clip(file, name=file_name)
    compare_kwargs = dict(
        demucs=demucs,
        gating=gating,
        metrics=metrics,
        source=clip.source,
        require_demucs=require_demucs,
        timings=timings,
        extra_settings={"generation": asdict(clip.generation)} if clip.generation is not None else None,
    )
    if finish is not None:
        return finish(clip.audio, clip.sample_rate, started=start, stop_event=stop_event, **compare_kwargs)
    return finish_comparison(clip.audio, clip.sample_rate, started=start, progress=progress, stop_event=stop_event,
                             **compare_kwargs)


def run_prompt(prompt: str, **kwargs) -> Report:
    """Generate a clip from ``prompt`` and compare its restorations: :func:`run` with ``prompt``."""
    return run(prompt=prompt, **kwargs)


def run_file(path, **kwargs) -> Report:
    """Read an audio file (wav, flac, ogg, mp3) and compare its restorations: :func:`run` with ``file``."""
    return run(file=path, **kwargs)


def run_generated(audio: np.ndarray, sample_rate: int, *, prompt: str, generation: GenerationSettings,
                  model_id: str | None = None, **kwargs) -> Report:
    """Compare the restorations of a clip MusicGen already generated from ``prompt`` with ``generation``.

    ``audio`` is float32 ``(channels, frames)`` at ``sample_rate`` Hz. The report is the one
    :func:`run_prompt` would give for that clip (same ``source`` and ``settings``), without the
    generation timings. ``kwargs`` are :func:`run`'s (settings, progress, stop, finish).
    """
    clip = prompt_clip(audio, sample_rate, prompt=validate_prompt(prompt), generation=generation, model_id=model_id)
    return run(clip=clip, **kwargs)

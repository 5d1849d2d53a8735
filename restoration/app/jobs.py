"""The app's jobs: a request runs in a worker thread and streams events to the page.

:func:`stream_run` serves a request from the cache (:mod:`restoration.app.run_cache`) or runs
it through :func:`restoration.pipeline.run` in a worker thread, and yields :class:`RunEvent`\\ s:
progress (mapped to one bar by :func:`overall_fraction`), the audio generated so far, and
finally the :class:`~restoration.app.run_cache.RunResult` or the error. The "Stop" button sets
the session's stop event (:func:`stop_event_for`, :func:`request_stop`).

Only one run computes at a time (:data:`RUN_LOCK`): torch already uses every core, and two
models in flight would double the memory. A cached request never waits for it.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import CancelledError
from .requests import RunRequest
from .run_cache import (STREAM_DIR, UNCACHED_DIR, RunResult, cached_result, is_complete, load_result, prune_runs,
                        runs_root, write_run)

__all__ = ["RUN_LOCK", "STAGE_LABELS", "RunEvent", "is_cancellation", "overall_fraction", "release_stop_event",
           "request_stop", "running_stop_event", "stage_text", "stop_event_for", "stream_run"]

logger = logging.getLogger(__name__)

#: Serializes model work across every user; cached requests never take it.
RUN_LOCK = threading.Lock()
_STOP_EVENTS: dict[str, threading.Event] = {}
_STOP_GUARD = threading.Lock()


@dataclass(frozen=True)
class RunEvent:
    """One message from a running request: ``progress``, ``chunk``, ``done`` or ``error``."""

    kind: str
    stage: str = ""
    fraction: float | None = None
    detail: str = ""
    path: str | None = None
    result: RunResult | None = None
    error: BaseException | None = None


# Share of the whole run each stage takes, for one progress bar (stage, detail-of-loading).
_PROMPT_WEIGHTS = (
    ("waiting", 0.0), ("loading models:MusicGen", 0.05), ("generating", 0.55), ("loading models:Demucs", 0.03),
    ("demucs", 0.17), ("gating", 0.05), ("metrics", 0.05), ("loudness matching", 0.02), ("plots", 0.08),
)
_FILE_WEIGHTS = (
    ("waiting", 0.0), ("loading models:Demucs", 0.05), ("demucs", 0.55), ("gating", 0.1), ("metrics", 0.1),
    ("loudness matching", 0.05), ("plots", 0.15),
)
STAGE_LABELS = {
    "waiting": "Waiting for the run ahead of yours",
    "loading models": "Loading models",
    "generating": "Generating with MusicGen",
    "demucs": "Restoring with Demucs",
    "gating": "Spectral gating",
    "metrics": "Measuring",
    "loudness matching": "Loudness matching",
    "plots": "Drawing spectrograms and writing files",
}


def overall_fraction(kind: str, stage: str, fraction: float | None, detail: str = "") -> float:
    """Map a pipeline stage and its own fraction to the fraction of the whole run (0–1)."""
    weights = _PROMPT_WEIGHTS if kind == "prompt" else _FILE_WEIGHTS
    name = f"{stage}:{detail}" if stage == "loading models" else stage
    total = sum(w for _, w in weights)
    done = 0.0
    for step, weight in weights:
        if step == name:
            return min(1.0, (done + weight * float(fraction or 0.0)) / total)
        done += weight
    return min(1.0, done / total)


def stage_text(stage: str, detail: str = "") -> str:
    label = STAGE_LABELS.get(stage, stage.capitalize())
    return f"{label}: {detail}" if detail else label


def stop_event_for(session: str | None) -> threading.Event:
    """A fresh stop event for ``session``'s new run (replacing, and setting, any earlier one)."""
    event = threading.Event()
    with _STOP_GUARD:
        old = _STOP_EVENTS.get(session or "")
        if old is not None:
            old.set()  # a session runs one thing at a time: a new click supersedes the old run
        _STOP_EVENTS[session or ""] = event
    return event


def running_stop_event(session: str | None) -> threading.Event | None:
    """The stop event of ``session``'s current run, or None."""
    with _STOP_GUARD:
        return _STOP_EVENTS.get(session or "")


def request_stop(session: str | None) -> bool:
    """Set the stop event of ``session``'s running request; False when nothing was running."""
    with _STOP_GUARD:
        event = _STOP_EVENTS.get(session or "")
    if event is None or event.is_set():
        return False
    event.set()
    return True


def release_stop_event(session: str | None, event: threading.Event) -> None:
    with _STOP_GUARD:
        if _STOP_EVENTS.get(session or "") is event:
            del _STOP_EVENTS[session or ""]


def is_cancellation(exc: BaseException, stop_event: threading.Event | None) -> bool:
    """True for the package's "stopped on request" errors (exit status 130) or once the stop event is set."""
    return (stop_event is not None and stop_event.is_set()) or getattr(exc, "exit_code", None) == 130


def stream_run(
    request: RunRequest, *, stop_event: threading.Event | None = None, poll_s: float = 0.1
) -> Iterator[RunEvent]:
    """Run ``request`` (or serve it from the cache) and yield its events; the last is ``done`` or ``error``.

    The pipeline runs in a worker thread, so the caller (a Gradio generator) can show the
    audio generated so far while MusicGen is still sampling. Chunk events carry the path of
    a wav that holds everything generated up to then; only the newest waiting one is yielded.
    """
    start = time.perf_counter()
    hit = cached_result(request)
    if hit is not None:
        yield RunEvent("done", result=replace(hit, elapsed_s=time.perf_counter() - start))
        return
    events: queue.Queue = queue.Queue()
    worker = threading.Thread(
        target=_work, args=(request, events, stop_event, start), name="restoration-run", daemon=True
    )
    worker.start()
    while True:
        try:
            event = events.get(timeout=poll_s)
        except queue.Empty:
            continue
        if event.kind == "chunk":  # skip stale chunks: only the newest audio is worth showing
            while True:
                try:
                    newer = events.get_nowait()
                except queue.Empty:
                    break
                if newer.kind != "chunk":
                    yield event
                    event = newer
                    break
                event = newer
        yield event
        if event.kind in ("done", "error"):
            return


def _work(request: RunRequest, events: queue.Queue, stop_event: threading.Event | None, start: float) -> None:
    stream_dir = None
    try:
        key = request.key()
        root = runs_root()
        run_dir = root / key
        if not RUN_LOCK.acquire(blocking=False):
            events.put(RunEvent("progress", "waiting", None, "another run is in progress"))
            while not RUN_LOCK.acquire(timeout=0.2):
                if stop_event is not None and stop_event.is_set():
                    raise _cancelled()
        try:
            if is_complete(run_dir, key):  # an identical request finished while this one waited
                events.put(RunEvent("done", result=load_result(run_dir, key, cached=True,
                                                               elapsed_s=time.perf_counter() - start)))
                return
            stream_dir = root / STREAM_DIR / uuid.uuid4().hex
            logger.info("run %s started (%s)", key[:10], request.kind)
            report = _compute(request, events, stop_event, stream_dir)
            events.put(RunEvent("progress", "plots", 0.0))
            if report.unavailable:
                # A degraded run (a model missing) is not cached: it would outlive the fix.
                run_dir = root / UNCACHED_DIR / uuid.uuid4().hex[:12]
            write_run(report, request, run_dir, key)
            if report.unavailable:
                prune_runs(root / UNCACHED_DIR, keep=20)
            events.put(RunEvent("progress", "plots", 1.0))
        finally:
            RUN_LOCK.release()
        prune_runs(root)
        logger.info("run %s finished in %.1f s", key[:10], time.perf_counter() - start)
        events.put(RunEvent("done", result=load_result(run_dir, key, cached=False,
                                                       elapsed_s=time.perf_counter() - start)))
    except BaseException as exc:  # the consumer decides how to show it; nothing escapes the thread
        if is_cancellation(exc, stop_event):
            logger.info("run stopped on request after %.1f s", time.perf_counter() - start)
        events.put(RunEvent("error", error=exc))
    finally:
        if stream_dir is not None:
            shutil.rmtree(stream_dir, ignore_errors=True)


def _cancelled() -> CancelledError:
    return CancelledError("stopped by the user")


def _compute(request: RunRequest, events: queue.Queue, stop_event, stream_dir: Path):
    from ..pipeline import run

    def progress(stage: str, fraction, detail: str = "") -> None:
        events.put(RunEvent("progress", stage, fraction, detail))

    def on_chunk(audio_so_far: np.ndarray, sample_rate: int) -> None:
        from ..audio import write_wav

        path = write_wav(stream_dir / "input.wav", audio_so_far, sample_rate, subtype="FLOAT")
        events.put(RunEvent("chunk", path=str(path), detail=f"{audio_so_far.shape[-1] / sample_rate:.1f} s"))

    common = dict(demucs=request.demucs, gating=request.gating, metrics=request.metrics, require_demucs=False,
                  progress=progress, stop_event=stop_event)
    if request.kind == "prompt":
        return run(prompt=request.prompt, generation=request.generation, on_chunk=on_chunk, **common)
    return run(file=request.audio_path, file_name=request.audio_name or "the audio", **common)

"""A second process that gets the restoration side ready while MusicGen loads and samples.

``python -m restoration run`` spends its first seconds on one core: importing transformers
and loading MusicGen are single-threaded, and the token loop widens to a second thread only
once no other process keeps that core busy (:class:`restoration.musicgen.threads.LoopThreads`).
Meanwhile the other core can pay the restoration side's one-off costs: importing demucs,
librosa and matplotlib, loading the Demucs model, numba's first compilations, the laid-out
figures. Measured on a 2-core machine with full-size models, those cost about 2.5 s in a
fresh process (metrics 1.2 s cold against 0.06 s warm, figures 0.8 s against 0.2 s, Demucs
load 0.3 s), all of which left the critical path.

:func:`finisher` is used as a context manager around a run::

    with finisher(out=folder, progress=printer) as finish:
        report = run(prompt=prompt, ..., finish=finish)

``finish(audio, sample_rate, *, started, **compare_kwargs)`` is
:func:`restoration.pipeline.finish_comparison` (compare the versions, set
``timings_s["total"]``) followed by writing the report to ``out``; it returns the
:class:`~restoration.report.Report`. It runs in the forked process when one could be started,
else in this one (same result).

The process is forked before torch is imported — forking a process whose OpenMP threads
have started can hang the child — so it is used only where torch is not loaded yet (a
command-line process) and where ``fork`` exists (Linux). Elsewhere, and when the process
cannot start, everything runs here. The child ignores Ctrl-C (the parent handles it and
stops the child); a SIGTERM while it works on the run unwinds, so a half-written report
folder is removed.
Its peak RSS is reported in ``report.resources``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from typing import Callable

logger = logging.getLogger(__name__)

#: Warm the figures for clips of this rate when the caller does not say (MusicGen's 32 kHz).
DEFAULT_SAMPLE_RATE = 32000


def finish_here(audio, sample_rate: int, *, started: float, out, progress=None, stop_event=None, resources=None,
                **compare_kwargs):
    """Compare, time and write the report in this process (what the child runs, too).

    ``resources()``, when given, returns entries for ``report.resources`` just before writing.
    """
    from .outputs import write_report
    from .pipeline import finish_comparison

    report = finish_comparison(audio, sample_rate, started=started, progress=progress, stop_event=stop_event,
                               **compare_kwargs)
    if resources is not None:
        report.resources.update(resources())
    write_report(report, out)
    return report


@contextlib.contextmanager
def finisher(*, out, progress=None, duration_s: float = 5.0, sample_rate: int = DEFAULT_SAMPLE_RATE):
    """Yield the ``finish`` callable for a run writing to ``out`` (see the module docstring).

    ``duration_s`` and ``sample_rate`` size the figures the child lays out in advance.

    The child does not rehearse Demucs on a dummy clip: in ``exact`` mode that would fit on
    the core the one-thread token loop leaves free, but the two compete for memory bandwidth
    and the loop lost more (1.7 s) than Demucs's first call gained (0.5 s), measured on 2 cores.
    """
    process = RestorationProcess.start(out=out, progress=progress, duration_s=duration_s, sample_rate=sample_rate)
    if process is None:
        yield lambda audio, sample_rate, **kwargs: finish_here(audio, sample_rate, out=out, progress=progress, **kwargs)
        return
    try:
        yield process.finish
    finally:
        process.close()


def can_fork() -> bool:
    """True where a clean fork is possible: Linux's ``fork``, and torch not yet imported here."""
    return sys.platform.startswith("linux") and "torch" not in sys.modules


class RestorationProcess:
    """The forked child and the pipe to it. Build it with :meth:`start`."""

    def __init__(self, process, connection):
        self._process = process
        self._connection = connection
        self._sent = False  # whether the child was given the run (before that it only warms up)

    @classmethod
    def start(cls, *, out, progress=None, duration_s: float = 5.0,
              sample_rate: int = DEFAULT_SAMPLE_RATE) -> "RestorationProcess | None":
        """Fork the child and let it warm up; None where that is not possible (see :func:`can_fork`)."""
        if not can_fork():
            return None
        try:
            context = multiprocessing.get_context("fork")
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_serve, args=(child_end, out, progress, float(duration_s), int(sample_rate)),
                name="restoration", daemon=True,
            )
            process.start()
        except (OSError, ValueError) as exc:  # no fork, out of processes: run here instead
            logger.info("restoration process not started (%s); running in this process", exc)
            return None
        child_end.close()
        return cls(process, parent_end)

    def finish(self, audio, sample_rate: int, *, started: float, stop_event=None, **compare_kwargs):
        """Send the clip to the child; it compares, times and writes the report. Returns the report.

        Raises whatever the child raised: this package's errors keep their class (and so their
        exit status); anything else arrives as a ``RuntimeError`` naming it.
        """
        from . import errors

        if stop_event is not None and stop_event.is_set():
            raise errors.CancelledError("stopped by the user")
        self._sent = True
        self._connection.send(("finish", audio, int(sample_rate), float(started), compare_kwargs))
        try:
            kind, *payload = self._connection.recv()
        except (EOFError, OSError):
            self._process.join(timeout=5)
            raise errors.RestorationError(
                f"the restoration process ended unexpectedly (exit status {self._process.exitcode})"
            ) from None
        if kind == "done":
            return payload[0]
        name, message = payload
        error_class = getattr(errors, name, None)
        if isinstance(error_class, type) and issubclass(error_class, errors.RestorationError):
            raise error_class(message)
        raise RuntimeError(f"{name}: {message}")

    def close(self) -> None:
        """Stop the child (if it still runs) and reap it.

        A child never given the run (generation failed or was interrupted) is only warming
        up: it is ended at once, silently (SIGTERM's default action). One interrupted while
        writing unwinds (see :func:`_serve`), so no half-written folder remains.
        """
        with contextlib.suppress(OSError):
            self._connection.close()  # a child waiting for work sees EOF and leaves
        if not self._sent:
            self._process.terminate()
        self._process.join(timeout=10 if not self._sent else 2)
        if self._process.is_alive():  # still working: the parent was interrupted
            self._process.terminate()
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _serve(connection, out, progress: Callable | None, duration_s: float, sample_rate: int) -> None:
    """The child: warm up, then finish the one run it is sent (or leave when the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    warm_s = _warm_up(duration_s=duration_s, sample_rate=sample_rate)  # SIGTERM here: gone, nothing to undo
    try:
        message = connection.recv()
    except (EOFError, OSError):
        return

    def unwind(signum, frame):  # terminate() while writing: raise, so write_report removes its staging folder
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    _, audio, rate, started, kwargs = message
    kwargs["timings"] = {**(kwargs.get("timings") or {}),
                         "restoration process warm-up (in parallel with MusicGen)": round(warm_s, 4)}
    try:
        report = finish_here(audio, rate, started=started, out=out, progress=progress, resources=_peak_rss, **kwargs)
        reply = ("done", report)
    except BaseException as exc:  # everything goes back to the parent, which reports it
        reply = ("error", type(exc).__name__, str(exc))
    with contextlib.suppress(OSError):
        connection.send(reply)
    connection.close()
    sys.stdout.flush()
    os._exit(0)  # no teardown of the loaded models (see restoration.__main__)


def _peak_rss() -> dict:
    """This process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return {"restoration_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def _warm_up(*, duration_s: float, sample_rate: int) -> float:
    """:func:`restoration.warmup.warm_up` (without MusicGen) on one thread; seconds taken.

    One thread: the parent is importing and loading MusicGen on the other core. A failure
    here is left for the real call to report (a missing Demucs model, say).
    """
    start = time.perf_counter()
    import torch

    from .warmup import warm_up

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm_up(duration_s=duration_s, sample_rate=sample_rate)
    finally:
        torch.set_num_threads(threads)
    return time.perf_counter() - start

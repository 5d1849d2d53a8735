"""How many CPU threads MusicGen's token loop and loading use, and how busy the machine is.

- :func:`torch_threads` — a block with a given torch thread count, restored after.
- :class:`LoopThreads` — the token loop's thread policy: every thread of the process while
  other processes leave a core for each, else 1.
- :func:`others_busy_cores` — cores other processes kept busy between two ``/proc/stat`` samples.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger("restoration.generation")

__all__ = ["LoopThreads", "cpu_times", "others_busy_cores", "torch_threads"]


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``count`` torch CPU threads (None: leave as is), then restore."""
    if count is None:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class LoopThreads:
    """CPU threads of the token loop (a context manager; ``step()`` after every step).

    A step multiplies 1–2 activation rows (``2 × clips`` in a batch) by every weight matrix:
    ~300 small operations that stream the weights from memory. Whether a second thread helps
    depends on the machine, so the loop uses every thread the process has whenever the
    machine is free. Measured idle, full-size musicgen-small, ms per step, 1 → 2 threads:

    - AMD EPYC, 2 vCPU (2026-11-24): fp32 144 → 142 (one core streams the weights as fast
      as two), int8 47 → 35.
    - Intel Xeon @ 2.00 GHz (Skylake-SP, AVX-512 without VNNI), 2 vCPU (2026-12-01): fp32
      228 → 131, int8 (the ``split`` scheme) 184 → 128: here one core does not saturate the
      memory, and a second thread is worth 1.4–1.7×.

    A batch of clips (``rows`` > 2) does as much arithmetic per weight as it has rows and
    gains from a second thread everywhere.

    But a second OpenMP thread puts a barrier in every operation, and when another process
    holds the other core each barrier waits for a scheduler tick: on a 2-core machine shared
    with other test runs, int8 steps took 2.5 s on 2 threads instead of 50 ms on 1. So the
    loop encodes the prompt and runs the first steps on 1 thread while it measures how
    many cores *other* processes keep busy (:func:`others_busy_cores`, over at least
    ``MEASURE_S``), widens only if that leaves a core for each thread, and drops to 1
    thread for the rest of the clip as soon as one step takes ``SLOW_FACTOR`` times the
    usual. The 1-minute load average would lag: right after another run ends it still reads
    1.6 on an idle machine.

    int8 products accumulate in integers and the rest of a step is elementwise, so in
    ``fast`` the thread count does not change a token (checked: logits bitwise equal on 1
    and 2 threads). fp32 sums may be split differently: ``exact``'s logits on 1 and 2
    threads differ by float rounding (2.6e-6 at most over 40 steps), which changes a token
    only at a near-tie, as any other thread count of transformers' own ``generate`` would.
    Threads are a process setting: other work (another request's Demucs) sees the change
    while a clip is sampled.
    """

    SLOW_FACTOR = 2.5
    MEASURE_S = 0.1
    #: Widen when other processes leave at least this much of a core free for each extra thread.
    FREE_MARGIN = 0.5

    def __init__(self, bundle):
        import torch

        self.torch = torch
        self.active = bundle.device == "cpu"
        self.saved = torch.get_num_threads() if self.active else 1
        self.wide = self.saved if (self.active and self.saved > 1) else 1
        self.widened = False
        self.skip_next = False
        self.times: list[float] = []
        self.last = 0.0
        self.started = 0.0
        self.sample = None

    def __enter__(self):
        if self.active:
            self.torch.set_num_threads(1)
            if self.wide > 1:
                self.started = time.perf_counter()
                self.sample = cpu_times()
                if self.sample is None:  # no /proc/stat: nothing to measure with, stay on 1 thread
                    self.wide = 1
        return self

    def __exit__(self, *exc):
        if self.active:
            self.torch.set_num_threads(self.saved)
        return False

    def step(self) -> None:
        """Call after every step: widen once the machine is measured idle, narrow for good if a step stalls."""
        if self.wide == 1:
            return
        now = time.perf_counter()
        if not self.widened:
            window = now - self.started
            if window < self.MEASURE_S:
                return
            others = others_busy_cores(self.sample, cpu_times(), window)
            cores = os.cpu_count() or 1
            if others is None or others > cores - self.wide + 1 - self.FREE_MARGIN:
                logger.info("token loop: other processes keep %s cores busy; 1 thread", others)
                self.wide = 1
                return
            self.torch.set_num_threads(self.wide)
            self.widened = True
            self.skip_next = True  # the first step after widening also pays for starting the threads
            self.last = time.perf_counter()
            return
        elapsed = now - self.last
        if self.skip_next:
            self.skip_next = False
        elif len(self.times) >= 3 and elapsed > self.SLOW_FACTOR * _median(self.times):
            logger.info("token loop: a step took %.0f ms on %d threads; 1 thread from now on",
                        1000 * elapsed, self.wide)
            self.wide = 1
            self.torch.set_num_threads(1)
            return
        else:
            self.times.append(elapsed)
        self.last = time.perf_counter()


def cpu_times() -> tuple[float, float] | None:
    """``(busy CPU seconds of the whole machine, CPU seconds of this process)`` now; None without ``/proc/stat``.

    Busy is every CPU state of ``/proc/stat``'s first line except idle and iowait, in seconds
    (ticks / ``SC_CLK_TCK``); this process's is user + system time of all its threads.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        if fields[0] != "cpu":
            return None
        ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / per_second, own.user + own.system


def others_busy_cores(before, after, wall_s: float) -> float | None:
    """Cores kept busy by other processes between two :func:`cpu_times` samples ``wall_s`` apart.

    ``(Δ machine busy − Δ this process) / wall_s``, floored at 0 (the two clocks tick
    separately, ±10 ms each). None when either sample is missing.
    """
    if before is None or after is None or wall_s <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return round(max(0.0, others / wall_s), 3)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


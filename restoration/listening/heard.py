"""Has a listener heard a version? Decided from the play events the server received, by the server's clock.

The page reports three kinds of event per version (letter), each stamped with the server's time
on arrival (``at_s``, seconds):

- ``play``: playback started at media position ``position_s``;
- ``stop``: playback stopped (pause, end) at ``position_s``;
- ``seek``: while playing, the position jumped from ``position_s`` to ``to_s``.

One version plays at a time, so any ``play`` also ends whatever else was playing. Each played
interval covers the media segment ``[p0, p0 + Δ]`` with

    Δ = min(t1 − t0, p1 − p0)      (p1 known: a stop or seek of the same version)
    Δ = t1 − t0                    (p1 unknown: ended by another version's play)

where ``t0``/``t1`` are the server's arrival times and ``p0``/``p1`` the reported positions. The
wall-clock term is the server's own measurement: a seek to the end, a faster playback rate or a
made-up position can shorten what counts, never lengthen it. A version is *heard* when the union
of its covered segments, clipped to ``[0, duration_s]``, reaches :data:`HEARD_FRACTION` of
``duration_s``. An interval still open (no later event yet) does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The part of a stimulus that must have been played, by the server's clock, before it may be rated.
HEARD_FRACTION = 0.8

PLAY, STOP, SEEK = "play", "stop", "seek"
KINDS = (PLAY, STOP, SEEK)


@dataclass(frozen=True)
class PlayEvent:
    """One event as the server recorded it (times and positions in seconds)."""

    letter: str
    kind: str
    position_s: float
    at_s: float
    to_s: float | None = None


def _union_length(segments: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(segments):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def covered_seconds(events, *, duration_s: float) -> dict[str, float]:
    """Seconds of each letter's media covered by closed play intervals (see the module docstring)."""
    segments: dict[str, list[tuple[float, float]]] = {}
    open_: tuple[str, float, float] | None = None  # (letter, start position, start time)

    def close(end_position: float | None, at_s: float) -> None:
        letter, p0, t0 = open_
        span = max(0.0, at_s - t0)
        if end_position is not None:
            span = min(span, max(0.0, end_position - p0))
        lo = min(max(p0, 0.0), duration_s)
        hi = min(max(p0 + span, 0.0), duration_s)
        if hi > lo:
            segments.setdefault(letter, []).append((lo, hi))

    for e in sorted(events, key=lambda e: e.at_s):
        same = open_ is not None and open_[0] == e.letter
        if e.kind == PLAY:
            if open_ is not None:
                close(None, e.at_s)
            open_ = (e.letter, float(e.position_s), e.at_s)
        elif e.kind == STOP:
            if same:
                close(float(e.position_s), e.at_s)
                open_ = None
        elif e.kind == SEEK:
            if same:
                close(float(e.position_s), e.at_s)
                open_ = (e.letter, float(e.to_s if e.to_s is not None else e.position_s), e.at_s)
    return {letter: _union_length(parts) for letter, parts in segments.items()}


def heard_letters(events, *, letters, duration_s: float) -> dict[str, bool]:
    """Letter → True when at least :data:`HEARD_FRACTION` of ``duration_s`` was covered."""
    covered = covered_seconds(events, duration_s=duration_s)
    need = HEARD_FRACTION * duration_s
    return {letter: covered.get(letter, 0.0) >= need - 1e-9 for letter in letters}

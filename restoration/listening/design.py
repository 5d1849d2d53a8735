"""Randomisation of a listening session: trial order and the version→letter mapping.

Both come from a seeded Fisher–Yates shuffle (Durstenfeld's in-place form), driven by
:class:`random.Random` whose ``randrange`` draws without modulo bias. Sorting with a random
comparator is biased and is never used. The seed is stored with the session, so every
order can be reproduced from the database alone.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

LETTERS = "ABCD"


def new_seed() -> int:
    """A fresh 63-bit seed from the operating system's CSPRNG."""
    return secrets.randbits(63)


def fisher_yates(items: Sequence[T], rng: random.Random) -> list[T]:
    """Return a uniformly random permutation of ``items`` (the input is not modified).

    For i = n−1 … 1, swap element i with a uniformly chosen j ∈ [0, i].
    """
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.randrange(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


@dataclass(frozen=True)
class SessionPlan:
    """What one listener hears: trials in order, and per trial which letter plays which version."""

    seed: int
    order: tuple[str, ...]  # trial ids, in presentation order (training trial excluded)
    letters: dict  # trial id → {letter: condition}


def plan_session(seed: int, trial_ids: Sequence[str], conditions: Sequence[str], *,
                 training_id: str | None = None, letters: str = LETTERS) -> SessionPlan:
    """Draw the trial order and every trial's letter mapping from one seed.

    The draws happen in a fixed sequence (order first, then mappings in the order of
    ``[training_id] + sorted(trial_ids)``) so the plan is a pure function of its arguments.
    """
    if len(conditions) != len(letters):
        raise ValueError(f"{len(conditions)} conditions need {len(conditions)} letters, got {letters!r}")
    rng = random.Random(int(seed))
    order = tuple(fisher_yates(sorted(trial_ids), rng))
    mapping = {}
    for trial_id in ([training_id] if training_id else []) + sorted(trial_ids):
        shuffled = fisher_yates(list(conditions), rng)
        mapping[trial_id] = dict(zip(letters, shuffled))
    return SessionPlan(seed=int(seed), order=order, letters=mapping)

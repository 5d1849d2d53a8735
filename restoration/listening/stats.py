"""Analysis of a listening test: screening, per-version means with CIs, Friedman, Wilcoxon–Holm.

Rules fixed before data collection (docs/LISTENING.md, "Screening" and "Statistics"):

- **Completeness**: a listener is analysed only with ≥ 80 % of the scored trials.
- **Anchor rule**: a trial fails when the anchor is rated above 90, or above all three real
  versions. A listener whose failures exceed max(1, 15 % of their trials) is excluded.
- **Agreement rule**: Spearman's ρ between a listener's ratings and the leave-one-out panel mean
  (every clip × version they rated, anchor included; panel = the other complete listeners) must
  be ≥ 0.5. An undefined ρ (constant ratings) fails too.
- **The unit is the listener**: each listener's ratings are averaged per version over clips first.
  Per version: mean and a 95 % CI, t with n − 1 degrees of freedom, over listeners
  (:func:`restoration.stats.t_interval`, the package's one home for intervals).
- **Omnibus**: Friedman's χ² over the three real versions (listeners × versions).
- **Pairwise**: Wilcoxon signed-rank tests (two-sided) with Holm's step-down correction; the
  effect size is the median of the paired differences (first − second), in rating points.

The anchor is a screening and sanity check only, left out of Friedman and Wilcoxon.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..stats import t_interval
from ..versions import ANCHOR, CONDITIONS, REAL_CONDITIONS

COMPLETENESS_MIN = 0.8
ANCHOR_MAX = 90.0
ANCHOR_FAIL_FRACTION = 0.15
AGREEMENT_MIN = 0.5


@dataclass(frozen=True)
class Rating:
    """One rating: listener (session id), clip (trial id), version (condition), 0–100."""

    listener: str
    clip: str
    condition: str
    rating: float


def ratings_from_rows(rows) -> list[Rating]:
    """Scored ratings from :func:`store.rating_rows` dicts (training ratings dropped)."""
    return [Rating(r["session"], r["trial"], r["condition"], float(r["rating"])) for r in rows
            if not int(r.get("is_training") or 0)]


def _table(ratings) -> dict:
    """listener → clip → condition → rating."""
    table: dict = defaultdict(lambda: defaultdict(dict))
    for r in ratings:
        table[r.listener][r.clip][r.condition] = r.rating
    return table


def _complete_trials(clips: dict) -> dict:
    """Only the clips a listener rated in all four versions."""
    return {c: v for c, v in clips.items() if all(k in v for k in CONDITIONS)}


# --------------------------------------------------------------------------- screening


@dataclass
class ListenerScreen:
    listener: str
    trials: int
    completeness: float
    anchor_failures: int
    anchor_limit: float
    agreement: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def included(self) -> bool:
        return not self.reasons


def anchor_failures(clips: dict) -> int:
    """Trials whose anchor is rated above 90 or above every real version."""
    fails = 0
    for values in _complete_trials(clips).values():
        a = values[ANCHOR]
        if a > ANCHOR_MAX or all(a > values[c] for c in REAL_CONDITIONS):
            fails += 1
    return fails


def agreement(table: dict, listener: str, panel: list[str]) -> float | None:
    """Spearman ρ of ``listener`` with the mean of the other ``panel`` listeners, per clip × version."""
    from scipy.stats import spearmanr

    mine, theirs = [], []
    for clip, values in _complete_trials(table[listener]).items():
        for cond in CONDITIONS:
            others = [table[o][clip][cond] for o in panel
                      if o != listener and clip in table[o] and cond in table[o][clip]]
            if others:
                mine.append(values[cond])
                theirs.append(float(np.mean(others)))
    if len(mine) < 3 or np.ptp(mine) == 0 or np.ptp(theirs) == 0:
        return None
    rho = spearmanr(mine, theirs).statistic
    return None if not np.isfinite(rho) else float(rho)


def screen(ratings, *, n_trials: int, listeners=None) -> list[ListenerScreen]:
    """Apply the three pre-registered rules; ``listeners`` lists every recruited listener (even with no ratings)."""
    table = _table(ratings)
    everyone = sorted(set(listeners or []) | set(table))
    completeness = {l: len(_complete_trials(table[l])) / n_trials if n_trials else 0.0 for l in everyone}
    complete = [l for l in everyone if completeness[l] >= COMPLETENESS_MIN - 1e-12]
    out = []
    for l in everyone:
        trials = len(_complete_trials(table[l])) if l in table else 0
        fails = anchor_failures(table[l]) if l in table else 0
        limit = max(1.0, ANCHOR_FAIL_FRACTION * trials)
        rho = agreement(table, l, complete) if l in table and len(complete) >= 3 else None
        s = ListenerScreen(listener=l, trials=trials, completeness=completeness[l], anchor_failures=fails,
                           anchor_limit=limit, agreement=rho)
        if completeness[l] < COMPLETENESS_MIN - 1e-12:
            s.reasons.append("incomplete")
        if fails > limit:
            s.reasons.append("anchor")
        if len(complete) >= 3 and l in complete and (rho is None or rho < AGREEMENT_MIN):
            s.reasons.append("agreement")
        out.append(s)
    return out


# --------------------------------------------------------------------------- statistics


def listener_means(ratings, listeners=None) -> dict[str, dict[str, float]]:
    """listener → condition → mean over the clips they rated (the unit of analysis)."""
    keep = None if listeners is None else set(listeners)
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        if keep is None or r.listener in keep:
            acc[r.listener][r.condition].append(r.rating)
    return {l: {c: float(np.mean(v)) for c, v in conds.items()} for l, conds in acc.items()}


@dataclass(frozen=True)
class ConditionSummary:
    condition: str
    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None


def summarize(means: dict) -> list[ConditionSummary]:
    """Per condition: the mean over listeners with its 95 % t interval (:func:`restoration.stats.t_interval`)."""
    out = []
    for c in CONDITIONS:
        vals = [m[c] for m in means.values() if c in m]
        ci = t_interval(vals)
        out.append(ConditionSummary(c, ci.n, ci.mean, ci.sd, ci.low, ci.high))
    return out


def _paired(means: dict, conditions) -> np.ndarray:
    rows = [[m[c] for c in conditions] for m in means.values() if all(c in m for c in conditions)]
    return np.asarray(rows, dtype=float).reshape(-1, len(conditions))


@dataclass(frozen=True)
class Friedman:
    n: int
    statistic: float | None
    p: float | None
    note: str = ""


def friedman(means: dict) -> Friedman:
    """Friedman's test over the three real versions (listeners with all three)."""
    from scipy.stats import friedmanchisquare

    x = _paired(means, REAL_CONDITIONS)
    if x.shape[0] < 2:
        return Friedman(int(x.shape[0]), None, None, "needs at least 2 listeners")
    if np.all(x == x[:, :1]):
        return Friedman(int(x.shape[0]), None, None, "every listener rated the versions equally")
    res = friedmanchisquare(*x.T)
    return Friedman(int(x.shape[0]), float(res.statistic), float(res.pvalue))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Pairwise:
    first: str
    second: str
    n: int
    median_difference: float | None  # median of (first − second), rating points
    statistic: float | None
    p: float | None
    p_holm: float | None


def pairwise_wilcoxon(means: dict) -> list[Pairwise]:
    """Wilcoxon signed-rank for each pair of real versions, Holm-corrected over the three pairs."""
    from scipy.stats import wilcoxon

    raw = []
    for a, b in combinations(REAL_CONDITIONS, 2):
        x = _paired(means, (a, b))
        n = int(x.shape[0])
        if n == 0:
            raw.append((a, b, n, None, None, None))
            continue
        diff = x[:, 0] - x[:, 1]
        med = float(np.median(diff))
        if n < 2 or np.all(diff == 0):
            raw.append((a, b, n, med, None, None))
            continue
        res = wilcoxon(x[:, 0], x[:, 1])
        raw.append((a, b, n, med, float(res.statistic), float(res.pvalue)))
    valid = [i for i, r in enumerate(raw) if r[5] is not None]
    adj = holm([raw[i][5] for i in valid])
    adjusted = dict(zip(valid, adj))
    return [Pairwise(a, b, n, med, stat, p, adjusted.get(i)) for i, (a, b, n, med, stat, p) in enumerate(raw)]


def clip_means(ratings, listeners) -> dict[str, dict[str, tuple[float, int]]]:
    """clip → condition → (mean over the included listeners, n)."""
    keep = set(listeners)
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        if r.listener in keep:
            acc[r.clip][r.condition].append(r.rating)
    return {clip: {c: (float(np.mean(v)), len(v)) for c, v in conds.items()} for clip, conds in acc.items()}


@dataclass
class Analysis:
    recruited: int
    screened: list[ListenerScreen]
    included: list[str]
    include_everyone: bool
    summary: list[ConditionSummary]
    friedman: Friedman
    pairwise: list[Pairwise]
    clips: dict
    means: dict  # listener → condition → mean over clips (included listeners)

    def excluded_counts(self) -> dict[str, int]:
        counts = {"incomplete": 0, "anchor": 0, "agreement": 0, "any": 0}
        for s in self.screened:
            for reason in s.reasons:
                counts[reason] += 1
            counts["any"] += bool(s.reasons)
        return counts


def analyze(ratings, *, n_trials: int, listeners=None, include_everyone: bool = False) -> Analysis:
    """Screen, then summarise. ``include_everyone`` skips the screening (it is still reported)."""
    ratings = list(ratings)
    screened = screen(ratings, n_trials=n_trials, listeners=listeners)
    rated = {r.listener for r in ratings}
    if include_everyone:
        included = sorted(rated)
    else:
        included = sorted(s.listener for s in screened if s.included and s.listener in rated)
    means = listener_means(ratings, included)
    return Analysis(recruited=len(screened), screened=screened, included=included,
                    include_everyone=include_everyone, summary=summarize(means), friedman=friedman(means),
                    pairwise=pairwise_wilcoxon(means), clips=clip_means(ratings, included),
                    means=means)

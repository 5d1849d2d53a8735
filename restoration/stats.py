"""Confidence intervals: the one place in the package that computes them.

Public surface:

- :class:`Interval` — a mean with its confidence interval, the number of units it rests on
  and the method's name.
- :func:`t_interval` — Student's t interval of a mean, ``scipy.stats.t.interval``.
- :func:`cluster_means` — average the values within each cluster (e.g. the seeds of one prompt).
- :func:`clustered_t_interval` — seeds averaged per cluster first, then a t interval over the
  cluster means (n = clusters, n − 1 degrees of freedom).
- :func:`cluster_bootstrap_interval` — a bootstrap over clusters with a fixed seed,
  ``scipy.stats.bootstrap`` on the cluster means.
- :func:`paired_differences` — per-unit differences ``a − b`` between two conditions from
  long-format rows (one row per unit × condition).
- :func:`spearman_rho`, :func:`spearman_cluster_bootstrap` — Spearman's rank correlation, and its
  percentile bootstrap interval with clusters (source clips) as the resampled unit.
- :func:`paired_summary` — per stratum (and overall), metric and pair of conditions: the mean
  paired difference, its interval with the cluster as the resampled unit, n clusters, n units
  and whether the interval excludes 0.

Why clusters: several seeds of one prompt are not independent draws, so an interval that counts
every clip as a unit is too narrow. Treating the prompt as the unit answers "would another set of
prompts give the same difference?", which is what a study of restoration methods asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

#: Method names as written in tables.
T = "t"
CLUSTER_T = "cluster-t"
CLUSTER_BOOTSTRAP = "cluster-bootstrap"

METHOD_DESCRIPTIONS = {
    T: "t interval of the mean (n − 1 df, scipy.stats.t.interval)",
    CLUSTER_T: "values averaged per cluster first, then a t interval over cluster means "
               "(n_clusters − 1 df, scipy.stats.t.interval)",
    CLUSTER_BOOTSTRAP: "bootstrap over clusters (cluster means resampled with replacement, "
                       "percentile interval, scipy.stats.bootstrap, fixed seed)",
}


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided confidence interval.

    ``low``/``high`` are ``None`` where the interval is undefined (fewer than two units).
    ``n`` counts the units the interval rests on: values for :func:`t_interval`, clusters for
    the clustered methods.
    """

    mean: float | None
    low: float | None
    high: float | None
    n: int
    sd: float | None = None
    confidence: float = 0.95
    method: str = T

    @property
    def excludes_zero(self) -> bool | None:
        """True when the whole interval lies on one side of 0; ``None`` when it is undefined."""
        if self.low is None or self.high is None:
            return None
        return bool(self.low > 0.0 or self.high < 0.0)


def _clean(values: Iterable) -> np.ndarray:
    """Floats with ``None``, ``""`` and NaN dropped."""
    kept = [float(v) for v in values if v is not None and v != ""]
    data = np.asarray(kept, dtype=float)
    return data[np.isfinite(data)]


def t_interval(values: Iterable, *, confidence: float = 0.95, method: str = T) -> Interval:
    """Student's t interval of the mean: mean ± t(1 − α/2, n − 1) · s / √n.

    ``None``, ``""`` and NaN values are dropped. With n = 0 every field is ``None``; with
    n = 1 the interval is ``None``. Values that are all equal give a zero-width interval.
    """
    from scipy import stats

    data = _clean(values)
    n = int(data.size)
    if n == 0:
        return Interval(None, None, None, 0, None, confidence, method)
    mean = float(data.mean())
    if n < 2:
        return Interval(mean, None, None, 1, None, confidence, method)
    sd = float(data.std(ddof=1))
    if sd == 0.0:
        return Interval(mean, mean, mean, n, 0.0, confidence, method)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return Interval(mean, float(low), float(high), n, sd, confidence, method)


def cluster_means(values: Sequence, clusters: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """(mean per cluster, units per cluster), clusters in order of first appearance.

    Pairs whose value is ``None``, ``""`` or NaN are dropped before averaging.
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} cluster keys")
    sums: dict = {}
    counts: dict = {}
    for value, key in zip(values, clusters):
        if value is None or value == "":
            continue
        value = float(value)
        if not math.isfinite(value):
            continue
        sums[key] = sums.get(key, 0.0) + value
        counts[key] = counts.get(key, 0) + 1
    keys = list(sums)
    return (np.asarray([sums[k] / counts[k] for k in keys], dtype=float),
            np.asarray([counts[k] for k in keys], dtype=int))


def clustered_t_interval(values: Sequence, clusters: Sequence[Hashable], *, confidence: float = 0.95) -> Interval:
    """Average the values within each cluster, then a t interval over the cluster means.

    Every cluster weighs the same, whatever its number of units; ``n`` is the number of
    clusters and the t distribution has n_clusters − 1 degrees of freedom.
    """
    means, _ = cluster_means(values, clusters)
    return t_interval(means, confidence=confidence, method=CLUSTER_T)


def cluster_bootstrap_interval(
    values: Sequence,
    clusters: Sequence[Hashable],
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """Bootstrap over clusters: resample the cluster means with replacement, percentile interval.

    The point estimate is the mean of cluster means (each cluster weighs the same, as in
    :func:`clustered_t_interval`). ``seed`` fixes the resampling, so a table is reproducible.
    """
    from scipy import stats

    means, _ = cluster_means(values, clusters)
    n = int(means.size)
    if n == 0:
        return Interval(None, None, None, 0, None, confidence, CLUSTER_BOOTSTRAP)
    mean = float(means.mean())
    if n < 2:
        return Interval(mean, None, None, 1, None, confidence, CLUSTER_BOOTSTRAP)
    sd = float(means.std(ddof=1))
    if sd == 0.0:
        return Interval(mean, mean, mean, n, 0.0, confidence, CLUSTER_BOOTSTRAP)
    result = stats.bootstrap(
        (means,), np.mean, confidence_level=confidence, n_resamples=int(n_resamples), method="percentile",
        vectorized=True, random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(mean, float(low), float(high), n, sd, confidence, CLUSTER_BOOTSTRAP)


def interval(values: Sequence, clusters: Sequence[Hashable], *, method: str = CLUSTER_T,
             confidence: float = 0.95, seed: int = 0) -> Interval:
    """Dispatch on ``method`` (:data:`T`, :data:`CLUSTER_T` or :data:`CLUSTER_BOOTSTRAP`)."""
    if method == T:
        return t_interval(values, confidence=confidence)
    if method == CLUSTER_T:
        return clustered_t_interval(values, clusters, confidence=confidence)
    if method == CLUSTER_BOOTSTRAP:
        return cluster_bootstrap_interval(values, clusters, confidence=confidence, seed=seed)
    raise ValueError(f"unknown interval method {method!r}; use one of {sorted(METHOD_DESCRIPTIONS)}")


def _key(row: Mapping, names: Sequence[str]) -> tuple:
    return tuple(row.get(name) for name in names)


def paired_differences(
    rows: Iterable[Mapping],
    *,
    metric: str,
    a: str,
    b: str,
    unit_keys: Sequence[str],
    condition_key: str = "version",
) -> list[tuple[tuple, float]]:
    """Per unit, ``row[metric]`` of condition ``a`` minus that of condition ``b``.

    ``rows`` are long-format: one row per unit × condition, the unit named by the values of
    ``unit_keys`` and the condition by ``row[condition_key]``. Units that lack either condition,
    or whose value is undefined (``None``, ``""``, NaN) in either, are left out. Returns
    ``[(unit key tuple, difference), ...]`` in order of first appearance.
    """
    values: dict[tuple, dict] = {}
    for row in rows:
        condition = row.get(condition_key)
        if condition not in (a, b):
            continue
        values.setdefault(_key(row, unit_keys), {})[condition] = row.get(metric)
    out = []
    for unit, pair in values.items():
        va, vb = pair.get(a), pair.get(b)
        if va is None or vb is None or va == "" or vb == "":
            continue
        diff = float(va) - float(vb)
        if math.isfinite(diff):
            out.append((unit, diff))
    return out


def paired_summary(
    rows: Sequence[Mapping],
    *,
    metrics: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    unit_keys: Sequence[str],
    cluster_key: str,
    condition_key: str = "version",
    stratum_key: str | None = None,
    overall: str = "all",
    method: str = CLUSTER_T,
    confidence: float = 0.95,
    seed: int = 0,
    cluster_name: str = "cluster",
    unit_name: str = "unit",
) -> list[dict]:
    """Paired differences with clustered confidence intervals, per stratum, metric and pair.

    For each stratum (each value of ``row[stratum_key]``, plus ``overall`` for all rows; only
    ``overall`` when ``stratum_key`` is ``None``), each metric and each ``(a, b)`` in ``pairs``:
    the per-unit difference ``a − b`` (:func:`paired_differences`), summarised by
    :func:`interval` with ``row[cluster_key]`` as the cluster. ``cluster_key`` must be one of
    ``unit_keys`` (a unit belongs to one cluster).

    Returns one dict per row with the columns ``<stratum_key>`` (or ``stratum``), ``metric``,
    ``comparison`` ("a − b"), ``a``, ``b``, ``mean``, ``ci<level>_low``, ``ci<level>_high``,
    ``excludes_zero``, ``n_<cluster_name>s``, ``n_<unit_name>s`` and ``method``. Positive means
    ``a`` measures higher than ``b``.
    """
    if cluster_key not in unit_keys:
        raise ValueError(f"cluster_key {cluster_key!r} must be one of unit_keys {list(unit_keys)}")
    position = list(unit_keys).index(cluster_key)
    strata: dict[str, list[Mapping]] = {overall: list(rows)}
    if stratum_key is not None:
        for row in rows:
            strata.setdefault(str(row.get(stratum_key)), []).append(row)
    level = f"{confidence * 100:g}".replace(".", "_")
    out = []
    for stratum in [overall] + sorted(s for s in strata if s != overall):
        members = strata[stratum]
        for metric in metrics:
            for a, b in pairs:
                diffs = paired_differences(members, metric=metric, a=a, b=b, unit_keys=unit_keys,
                                           condition_key=condition_key)
                clusters = [unit[position] for unit, _ in diffs]
                result = interval([d for _, d in diffs], clusters, method=method, confidence=confidence, seed=seed)
                out.append({
                    (stratum_key or "stratum"): stratum,
                    "metric": metric,
                    "comparison": f"{a} − {b}",
                    "a": a,
                    "b": b,
                    "mean": result.mean,
                    f"ci{level}_low": result.low,
                    f"ci{level}_high": result.high,
                    "excludes_zero": result.excludes_zero,
                    f"n_{cluster_name}s": len(set(clusters)),
                    f"n_{unit_name}s": len(diffs),
                    "method": method,
                })
    return out


def spearman_rho(x, y) -> float | None:
    """Spearman's rank correlation (average ranks for ties); ``None`` when either column is constant or n < 3."""
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0.0 or np.ptp(ry) == 0.0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_cluster_bootstrap(x, y, clusters, *, n_resamples: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> dict:
    """Spearman's ρ of paired values with a percentile bootstrap interval that resamples clusters.

    The points of one cluster (a source clip: its two restorations, and every degradation of it)
    are not independent, so the bootstrap draws clusters with replacement (as many as there are)
    and keeps all of each drawn cluster's points. Resamples whose ρ is undefined (a constant
    column) are dropped and counted. ``numpy.random.default_rng(seed)`` makes the interval
    reproducible. Returns ``{"rho", "ci95_low", "ci95_high", "n", "n_sources", "resamples_used"}``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keys = list(dict.fromkeys(clusters))
    members = [np.flatnonzero(np.asarray([c == k for c in clusters])) for k in keys]
    rho = spearman_rho(x, y)
    result = {"rho": rho, "ci95_low": None, "ci95_high": None, "n": int(x.size), "n_sources": len(keys),
              "resamples_used": 0}
    if rho is None or len(keys) < 3:
        return result
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(keys), size=(int(n_resamples), len(keys)))
    sizes = {m.size for m in members}
    if len(sizes) == 1:  # every cluster has as many points: all resamples at once
        index = np.stack(members)[drawn].reshape(int(n_resamples), -1)
        values = _row_spearman(x[index], y[index])
    else:
        values = [spearman_rho(x[i], y[i]) for i in (np.concatenate([members[k] for k in row]) for row in drawn)]
    values = [v for v in values if v is not None and np.isfinite(v)]
    result["resamples_used"] = len(values)
    if len(values) >= 0.9 * n_resamples:
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(values, [alpha, 1.0 - alpha])
        result["ci95_low"], result["ci95_high"] = float(low), float(high)
    return result


def _row_spearman(x: np.ndarray, y: np.ndarray) -> list:
    """Spearman's ρ of each row pair of two (resamples, n) arrays; NaN where a row is constant."""
    from scipy.stats import rankdata

    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / denominator
    return [float(v) if d > 0 else None for v, d in zip(rho, denominator)]

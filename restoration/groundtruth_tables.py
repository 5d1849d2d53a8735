"""The ground-truth study's tables and figures, from the rows of :mod:`restoration.groundtruth`.

- ``clips.csv``: a row per clip × degradation × version (clean, degraded, Demucs, gating).
- ``summary.csv`` / ``summary.png``: per degradation (and ``all`` when there are several) and
  full-reference metric, the paired improvement of each restoration over the degraded input and
  the paired difference Demucs − gating, computed per clip, with a 95 % confidence interval that
  treats the source clip as the unit (:func:`restoration.stats.paired_summary`, the statistics
  ``batch`` uses). Every value is oriented so that **> 0 means closer to the clean original**.
- ``proxies.csv`` / ``proxies.png``: the proxy validity table. For each proxy change (ΔHBER,
  Δflatness, Δbandwidth, Δnoise floors; restoration − degraded input) and each full-reference
  improvement, Spearman's ρ over the clips × restorations, with a 95 % bootstrap interval that
  resamples source clips (:func:`restoration.stats.spearman_cluster_bootstrap`) and n.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .csvfiles import csv_text, write_text_atomic
from .stats import spearman_cluster_bootstrap
from .reference_metrics import REFERENCE_METRIC_INFO, higher_is_better
from .versions import DEGRADED, DEMUCS, GATING, RESTORATIONS, TITLES

ALL = "all"
#: The proxy changes the proxy table tests (restoration − degraded input), with the sign the seed
#: paper reads as "better" (+1: a rise means restored, −1: a fall means restored) and the unit.
PROXIES: dict[str, tuple[str, int, str]] = {
    "hber_delta_db": ("ΔHBER (≥ 8 kHz)", +1, "dB"),
    "flatness_change": ("Δ spectral flatness", -1, "0–1"),
    "bandwidth_change_hz": ("Δ bandwidth (99 % roll-off)", +1, "Hz"),
    "noise_floor_p10_change_db": ("Δ noise floor p10", -1, "dB"),
    "noise_floor_change_db": ("Δ silence noise floor", -1, "dB"),
}
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: The comparisons of the summary, (a, b): the value is score(a) − score(b), > 0 = a closer to the original.
COMPARISONS = ((DEMUCS, DEGRADED), (GATING, DEGRADED), (DEMUCS, GATING))


def write_study_tables(rows: list[dict], out_dir) -> dict:
    """Write the study's CSVs and PNGs into ``out_dir``; returns name → path, plus ``rows`` (the count)."""
    out_dir = Path(out_dir)
    paths: dict = {"rows": len(rows)}
    paths["clips.csv"] = write_text_atomic(out_dir / "clips.csv", csv_text(rows))
    summary = summary_rows(rows)
    paths["summary.csv"] = write_text_atomic(out_dir / "summary.csv", csv_text(summary))
    proxies = proxy_rows(rows)
    paths["proxies.csv"] = write_text_atomic(out_dir / "proxies.csv", csv_text(proxies))
    if summary:
        paths["summary.png"] = summary_plot(summary, out_dir / "summary.png")
    if proxies:
        paths["proxies.png"] = proxies_plot(proxies, out_dir / "proxies.png")
    return paths


# --------------------------------------------------------------------------- summary


def _scores(rows: list[dict]) -> list[dict]:
    """Long-format rows with each full-reference metric oriented so that higher = closer to the original."""
    out = []
    for row in rows:
        if row["version"] not in (DEGRADED, DEMUCS, GATING):
            continue
        scored = {"source": row["source"], "clip": row["clip"], "degradation": row["degradation"],
                  "version": row["version"]}
        for metric in REFERENCE_METRIC_INFO:
            value = row.get(metric)
            scored[metric] = None if value in (None, "") else (float(value) if higher_is_better(metric) else -float(value))
        out.append(scored)
    return out


def summary_rows(rows: list[dict]) -> list[dict]:
    """Paired improvements with 95 % CIs, the source clip as the unit (see the module docstring).

    Columns: degradation, metric, label, unit, comparison ("demucs − degraded" …), mean,
    ci95_low, ci95_high, excludes_zero, n_sources, n_clips, method, better.
    """
    from .stats import CLUSTER_T, paired_summary

    scored = _scores(rows)
    if not scored:
        return []
    several = len({r["degradation"] for r in scored}) > 1
    table = paired_summary(
        scored, metrics=list(REFERENCE_METRIC_INFO), pairs=list(COMPARISONS), unit_keys=("source", "clip", "degradation"),
        cluster_key="source", stratum_key="degradation", overall=ALL, method=CLUSTER_T, cluster_name="source",
        unit_name="clip",
    )
    out = []
    for entry in table:
        if entry["degradation"] == ALL and not several:
            continue
        label, unit, _, _ = REFERENCE_METRIC_INFO[entry["metric"]]
        a, b = entry["a"], entry["b"]
        out.append({
            "degradation": entry["degradation"],
            "metric": entry["metric"],
            "label": label,
            "unit": unit,
            "comparison": f"{a} − {b}",
            "mean": entry["mean"],
            "ci95_low": entry["ci95_low"],
            "ci95_high": entry["ci95_high"],
            "excludes_zero": entry["excludes_zero"],
            "n_sources": entry["n_sources"],
            "n_clips": entry["n_clips"],
            "method": entry["method"],
            "better": f"> 0 = {TITLES[a]} closer to the clean original than {TITLES[b]}"
                      + ("" if higher_is_better(entry["metric"]) else f" ({label}: lower is better, so the sign is flipped)"),
        })
    return out


# --------------------------------------------------------------------------- proxy validity


def proxy_rows(rows: list[dict]) -> list[dict]:
    """The proxy validity table: ρ(proxy change, full-reference improvement) per degradation × restorations.

    ``restorations`` is ``both`` (Demucs and gating pooled: the main row), ``demucs`` or
    ``spectral_gating``. ``expected_sign`` is the sign of ρ if the proxy means what the seed
    paper reads into it (e.g. + for ΔHBER: more highs = closer to the original); ``verdict`` says
    whether the interval supports that reading, contradicts it, or cannot tell.
    """
    restored = [r for r in rows if r["version"] in RESTORATIONS]
    degradations = sorted({r["degradation"] for r in restored})
    strata = [(d, [r for r in restored if r["degradation"] == d]) for d in degradations]
    if len(degradations) > 1:
        strata.insert(0, (ALL, restored))
    out = []
    for degradation, members in strata:
        groups = [("both", members)] + [(v, [r for r in members if r["version"] == v]) for v in RESTORATIONS]
        for group, group_rows in groups:
            for proxy, (proxy_label, sign, _) in PROXIES.items():
                for metric, (label, unit, _, _) in REFERENCE_METRIC_INFO.items():
                    pairs = [(float(r[proxy]), float(r[f"improvement_{metric}"]), r["source"]) for r in group_rows
                             if r.get(proxy) not in (None, "") and r.get(f"improvement_{metric}") not in (None, "")]
                    stat = spearman_cluster_bootstrap([p[0] for p in pairs], [p[1] for p in pairs],
                                                      [p[2] for p in pairs])
                    out.append({
                        "degradation": degradation,
                        "restorations": group,
                        "proxy": proxy,
                        "proxy_label": proxy_label,
                        "metric": metric,
                        "metric_label": label,
                        "rho": stat["rho"],
                        "ci95_low": stat["ci95_low"],
                        "ci95_high": stat["ci95_high"],
                        "n": stat["n"],
                        "n_sources": stat["n_sources"],
                        "expected_sign": "+" if sign > 0 else "−",
                        "verdict": _verdict(stat, sign),
                        "method": f"Spearman rho; percentile bootstrap over source clips, {BOOTSTRAP_RESAMPLES} "
                                  f"resamples, seed {BOOTSTRAP_SEED}",
                    })
    return out


def _verdict(stat: dict, sign: int) -> str:
    if stat["rho"] is None:
        return "undefined (fewer than 3 points or a constant column)"
    if stat["ci95_low"] is None:
        return "no interval (fewer than 3 source clips)"
    if stat["ci95_low"] > 0.0:
        return "supports" if sign > 0 else "contradicts"
    if stat["ci95_high"] < 0.0:
        return "supports" if sign < 0 else "contradicts"
    return "cannot tell (interval includes 0)"


# --------------------------------------------------------------------------- figures


def summary_plot(summary: list[dict], path) -> Path:
    """One panel per degradation × metric: the three paired comparisons as bars with 95 % CI whiskers."""
    from .plots import _figure
    from .versions import COLORS

    degradations = list(dict.fromkeys(r["degradation"] for r in summary))
    metrics = list(REFERENCE_METRIC_INFO)
    fig = _figure(3.1 * len(metrics), 3.2 * len(degradations),
                  margins={"left": 0.07, "right": 0.98, "bottom": 0.12, "top": 0.86, "wspace": 0.35, "hspace": 0.6})
    colours = {(DEMUCS, DEGRADED): COLORS[DEMUCS], (GATING, DEGRADED): COLORS[GATING], (DEMUCS, GATING): "#9467bd"}
    names = {(DEMUCS, DEGRADED): "Demucs\n− degraded", (GATING, DEGRADED): "Gating\n− degraded",
             (DEMUCS, GATING): "Demucs\n− gating"}
    for i, degradation in enumerate(degradations):
        for j, metric in enumerate(metrics):
            ax = fig.add_subplot(len(degradations), len(metrics), i * len(metrics) + j + 1)
            label, unit, _, _ = REFERENCE_METRIC_INFO[metric]
            for k, pair in enumerate(COMPARISONS):
                row = next((r for r in summary if r["degradation"] == degradation and r["metric"] == metric
                            and r["comparison"] == f"{pair[0]} − {pair[1]}"), None)
                if row is None or row["mean"] is None:
                    continue
                err = None
                if row["ci95_low"] is not None:
                    err = [[row["mean"] - row["ci95_low"]], [row["ci95_high"] - row["mean"]]]
                ax.bar(k, row["mean"], yerr=err, capsize=4, color=colours[pair])
            ax.set_xticks(range(len(COMPARISONS)), [names[p] for p in COMPARISONS], fontsize=7)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_title(f"{degradation}: {label}", fontsize=8)
            ax.set_ylabel(f"improvement ({unit})", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
    n = max((r["n_sources"] for r in summary), default=0)
    fig.suptitle("Paired improvement over the degraded input, > 0 = closer to the clean original\n"
                 f"mean with 95 % CI, source clip as the unit (n = {n} source clips)", fontsize=10)
    fig.savefig(path)
    return Path(path)


def proxies_plot(proxies: list[dict], path) -> Path:
    """Heat maps of ρ (proxy change × full-reference improvement), one per degradation, both restorations pooled."""
    from .plots import _figure

    degradations = list(dict.fromkeys(r["degradation"] for r in proxies))
    metrics = list(REFERENCE_METRIC_INFO)
    fig = _figure(8.5, 0.8 + 3.4 * len(degradations),
                  margins={"left": 0.3, "right": 0.9, "bottom": 0.08, "top": 0.9, "hspace": 0.5})
    for i, degradation in enumerate(degradations):
        ax = fig.add_subplot(len(degradations), 1, i + 1)
        grid = np.full((len(PROXIES), len(metrics)), np.nan)
        for a, proxy in enumerate(PROXIES):
            for b, metric in enumerate(metrics):
                row = next(r for r in proxies if r["degradation"] == degradation and r["restorations"] == "both"
                           and r["proxy"] == proxy and r["metric"] == metric)
                if row["rho"] is not None:
                    grid[a, b] = row["rho"]
                low, high = row["ci95_low"], row["ci95_high"]
                text = "—" if row["rho"] is None else f"{row['rho']:+.2f}"
                if low is not None:
                    text += f"\n[{low:+.2f}, {high:+.2f}]"
                ax.text(b, a, text, ha="center", va="center", fontsize=7)
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(metrics)), [REFERENCE_METRIC_INFO[m][0].replace(" (multi-resolution)", "")
                                            for m in metrics], fontsize=7)
        ax.set_yticks(range(len(PROXIES)), [f"{v[0]} (seed paper: {'+' if v[1] > 0 else '−'})"
                                            for v in PROXIES.values()], fontsize=7)
        n = max((r["n"] for r in proxies if r["degradation"] == degradation and r["restorations"] == "both"), default=0)
        ax.set_title(f"{degradation} (n = {n} clip × restoration)", fontsize=9)
        fig.colorbar(image, ax=ax, label="Spearman ρ", fraction=0.04, pad=0.02)
    fig.suptitle("Does a proxy's change predict getting closer to the clean original?\n"
                 "Spearman ρ of proxy change vs full-reference improvement, 95 % bootstrap CI over source clips",
                 fontsize=10)
    fig.savefig(path)
    return Path(path)

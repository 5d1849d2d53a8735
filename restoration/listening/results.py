"""Results of a test for the organiser: analysis from a snapshot, as Markdown, tables and a plot.

Used by the admin tab and ``python -m restoration listening results``. Contains condition names:
never call it from a participant's handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..versions import ANCHOR, CONDITION_SHORT, CONDITION_TITLES, CONDITIONS
from . import export, store
from .stats import Analysis, analyze, ratings_from_rows


@dataclass
class TestResults:
    test: dict
    n_trials: int
    analysis: Analysis
    clip_labels: dict  # trial id → "genre: prompt"


def load_results(test_ref: str | None = None, *, include_everyone: bool = False, path=None) -> TestResults:
    """Analyse one test (the active one by default) from a consistent snapshot."""
    test = store.get_test(test_ref, path)
    with export.snapshot(path) as snap:
        analysis, trials = _analyse(snap, test, include_everyone=include_everyone)
    labels = {t["id"]: f"{t['genre']}: {t['prompt']}" for t in trials}
    return TestResults(test=test, n_trials=len(trials), analysis=analysis, clip_labels=labels)


def _analyse(snap, test: dict, *, include_everyone: bool = False) -> tuple[Analysis, list]:
    rows = export.rating_rows(test["id"], conn=snap)
    listeners = list(export.session_counts(test["id"], conn=snap))
    trials = snap.execute("SELECT id, genre, prompt FROM trials WHERE test_id = ? AND is_training = 0",
                          (test["id"],)).fetchall()
    analysis = analyze(ratings_from_rows(rows), n_trials=len(trials), listeners=listeners,
                       include_everyone=include_everyone)
    return analysis, trials


def _exclusions(snap, test) -> dict:
    analysis, _ = _analyse(snap, test)
    return {s.listener: {"excluded_by": ";".join(s.reasons)} for s in analysis.screened}


def export_csv(out, test_ref: str | None = None, *, path=None) -> tuple[Path, int]:
    """:func:`export.export_csv` plus ``excluded_by``: the screening rules that exclude each row's listener.

    ``incomplete``, ``anchor`` and ``agreement`` joined by ``;`` (see :func:`.stats.screen`),
    empty for a listener the analysis keeps; computed from the same snapshot as the rows.
    """
    return export.export_csv(out, test_ref, path, annotate=_exclusions, extra_columns=("excluded_by",))


def export_text(test_ref: str | None = None, *, path=None) -> tuple[str, str, int]:
    """The same CSV as :func:`export_csv`, as text for a download: (test name, text, rows)."""
    return export.csv_text(test_ref, path, annotate=_exclusions, extra_columns=("excluded_by",))


def _f(x, fmt=".1f") -> str:
    return "—" if x is None else format(x, fmt)


def _p(x) -> str:
    if x is None:
        return "—"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def markdown(res: TestResults) -> str:
    """A readable summary: screening counts, means with CIs, Friedman, pairwise tests."""
    a = res.analysis
    c = a.excluded_counts()
    lines = [f"### {res.test['name']}",
             f"{res.n_trials} scored trials per listener. **Recruited: {a.recruited}** · "
             f"excluded as incomplete (< 80 % of trials): {c['incomplete']} · by the anchor rule: {c['anchor']} · "
             f"by the agreement rule (ρ < 0.5): {c['agreement']} · excluded in all: {c['any']}.",
             ""]
    if a.include_everyone:
        lines.append(f"**Everyone included** (screening ignored): n = {len(a.included)} listeners.")
    else:
        lines.append(f"**Analysed after screening: n = {len(a.included)} listeners.** "
                     "Tick \"include everyone\" to see the results without screening.")
    lines += ["", "Each listener's ratings are averaged per version over clips first; the CI is a t interval "
              "over listeners.", "", "| Version | n | Mean | 95 % CI | SD |", "|---|---|---|---|---|"]
    for s in a.summary:
        ci = "—" if s.ci_low is None else f"{s.ci_low:.1f} – {s.ci_high:.1f}"
        lines.append(f"| {CONDITION_TITLES[s.condition]} | {s.n} | {_f(s.mean)} | {ci} | {_f(s.sd)} |")
    fr = a.friedman
    lines += ["", f"**Friedman** over the three real versions: n = {fr.n}, "
              + (f"χ²(2) = {fr.statistic:.2f}, p = {_p(fr.p)}" if fr.statistic is not None else fr.note) + ".",
              "", "| Pair | n | Median difference | W | p | p (Holm) |", "|---|---|---|---|---|---|"]
    for pw in a.pairwise:
        pair = f"{CONDITION_SHORT[pw.first]} − {CONDITION_SHORT[pw.second]}"
        lines.append(f"| {pair} | {pw.n} | {_f(pw.median_difference)} | "
                     f"{_f(pw.statistic, '.1f')} | {_p(pw.p)} | {_p(pw.p_holm)} |")
    lines += ["", "The anchor is for screening and sanity only; it is not in Friedman or Wilcoxon."]
    return "\n".join(lines)


def screening_table(res: TestResults) -> list[list]:
    """Rows: listener, trials, completeness %, anchor failures / limit, ρ, excluded by."""
    return [[s.listener[:8], s.trials, round(100 * s.completeness), f"{s.anchor_failures} / {s.anchor_limit:g}",
             None if s.agreement is None else round(s.agreement, 3), ", ".join(s.reasons) or "—"]
            for s in res.analysis.screened]


SCREENING_HEADERS = ["Listener", "Trials", "Complete %", "Anchor fails / limit", "ρ with panel", "Excluded by"]


def clip_table(res: TestResults) -> tuple[list[str], list[list]]:
    headers = ["Clip", *[CONDITION_SHORT[c] for c in CONDITIONS], "n"]
    rows = []
    for clip, label in sorted(res.clip_labels.items(), key=lambda kv: kv[1]):
        values = res.analysis.clips.get(clip, {})
        n = max((v[1] for v in values.values()), default=0)
        rows.append([label, *[None if c not in values else round(values[c][0], 1) for c in CONDITIONS], n])
    return headers, rows


def figure(res: TestResults):
    """Per version: each listener's mean (dots), the mean with its 95 % CI (bar); per-clip means beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    a = res.analysis
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    x = np.arange(len(CONDITIONS))
    for i, s in enumerate(a.summary):
        if s.mean is None:
            continue
        ax.bar(i, s.mean, color="#9ecae1" if s.condition != ANCHOR else "#dddddd", width=0.6)
        if s.ci_low is not None:
            ax.errorbar(i, s.mean, yerr=[[s.mean - s.ci_low], [s.ci_high - s.mean]], color="k", capsize=6)
    rng = np.random.default_rng(0)
    for i, c in enumerate(CONDITIONS):
        pts = [m[c] for m in a.means.values() if c in m]
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(pts)), pts, s=10, color="#08519c", alpha=0.6, zorder=3)
    ax.set_xticks(x, [CONDITION_SHORT[c] for c in CONDITIONS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("Rating (0–100): mean, 95 % CI, listeners")
    ax.set_title(f"Per version (n = {len(a.included)} listeners)")
    scale = ax.twinx()  # the five labels of the 0–100 scale, as the listeners saw them
    scale.set_ylim(0, 100)
    scale.set_yticks([10, 30, 50, 70, 90], ["Bad", "Poor", "Fair", "Good", "Excellent"], fontsize=7, color="#666")
    scale.tick_params(length=0)
    clips = sorted(res.clip_labels, key=lambda k: res.clip_labels[k])
    width = 0.2
    for j, c in enumerate(CONDITIONS):
        vals = [res.analysis.clips.get(k, {}).get(c, (np.nan, 0))[0] for k in clips]
        ax2.bar(np.arange(len(clips)) + (j - 1.5) * width, vals, width=width, label=CONDITION_SHORT[c])
    ax2.set_xticks(np.arange(len(clips)), [res.clip_labels[k][:18] for k in clips], rotation=35, ha="right",
                   fontsize=7)
    ax2.set_ylim(0, 100)
    ax2.set_title("Per clip (mean over listeners)")
    ax2.legend(fontsize=7, ncol=4, loc="upper center")
    fig.tight_layout()
    return fig

"""Batch runs: many prompts × seeds, per-clip rows and an aggregate table with 95 % CIs.

Layout of ``--out``::

    clips/<genre>/<NN>-<prompt-slug>/seed<S>/   one full report per clip (report.json last)
    clips.csv      a row per clip × version
    summary.csv    per version × genre (and "all"): mean, 95 % CI, n per metric
    summary.png    the main metrics per version with their 95 % CIs

A rerun skips every clip whose ``report.json`` exists, so an interrupted night resumes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .csvfiles import csv_text, write_text_atomic
from .errors import BadInputError
from .outputs import flatten_metrics, write_report
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings, validate_prompt

UNLABELLED = "unlabelled"
SUMMARY_METRICS = ("hber_delta_db", "spectral_flatness", "bandwidth_hz", "noise_floor_p10_dbfs", "residual_db")


@dataclass(frozen=True)
class Job:
    genre: str
    prompt: str
    index: int
    seed: int

    def folder(self, root: Path) -> Path:
        return root / "clips" / _slug(self.genre) / f"{self.index:02d}-{_slug(self.prompt)[:40]}" / f"seed{self.seed}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def read_prompts(path) -> list[tuple[str, str]]:
    """Read ``genre | prompt`` lines (or bare prompts, genre "unlabelled"); blank and ``#`` lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"prompts file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInputError(f"prompts file is not UTF-8 text: {path}") from None
    prompts = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        genre, sep, prompt = line.partition("|")
        if not sep:
            genre, prompt = UNLABELLED, line
        genre = genre.strip() or UNLABELLED
        try:
            prompts.append((genre, validate_prompt(prompt)))
        except BadInputError as exc:
            raise BadInputError(f"{path.name} line {number}: {exc}") from None
    if not prompts:
        raise BadInputError(f"prompts file has no prompts: {path}")
    return prompts


def plan(prompts: list[tuple[str, str]], seeds: int) -> list[Job]:
    if int(seeds) < 1:
        raise BadInputError(f"--seeds must be ≥ 1, got {seeds}")
    return [Job(g, p, i, s) for i, (g, p) in enumerate(prompts) for s in range(int(seeds))]


def pending(jobs: list[Job], out_dir) -> list[Job]:
    """The jobs whose clip folder has no ``report.json`` yet (written last, so a folder with it is complete)."""
    return [job for job in jobs if not (job.folder(Path(out_dir)) / "report.json").exists()]


def run_job(
    job: Job,
    out_dir,
    *,
    generation: GenerationSettings,
    demucs: DemucsSettings,
    gating: GatingSettings,
    metrics: MetricSettings,
) -> Path:
    """Generate one prompt × seed, restore and measure it, and write its clip folder (all or nothing).

    The one unit of work of a study: the local loop and the Ray workers (:mod:`restoration.cluster`)
    both call it, so both give the same clip for the same job and settings.
    """
    from .pipeline import run_prompt

    report = run_prompt(
        job.prompt, generation=replace(generation, seed=job.seed), demucs=demucs, gating=gating, metrics=metrics
    )
    report.source.update(genre=job.genre, prompt_index=job.index)
    return write_report(report, job.folder(Path(out_dir)))


def run_batch(
    prompts_file,
    out_dir,
    *,
    seeds: int = 1,
    generation: GenerationSettings = GenerationSettings(),
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    show_progress: bool = True,
) -> dict:
    """Run every prompt × seed not already done, then rewrite the tables. Returns counts."""
    from tqdm import tqdm

    jobs = plan(read_prompts(prompts_file), seeds)
    out_dir = Path(out_dir)
    todo = pending(jobs, out_dir)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="clip", disable=not show_progress)
    for job in todo:
        bar.set_description(f"{job.genre[:16]} seed {job.seed}")
        run_job(job, out_dir, generation=generation, demucs=demucs, gating=gating, metrics=metrics)
        bar.update(1)
    bar.close()
    rows = collect_rows(out_dir)
    write_tables(rows, out_dir)
    return {"clips": len(jobs), "ran": len(todo), "skipped": len(jobs) - len(todo), "rows": len(rows)}


def collect_rows(out_dir) -> list[dict]:
    """A row per finished clip × version, read back from the clip folders."""
    import json

    rows = []
    for report_path in sorted(Path(out_dir).glob("clips/*/*/*/report.json")):
        folder = report_path.parent
        summary = json.loads(report_path.read_text(encoding="utf-8"))
        table = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        source = summary.get("source", {})
        for version, values in table.items():
            rows.append(
                {
                    "genre": source.get("genre", UNLABELLED),
                    "prompt": source.get("prompt", ""),
                    "seed": source.get("seed", ""),
                    "version": version,
                    **flatten_metrics(values),
                    "folder": str(folder.relative_to(out_dir)),
                }
            )
    return rows


def mean_ci95(values) -> dict:
    """Mean and two-sided 95 % CI of the mean, t distribution with n − 1 degrees of freedom.

    CI = mean ± t(0.975, n−1) · s / √n. With n < 2 the CI is undefined (``None``).
    """
    from scipy import stats

    data = np.asarray([v for v in values if v is not None and v != ""], dtype=float)
    n = int(data.size)
    if n == 0:
        return {"mean": None, "ci95_low": None, "ci95_high": None, "n": 0}
    mean = float(data.mean())
    if n < 2:
        return {"mean": mean, "ci95_low": None, "ci95_high": None, "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * data.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def aggregate(rows: list[dict]) -> list[dict]:
    """Per version × genre (plus genre "all") × metric: mean, 95 % CI, n (clips with a defined value)."""
    metric_columns = [k for k in rows[0] if k not in ("genre", "prompt", "seed", "version", "folder")] if rows else []
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["version"], row["genre"]), []).append(row)
        groups.setdefault((row["version"], "all"), []).append(row)
    table = []
    for (version, genre), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        for metric in metric_columns:
            table.append({"version": version, "genre": genre, "metric": metric, **mean_ci95(r[metric] for r in members)})
    return table


def write_tables(rows: list[dict], out_dir) -> None:
    out_dir = Path(out_dir)
    summary = aggregate(rows)
    write_text_atomic(out_dir / "clips.csv", csv_text(rows))
    write_text_atomic(out_dir / "summary.csv", csv_text(summary))
    if summary:
        summary_plot(summary, out_dir / "summary.png")


def summary_plot(summary: list[dict], path) -> Path:
    """Bars of the mean per version for the main metrics (all genres), with 95 % CI whiskers."""
    from .metrics import METRIC_INFO
    from .plots import _figure
    from .versions import COLORS, TITLES, VERSIONS

    overall = [r for r in summary if r["genre"] == "all"]
    versions = sorted({r["version"] for r in overall}, key=lambda v: VERSIONS.index(v) if v in VERSIONS else 9)
    fig = _figure(3.0 * len(SUMMARY_METRICS), 3.4)
    for i, metric in enumerate(SUMMARY_METRICS):
        ax = fig.add_subplot(1, len(SUMMARY_METRICS), i + 1)
        label, unit, _ = METRIC_INFO[metric]
        for j, version in enumerate(versions):
            row = next((r for r in overall if r["version"] == version and r["metric"] == metric), None)
            if row is None or row["mean"] is None:
                continue
            err = None
            if row["ci95_low"] is not None:
                err = [[row["mean"] - row["ci95_low"]], [row["ci95_high"] - row["mean"]]]
            ax.bar(j, row["mean"], yerr=err, capsize=4, color=COLORS.get(version, "grey"))
            ax.text(j, 0, f"n={row['n']}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(versions)), [TITLES.get(v, v).split(" (")[0] for v in versions], fontsize=8, rotation=20)
        ax.set_title(f"{label}\n({unit})", fontsize=9)
        ax.axhline(0, color="black", linewidth=0.6)
    fig.suptitle("Mean over clips with 95 % CI (t, n − 1 df)")
    fig.savefig(path)
    return Path(path)

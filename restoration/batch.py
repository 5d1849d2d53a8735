"""Batch runs: many prompts × seeds, per-clip rows, and paired study statistics with 95 % CIs.

Layout of ``--out``::

    clips/<genre>/<NN>-<prompt-slug>/seed<S>/   one full report per clip (report.json last)
    clips.csv      a row per clip × version
    paired.csv     per genre (and "all") × metric × comparison (demucs − spectral_gating,
                   demucs − input, spectral_gating − input): the mean per-clip difference,
                   95 % CI, whether it excludes 0, n prompts, n clips, method
    summary.csv    per version × genre (and "all") × metric: mean, 95 % CI, n prompts, n clips, method
    summary.png    the paired differences of the main metrics with their 95 % CIs

Every interval treats the prompt as the unit: the seeds of one prompt are averaged first and
the interval is a t interval over prompts (``restoration.stats``, method ``cluster-t``).

A rerun skips every clip whose ``report.json`` exists, so an interrupted night resumes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from .csvfiles import csv_text, write_text_atomic
from .errors import BadInputError
from .outputs import flatten_metrics, write_report
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings, validate_prompt
from .stats import CLUSTER_T
from .versions import COLORS, DEMUCS, GATING, INPUT, TITLES, VERSIONS

UNLABELLED = "unlabelled"
ALL = "all"
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


#: Clips ``batch`` samples together when ``--batch-size`` is not given, per device. Measured on a
#: 2-core Intel Xeon @ 2.00 GHz (AVX-512, no VNNI), idle, full-size musicgen-small, 2 threads,
#: ms per clip and token step at 1 / 2 / 4 / 8 / 16 clips (rows = 2 × clips with guidance):
#: fp32 (``exact``) 131 / 90 / 58 / 47 / 30.5; int8 ``split`` (``fast``) 128 / 101 / 73 / 49 / 40.
#: Each weight is read once per step for every row, so the cost per clip keeps falling up to 16
#: clips; 16 clips hold a 1.6 GB key/value cache. Demucs is not batched: on the same machine two
#: clips separated together took 0.92× the speed of one at a time, four 0.71×.
#: On a GPU rows are nearly free up to far more (not measured: no GPU).
AUTO_BATCH_SIZE = {"cpu": 16, "cuda": 32}


def auto_batch_size(device: str | None = None) -> int:
    """The default ``--batch-size`` for ``device`` (default: :func:`restoration.device.pick_device`)."""
    if device is None:
        from .device import pick_device

        device = pick_device()
    return AUTO_BATCH_SIZE.get(device, 1)


def run_jobs(
    jobs: list[Job],
    out_dir,
    *,
    batch_size: int,
    generation: GenerationSettings,
    demucs: DemucsSettings,
    gating: GatingSettings,
    metrics: MetricSettings,
    on_clip=None,
) -> None:
    """Run ``jobs``, ``batch_size`` clips at a time: sample them together, then finish each alone.

    Each group is sampled by one :func:`restoration.generation.generate_batch` call (each clip
    with its own seed and generator: the tokens :func:`run_job` samples for it), then every
    clip goes through :func:`restoration.pipeline.run_generated` (Demucs, gating, metrics)
    and its folder is written at once, all or nothing, exactly as :func:`run_job` writes it.
    ``report.timings_s["generating"]`` is the clip's share of its group's sampling time.
    ``on_clip(job)`` is called after each folder is written. ``batch_size`` 1 is :func:`run_job`.
    """
    import time

    from .generation import generate_batch
    from .pipeline import run_generated

    if int(batch_size) < 1:
        raise BadInputError(f"--batch-size must be ≥ 1, got {batch_size}")
    out_dir = Path(out_dir)
    for first in range(0, len(jobs), int(batch_size)):
        group = jobs[first : first + int(batch_size)]
        if len(group) == 1:
            run_job(group[0], out_dir, generation=generation, demucs=demucs, gating=gating, metrics=metrics)
            if on_clip is not None:
                on_clip(group[0])
            continue
        settings = [replace(generation, seed=job.seed) for job in group]
        start = time.perf_counter()
        clips = generate_batch([(job.prompt, clip_settings) for job, clip_settings in zip(group, settings)])
        share = round((time.perf_counter() - start) / len(group), 4)
        for job, clip_settings, (audio, sample_rate) in zip(group, settings, clips):
            report = run_generated(audio, sample_rate, prompt=job.prompt, generation=clip_settings, demucs=demucs,
                                   gating=gating, metrics=metrics)
            report.timings_s["generating"] = share
            report.source.update(genre=job.genre, prompt_index=job.index)
            write_report(report, job.folder(out_dir))
            if on_clip is not None:
                on_clip(job)


def run_batch(
    prompts_file,
    out_dir,
    *,
    seeds: int = 1,
    batch_size: int | None = None,
    generation: GenerationSettings = GenerationSettings(),
    demucs: DemucsSettings = DemucsSettings(),
    gating: GatingSettings = GatingSettings(),
    metrics: MetricSettings = MetricSettings(),
    show_progress: bool = True,
) -> dict:
    """Run every prompt × seed not already done, ``batch_size`` clips sampled together, then rewrite the tables.

    ``batch_size`` None: :func:`auto_batch_size` for the device. Returns counts.
    """
    from tqdm import tqdm

    jobs = plan(read_prompts(prompts_file), seeds)
    out_dir = Path(out_dir)
    todo = pending(jobs, out_dir)
    size = auto_batch_size() if batch_size is None else int(batch_size)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="clip", disable=not show_progress)
    if todo:
        bar.set_description(f"{min(size, len(todo))} clips at a time")

    def on_clip(job: Job) -> None:
        bar.set_description(f"{job.genre[:16]} seed {job.seed}")
        bar.update(1)

    run_jobs(todo, out_dir, batch_size=size, generation=generation, demucs=demucs, gating=gating, metrics=metrics,
             on_clip=on_clip)
    bar.close()
    rows = collect_rows(out_dir)
    write_tables(rows, out_dir)
    return {"clips": len(jobs), "ran": len(todo), "skipped": len(jobs) - len(todo), "rows": len(rows),
            "batch_size": size}


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


#: The paired comparisons of a study, each ``a − b`` per clip.
COMPARISONS = ((DEMUCS, GATING), (DEMUCS, INPUT), (GATING, INPUT))
#: How the intervals are computed (``restoration.stats``): seeds of one prompt averaged first,
#: then a t interval over prompts.
CI_METHOD = CLUSTER_T
_ID_COLUMNS = ("genre", "prompt", "seed", "version", "folder")


def _metric_columns(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if k not in _ID_COLUMNS] if rows else []


def aggregate(rows: list[dict]) -> list[dict]:
    """Per version × genre (plus genre "all") × metric: the mean over clips and its 95 % CI with the prompt as unit.

    Seeds of one prompt are not independent, so each prompt's clips are averaged first and the
    interval is a t interval over the prompt means (:func:`restoration.stats.clustered_t_interval`,
    n_prompts − 1 degrees of freedom); ``mean`` is the mean of prompt means. Columns: version,
    genre, metric, mean, ci95_low, ci95_high, n_prompts, n_clips (clips with a defined value), method.
    """
    from .stats import interval

    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["version"], row["genre"]), []).append(row)
        groups.setdefault((row["version"], ALL), []).append(row)

    def order(key):
        version, genre = key
        return (VERSIONS.index(version) if version in VERSIONS else len(VERSIONS), version, genre != ALL, genre)

    table = []
    for (version, genre) in sorted(groups, key=order):
        members = groups[(version, genre)]
        for metric in _metric_columns(rows):
            kept = [r for r in members if r.get(metric) not in (None, "")]
            result = interval([r[metric] for r in kept], [r["prompt"] for r in kept], method=CI_METHOD)
            table.append({"version": version, "genre": genre, "metric": metric, "mean": result.mean,
                          "ci95_low": result.low, "ci95_high": result.high, "n_prompts": result.n,
                          "n_clips": len(kept), "method": CI_METHOD})
    return table


def paired_table(rows: list[dict]) -> list[dict]:
    """Per genre (and "all") × metric × comparison: the mean paired difference per clip with its 95 % CI.

    For every clip, ``a − b`` of one metric (Demucs − spectral gating, and each restoration −
    input); the prompt is the unit of the interval (:func:`restoration.stats.paired_summary`
    with :data:`CI_METHOD`). Columns: genre, metric, label, unit, comparison, mean, ci95_low,
    ci95_high, excludes_zero, n_prompts, n_clips, method, better (what a positive difference
    means for this metric).
    """
    from .metrics import METRICS_BY_NAME
    from .stats import paired_summary

    metrics = _metric_columns(rows)
    table = paired_summary(rows, metrics=metrics, pairs=COMPARISONS, unit_keys=("prompt", "seed"),
                           cluster_key="prompt", condition_key="version", stratum_key="genre", overall=ALL,
                           method=CI_METHOD, cluster_name="prompt", unit_name="clip")
    out = []
    for entry in table:
        info = METRICS_BY_NAME.get(entry["metric"])
        label, unit, better = (info.label, info.unit, info.better) if info else (entry["metric"], "dB", "")
        if info is None and entry["metric"].startswith("hber_delta_db_"):
            label = f"ΔHBER {entry['metric'][len('hber_delta_db_'):]}"
        a, b = entry["a"], entry["b"]
        out.append({
            "genre": entry["genre"], "metric": entry["metric"], "label": label, "unit": unit,
            "comparison": entry["comparison"], "mean": entry["mean"], "ci95_low": entry["ci95_low"],
            "ci95_high": entry["ci95_high"], "excludes_zero": entry["excludes_zero"],
            "n_prompts": entry["n_prompts"], "n_clips": entry["n_clips"], "method": entry["method"],
            "better": f"> 0 = {TITLES.get(a, a)} measures higher than {TITLES.get(b, b)}"
                      + (f"; {better}" if better else ""),
        })
    return out


def write_tables(rows: list[dict], out_dir) -> None:
    """Write ``clips.csv``, ``summary.csv``, ``paired.csv`` and ``summary.png`` (the plot when there are rows)."""
    out_dir = Path(out_dir)
    summary = aggregate(rows)
    paired = paired_table(rows)
    write_text_atomic(out_dir / "clips.csv", csv_text(rows))
    write_text_atomic(out_dir / "summary.csv", csv_text(summary))
    write_text_atomic(out_dir / "paired.csv", csv_text(paired))
    if paired:
        summary_plot(paired, out_dir / "summary.png")


def summary_plot(paired: list[dict], path) -> Path:
    """The paired differences of the main metrics (all genres), each with its 95 % CI.

    One panel per metric of :data:`SUMMARY_METRICS`; one row per comparison, a dot at the mean
    difference and a bar across its interval, a line at 0. An interval that misses 0 is drawn
    solid; one that crosses it, hollow. The legend line names the method and the counts.
    """
    from .metrics import METRICS_BY_NAME
    from .plots import _figure

    overall = [r for r in paired if r["genre"] == ALL]
    comparisons = [f"{a} − {b}" for a, b in COMPARISONS]
    names = {f"{a} − {b}": f"{TITLES.get(a, a)} − {TITLES.get(b, b)}" for a, b in COMPARISONS}
    fig = _figure(3.2 * len(SUMMARY_METRICS), 0.6 * len(comparisons) + 1.8,
                  margins={"left": 0.11, "right": 0.99, "bottom": 0.22, "top": 0.78, "wspace": 0.35})
    counts = ""
    for i, metric in enumerate(SUMMARY_METRICS):
        ax = fig.add_subplot(1, len(SUMMARY_METRICS), i + 1)
        info = METRICS_BY_NAME[metric]
        for j, comparison in enumerate(comparisons):
            row = next((r for r in overall if r["metric"] == metric and r["comparison"] == comparison), None)
            if row is None or row["mean"] is None:
                continue
            y = len(comparisons) - 1 - j
            color = COLORS.get(comparison.split(" − ")[0], "grey")
            if row["ci95_low"] is not None:
                ax.hlines(y, row["ci95_low"], row["ci95_high"], color=color, linewidth=2)
            ax.plot([row["mean"]], [y], "o", color=color, markerfacecolor=color if row["excludes_zero"] else "white")
            counts = f"{row['n_prompts']} prompts, {row['n_clips']} clips"
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_ylim(-0.6, len(comparisons) - 0.4)
        ax.set_yticks(range(len(comparisons)), [names[c] for c in reversed(comparisons)] if i == 0 else [],
                      fontsize=8)
        ax.set_title(f"{info.label}\n(Δ {info.unit})", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Paired difference per clip, mean with 95 % CI; prompt = unit (seeds averaged, t over prompts)"
                 + (f" — {counts}" if counts else ""), fontsize=9)
    fig.text(0.5, 0.03, "Filled dot: the interval excludes 0; hollow: it does not. No dot: undefined "
             "(ΔHBER and removed energy are already measured against the input).", ha="center", fontsize=8)
    fig.savefig(path)
    return Path(path)

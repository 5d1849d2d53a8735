"""The ground-truth study: degrade clean music, restore it both ways, measure against the original.

::

    plan(clean, seconds=…, degradations=…)   → [Job]   (every input checked first; BadInputError)
    run_clip(job, out_dir, settings)          → rows    (one clip × degradation, written all or nothing)
    write_tables(out_dir)                     → clips.csv, summary.csv/png, proxies.csv/png
    run_study(...)                            the three above with a progress bar; resumes

For one clip and one degradation (:mod:`restoration.degradations`), :func:`run_clip` makes the
degraded clip and its clean reference, restores the degraded clip with the project's one
pipeline (:func:`restoration.pipeline.run`: Demucs, spectral gating, the proxy metrics),
measures every version against the clean reference (:mod:`restoration.reference_metrics`) and
writes the folder ``clips/<clip>/<degradation>/``:

    clean.wav, degraded.wav, demucs.wav, spectral_gating.wav   32-bit float, at the degradation's rate
    listening/*.wav        loudness-matched copies (−23 LUFS, one shared −1 dBFS peak ceiling), 16-bit
    mel_*.png              Mel spectrograms on one shared colour scale; spectrum.png
    metrics.json           per version: full-reference metrics, proxy metrics, improvements
    clip.json              source, offset, degradation, settings, timings and the clip's table rows

The folder is staged beside its final place and renamed into it when complete, so it either
exists whole or not at all; a rerun skips it (resume). :mod:`restoration.groundtruth_tables`
turns the rows into the study's tables.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cleanset import CleanClip, plan_clips
from .degradations import degrade, needs_musicgen, parse_degradations
from .csvfiles import write_text_atomic
from .groundtruth_tables import PROXIES, write_study_tables
from .outputs import json_text
from .reference_metrics import REFERENCE_METRIC_INFO, ReferenceMetricSettings, improvement, measure_versions_against
from .settings import DemucsSettings, GatingSettings, MetricSettings
from .versions import CLEAN, DEGRADED, DEMUCS, GATING, GROUND_TRUTH_VERSIONS, INPUT, RESTORATIONS

CLIP_FILE = "clip.json"
#: proxy change → (the proxy metric it is the change of, None when the metric is itself a change).
_PROXY_SOURCES = {
    "hber_delta_db": None,
    "flatness_change": "spectral_flatness",
    "bandwidth_change_hz": "bandwidth_hz",
    "noise_floor_p10_change_db": "noise_floor_p10_dbfs",
    "noise_floor_change_db": "noise_floor_dbfs",
}
#: The proxy metrics copied into clips.csv for every version.
PROXY_COLUMNS = ("spectral_flatness", "hbr_db", "hber_delta_db", "bandwidth_hz", "noise_floor_dbfs",
                 "noise_floor_p10_dbfs", "residual_db", "lufs")


@dataclass(frozen=True)
class StudySettings:
    """Everything a ground-truth clip is run with (one object, hashable, logged in ``clip.json``)."""

    demucs: DemucsSettings = DemucsSettings()
    gating: GatingSettings = GatingSettings()
    metrics: MetricSettings = MetricSettings()
    reference: ReferenceMetricSettings = ReferenceMetricSettings()


@dataclass(frozen=True)
class Job:
    """One unit of work: ``clip`` through ``degradation``. ``seed`` seeds a noise degradation."""

    clip: CleanClip
    degradation: str
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.clip.clip_id}/{self.degradation}"

    def folder(self, out_dir) -> Path:
        return Path(out_dir) / "clips" / self.clip.clip_id / self.degradation


def plan(clean, *, seconds: float, degradations, progress=None) -> list[Job]:
    """Every clip × degradation of a study, checked before any work.

    ``clean`` is ``"builtin"`` or a folder; ``degradations`` a comma-separated string or a
    sequence of names. Raises :class:`BadInputError` for an unknown degradation, a missing or
    empty folder, an unreadable file or a file shorter than ``seconds``. The seed of a clip's
    noise is the CRC-32 of its id, so it does not depend on which other clips are in the study.
    """
    names = parse_degradations(degradations if isinstance(degradations, str) else ",".join(degradations))
    clips = plan_clips(clean, seconds=seconds, progress=progress)
    return [Job(clip, name, zlib.crc32(clip.clip_id.encode("utf-8"))) for clip in clips for name in names]


def check_models(jobs: list[Job]) -> None:
    """Load the models the jobs need (MusicGen for its codec, Demucs), so a missing one fails before any work.

    Raises :class:`~restoration.errors.ModelUnavailableError` (exit status 3 on the command line).
    """
    from . import generation, separation

    if needs_musicgen({job.degradation for job in jobs}):
        generation.load_musicgen(mode=generation.resolve_mode(None))
    separation.load_demucs()


def is_done(job: Job, out_dir) -> bool:
    return (job.folder(out_dir) / CLIP_FILE).is_file()


def run_clip(job: Job, out_dir, settings: StudySettings = StudySettings(), *, progress=None) -> list[dict]:
    """Run one clip × degradation into ``<out_dir>/clips/<clip>/<degradation>/`` and return its table rows.

    A folder that is already complete is not run again: its rows are read back. Otherwise the
    folder is written all or nothing. ``progress(stage, fraction, detail)`` follows the pipeline's
    stages. Returns one row per version (clean, degraded, Demucs, spectral gating), see
    :func:`rows_of`.
    """
    from . import pipeline

    folder = job.folder(out_dir)
    if is_done(job, out_dir):
        return read_rows(folder)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # process CPU seconds (all threads) per step: what the work costs, whatever the load
    start, cpu_start = time.perf_counter(), time.process_time()
    clean_audio, clean_rate = job.clip.load()
    timings["load"] = _since(start)

    t, c = time.perf_counter(), time.process_time()
    degraded = degrade(clean_audio, clean_rate, name=job.degradation, seed=job.seed)
    timings["degrade"], cpu["degrade"] = _since(t), _cpu_since(c)
    rate = degraded.sample_rate

    c = time.process_time()
    source = {"kind": "groundtruth", "clip": job.clip.clip_id, "file": job.clip.path.name,
              "offset_s": job.clip.offset_s, "seconds": job.clip.seconds, "degradation": job.degradation}
    report = pipeline.run(clip=pipeline.Clip(audio=degraded.degraded, sample_rate=rate, source=source),
                          demucs=settings.demucs, gating=settings.gating, metrics=settings.metrics, progress=progress)
    cpu["restorations and proxy metrics"] = _cpu_since(c)
    for stage, seconds in report.timings_s.items():
        if stage != "total":
            timings[stage] = seconds

    versions = {CLEAN: degraded.reference, DEGRADED: report.versions[INPUT],
                DEMUCS: report.versions[DEMUCS], GATING: report.versions[GATING]}
    t = time.perf_counter()
    proxies = proxy_metrics(versions, report.metrics, rate, settings.metrics)
    timings["proxy metrics (clean)"] = _since(t)

    t, c = time.perf_counter(), time.process_time()
    if progress is not None:
        progress("reference metrics", 0.0, "")
    reference = measure_versions_against(degraded.reference, {v: versions[v] for v in (DEGRADED, DEMUCS, GATING)},
                                         rate, settings=settings.reference)
    timings["reference metrics"], cpu["reference metrics"] = _since(t), _cpu_since(c)

    metrics = metrics_json(reference, proxies)
    rows = rows_of(job, metrics, rate=rate)
    info = {
        "source": {**source, "path": str(job.clip.path), "duration_s": job.clip.duration_s, "genre": job.clip.genre},
        "degradation": {"name": job.degradation, "seed": job.seed, **degraded.info},
        "sample_rate": int(rate),
        "channels": int(degraded.reference.shape[0]),
        "frames": int(degraded.reference.shape[-1]),
        "settings": {**report.settings, "reference": asdict(settings.reference)},
        "timings_s": timings,
        "cpu_s": cpu,
        "rows": rows,
    }
    t, c = time.perf_counter(), time.process_time()
    _write_folder(folder, versions, rate, metrics, info, settings.metrics)
    timings["write (audio, figures)"], cpu["write (audio, figures)"] = _since(t), _cpu_since(c)
    timings["total"], cpu["total"] = _since(start), _cpu_since(cpu_start)
    write_text_atomic(folder / CLIP_FILE, json_text(info))
    return rows


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _cpu_since(start: float) -> float:
    return round(time.process_time() - start, 4)


def proxy_metrics(versions: dict[str, np.ndarray], pipeline_metrics: dict, sample_rate: int,
                  settings: MetricSettings) -> dict[str, dict]:
    """The proxy metrics of every version, each measured against the degraded input.

    The degraded input and the restorations' come from the pipeline's report; the clean
    original's are measured by the same function (:func:`restoration.metrics.measure_versions`,
    with the degraded clip as its input): where a perfect restoration would land.
    """
    from .metrics import measure_versions

    clean = measure_versions({INPUT: versions[DEGRADED], CLEAN: versions[CLEAN]}, sample_rate, settings=settings)
    return {CLEAN: clean[CLEAN], DEGRADED: pipeline_metrics[INPUT], DEMUCS: pipeline_metrics[DEMUCS],
            GATING: pipeline_metrics[GATING]}


def proxy_changes(proxies: dict, degraded: dict) -> dict:
    """Each proxy's change from the degraded input (see :data:`PROXIES`); ``None`` where undefined."""
    out = {}
    for name, metric in _PROXY_SOURCES.items():
        if metric is None:
            out[name] = proxies.get(name)
            continue
        value, base = proxies.get(metric), degraded.get(metric)
        out[name] = None if value is None or base is None else float(value) - float(base)
    return out


def metrics_json(reference: dict[str, dict], proxies: dict[str, dict]) -> dict:
    """``metrics.json``: per version, ``full_reference`` (vs the clean original), ``improvement`` over the
    degraded input (> 0 = closer to the original), ``proxies`` and ``proxy_changes`` (vs the degraded input)."""
    out = {}
    for version in GROUND_TRUTH_VERSIONS:
        entry: dict = {}
        if version == CLEAN:
            entry["full_reference"] = None
            entry["notes"] = {"full_reference": "the clean original is the reference itself"}
        else:
            entry["full_reference"] = reference[version]
        if version in RESTORATIONS:
            entry["improvement"] = {
                m: improvement(m, estimate=reference[version].get(m), degraded=reference[DEGRADED].get(m))
                for m in REFERENCE_METRIC_INFO
            }
        entry["proxies"] = proxies[version]
        if version != DEGRADED:
            entry["proxy_changes"] = proxy_changes(proxies[version], proxies[DEGRADED])
        out[version] = entry
    return out


def rows_of(job: Job, metrics: dict, *, rate: int) -> list[dict]:
    """``clips.csv`` rows of one clip × degradation: one per version, full-reference metrics first."""
    rows = []
    for version in GROUND_TRUTH_VERSIONS:
        entry = metrics[version]
        full = entry.get("full_reference") or {}
        gains = entry.get("improvement") or {}
        changes = entry.get("proxy_changes") or {}
        row = {
            "source": job.clip.path.name,
            "clip": job.clip.clip_id,
            "genre": job.clip.genre,
            "offset_s": job.clip.offset_s,
            "seconds": job.clip.seconds,
            "degradation": job.degradation,
            "version": version,
            "sample_rate": int(rate),
        }
        for metric in REFERENCE_METRIC_INFO:
            row[metric] = full.get(metric)
        for metric in REFERENCE_METRIC_INFO:
            row[f"improvement_{metric}"] = gains.get(metric)
        for metric in PROXY_COLUMNS:
            row[metric] = entry["proxies"].get(metric)
        for name in PROXIES:
            row[name] = changes.get(name)
        row["folder"] = str(job.folder(".").as_posix())
        rows.append(row)
    return rows


def read_rows(folder) -> list[dict]:
    """The rows a finished clip folder recorded in its ``clip.json``."""
    return json.loads((Path(folder) / CLIP_FILE).read_text(encoding="utf-8"))["rows"]


def collect_rows(out_dir) -> list[dict]:
    """Every finished clip's rows, in folder order."""
    rows = []
    for path in sorted(Path(out_dir).glob(f"clips/*/*/{CLIP_FILE}")):
        rows.extend(read_rows(path.parent))
    return rows


def _write_folder(folder: Path, versions: dict, rate: int, metrics: dict, info: dict,
                  metric_settings: MetricSettings) -> None:
    """Stage every file beside ``folder`` and rename the staging folder into place (all or nothing)."""
    from . import plots
    from .audio import loudness_match, write_wav
    from .versions import FILES

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    try:
        for version, audio in versions.items():
            write_wav(staging / FILES[version], audio, rate, subtype="FLOAT")
        listening, loudness = loudness_match(versions, rate)
        for version, audio in listening.items():
            write_wav(staging / "listening" / FILES[version], audio, rate, subtype="PCM_16")
        info["loudness_matching"] = {k: asdict(v) for k, v in loudness.items()}
        plots.mel_spectrograms(versions, rate, staging)
        plots.average_spectra(versions, rate, staging / "spectrum.png", settings=metric_settings)
        (staging / "metrics.json").write_text(json_text(metrics), encoding="utf-8")
        (staging / CLIP_FILE).write_text(json_text(info), encoding="utf-8")
        if folder.exists():  # an incomplete folder from an older layout: replaced whole
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale_staging(out_dir) -> int:
    """Delete staging folders a killed run left behind (``clips/*/.<degradation>.partial-*``); returns the count."""
    count = 0
    for path in Path(out_dir).glob("clips/*/.*.partial-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            count += 1
    return count


def write_tables(out_dir) -> dict[str, Path]:
    """Collect every finished clip's rows and write ``clips.csv``, ``summary.csv``/``.png`` and
    ``proxies.csv``/``.png`` (see :mod:`restoration.groundtruth_tables`). Returns name → path."""
    return write_study_tables(collect_rows(out_dir), out_dir)


def run_study(clean, out_dir, *, seconds: float, degradations, settings: StudySettings = StudySettings(),
              show_progress: bool = True) -> dict:
    """Plan, check the models, run every clip not yet done (progress bar), then write the tables.

    Nothing is written to ``out_dir`` before the plan and the models pass their checks. Returns
    counts: ``{"jobs", "ran", "skipped", "rows"}``.
    """
    from tqdm import tqdm

    jobs = plan(clean, seconds=seconds, degradations=degradations)
    todo = [job for job in jobs if not is_done(job, out_dir)]
    if todo:
        check_models(todo)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="clip", disable=not show_progress)
    for job in todo:
        bar.set_description(f"{job.clip.clip_id[:14]} {job.degradation}")
        run_clip(job, out_dir, settings)
        bar.update(1)
    bar.close()
    tables = write_tables(out_dir)
    return {"jobs": len(jobs), "ran": len(todo), "skipped": len(jobs) - len(todo),
            "rows": tables.get("rows", 0)}


__all__ = ["Job", "StudySettings", "check_models", "collect_rows", "plan", "run_clip", "run_study", "write_tables"]

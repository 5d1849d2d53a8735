"""Writing a report to a folder: wavs, PNGs, ``metrics.json``, ``metrics.csv``, ``report.json``.

The folder is written all or nothing: files go to a hidden staging folder beside it and
are moved in only when every one is complete, so a crash never leaves half a report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import plots
from .audio import write_wav
from .csvfiles import csv_text
from .metrics import CSV_METRICS
from .report import Report

LISTENING_DIR = "listening"


def metrics_json(report: Report) -> dict:
    """``metrics.json``: version → metric → number or null, with ``notes`` for every null.

    For a generated clip every version also records ``generation_mode`` (``"exact"`` fp32 or
    ``"fast"`` int8), the mode MusicGen sampled the input in.
    """
    mode = (report.settings.get("generation") or {}).get("mode")
    return {name: ({**values, "generation_mode": mode} if mode else values) for name, values in report.metrics.items()}


def flatten_metrics(metrics: dict) -> dict:
    """One version's metrics as flat columns (per-band ΔHBER become ``hber_delta_db_4-8kHz`` …)."""
    row = {}
    for key in CSV_METRICS:
        row[key] = metrics.get(key)
    for band, value in (metrics.get("hber_bands_db") or {}).items():
        row[f"hber_delta_db_{band}"] = value
    return row


def metrics_csv_text(report: Report) -> str:
    """``metrics.csv``: a row per version, a column per metric (empty cell = undefined, see metrics.json)."""
    return csv_text({"version": name, **flatten_metrics(values)} for name, values in report.metrics.items())


def json_text(obj) -> str:
    """``obj`` as indented UTF-8 JSON text; NaN or infinity raise (the package never writes them), paths become file names."""
    def default(value):
        if isinstance(value, Path):
            return value.name
        if hasattr(value, "item"):
            return value.item()
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    text = json.dumps(obj, indent=2, ensure_ascii=False, default=default, allow_nan=False)
    return text + "\n"


def render_figures(report: Report, folder) -> dict[str, Path]:
    """Draw the Mel spectrograms, difference views and average spectrum into ``folder``."""
    folder = Path(folder)
    start = time.perf_counter()
    sr = report.sample_rate
    specs = {name: plots.mel_db(audio, sr) for name, audio in report.versions.items()}
    figures = {f"mel_{k}": v for k, v in plots.mel_spectrograms(report.versions, sr, folder, specs=specs).items()}
    figures.update(
        {f"mel_diff_{k}": v for k, v in plots.mel_differences(report.versions, sr, folder, specs=specs).items()}
    )
    from .settings import MetricSettings

    metric_settings = MetricSettings(hber_cutoff_hz=report.settings.get("metrics", {}).get("hber_cutoff_hz", 8000.0))
    figures["spectrum"] = plots.average_spectra(report.versions, sr, folder / "spectrum.png", settings=metric_settings)
    report.figures = figures
    report.timings_s["plots"] = round(time.perf_counter() - start, 4)
    return figures


def write_report(report: Report, out_dir) -> Path:
    """Write every output of ``report`` into ``out_dir`` (created; existing same-named files replaced)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        sr = report.sample_rate
        for name, audio in report.versions.items():
            write_wav(staging / f"{name}.wav", audio, sr, subtype="FLOAT")
        if report.residual is not None:
            write_wav(staging / "demucs_residual.wav", report.residual, sr, subtype="FLOAT")
        for name, audio in report.listening.items():
            write_wav(staging / LISTENING_DIR / f"{name}.wav", audio, sr, subtype="PCM_16")
        render_figures(report, staging)
        (staging / "metrics.json").write_text(json_text(metrics_json(report)), encoding="utf-8")
        (staging / "metrics.csv").write_text(metrics_csv_text(report), encoding="utf-8")
        # report.json last: its presence marks a complete folder (batch resumes on it).
        (staging / "report.json").write_text(json_text(report.summary()), encoding="utf-8")
        _move_into(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for key, path in report.figures.items():
        report.figures[key] = out_dir / path.name
    return out_dir


def _move_into(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    report_json = staging / "report.json"
    for item in sorted(staging.rglob("*"), key=lambda p: p == report_json):
        if item.is_file():
            target = out_dir / item.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)


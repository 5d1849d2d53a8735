"""The app's run cache: one folder per request, served again instead of recomputed.

A request's :meth:`~restoration.app.requests.RunRequest.key` names its folder
``data_dir()/runs/<key>/``: what :func:`restoration.outputs.write_report` writes, plus
``request.json`` and a zip of everything. The zip is written last, atomically, so a folder
with its zip is complete (:func:`is_complete`). The least recently used folders beyond
``RESTORATION_MAX_RUNS`` are pruned; folders in the listening-test pool are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .requests import RunRequest

__all__ = ["RunResult", "build_zip", "cached_result", "is_complete", "load_result", "mark_keep", "max_runs",
           "prune_runs", "runs_root", "write_run", "zip_name"]

RUNS_DIR = "runs"
STREAM_DIR = "_stream"
UNCACHED_DIR = "_uncached"
KEEP_MARKER = ".keep"
REQUEST_FILE = "request.json"
DEFAULT_MAX_RUNS = 200


def max_runs() -> int:
    """How many cached run folders are kept: env ``RESTORATION_MAX_RUNS``, default 200 (oldest go first)."""
    try:
        return max(1, int(os.environ.get("RESTORATION_MAX_RUNS", DEFAULT_MAX_RUNS)))
    except ValueError:
        return DEFAULT_MAX_RUNS


@dataclass(frozen=True)
class RunResult:
    """A complete run folder, as written by :func:`restoration.outputs.write_report` plus the zip."""

    run_dir: Path
    key: str
    cached: bool
    summary: dict
    metrics: dict
    elapsed_s: float = 0.0

    @property
    def unavailable(self) -> dict:
        return dict(self.summary.get("unavailable") or {})

    @property
    def seed(self) -> int | None:
        return (self.summary.get("source") or {}).get("seed")

    def audio(self, version: str, *, raw: bool = False) -> str | None:
        """The version's wav: the loudness-matched 16-bit copy, or with ``raw`` the float32 analysis file."""
        path = self.run_dir / f"{version}.wav" if raw else self.run_dir / "listening" / f"{version}.wav"
        return str(path) if path.is_file() else None

    def mel(self, version: str) -> str | None:
        path = self.run_dir / f"mel_{version}.png"
        return str(path) if path.is_file() else None

    def mel_diff(self, version: str) -> str | None:
        path = self.run_dir / f"mel_diff_{version}.png"
        return str(path) if path.is_file() else None

    @property
    def spectrum(self) -> str | None:
        path = self.run_dir / "spectrum.png"
        return str(path) if path.is_file() else None

    @property
    def residual(self) -> str | None:
        path = self.run_dir / "demucs_residual.wav"
        return str(path) if path.is_file() else None

    @property
    def zip_path(self) -> str:
        return str(self.run_dir / zip_name(self.key))


def zip_name(key: str) -> str:
    return f"restoration-{key[:10]}.zip"


def runs_root() -> Path:
    from ..paths import data_dir

    root = data_dir() / RUNS_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


def is_complete(run_dir: Path, key: str) -> bool:
    """A run folder is complete once its zip exists: the zip is written last, atomically."""
    return (run_dir / zip_name(key)).is_file() and (run_dir / "report.json").is_file()


def load_result(run_dir: Path, key: str, *, cached: bool, elapsed_s: float = 0.0) -> RunResult:
    summary = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return RunResult(run_dir=run_dir, key=key, cached=cached, summary=summary, metrics=metrics, elapsed_s=elapsed_s)


def cached_result(request: RunRequest) -> RunResult | None:
    """The finished run of an identical earlier request, or None."""
    key = request.key()
    run_dir = runs_root() / key
    if not is_complete(run_dir, key):
        return None
    try:
        os.utime(run_dir)  # recently used: pruned last
    except OSError:
        pass
    return load_result(run_dir, key, cached=True)


def build_zip(run_dir: Path, key: str) -> Path:
    """Zip every file of the run folder (wavs, listening copies, PNGs, metrics, report), atomically."""
    target = run_dir / zip_name(key)
    tmp = run_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for path in sorted(run_dir.rglob("*")):
                if path.is_file() and not path.name.startswith(".") and path.suffix != ".zip":
                    archive.write(path, arcname=f"{target.stem}/{path.relative_to(run_dir).as_posix()}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def mark_keep(run_dir) -> None:
    """Protect a run folder from pruning (it was added to the listening-test pool)."""
    (Path(run_dir) / KEEP_MARKER).touch()


def prune_runs(root: Path | None = None, *, keep: int | None = None) -> int:
    """Delete the least recently used complete run folders beyond ``keep``; marked ones stay. Returns the count."""
    root = root or runs_root()
    keep = max_runs() if keep is None else keep
    if not root.is_dir():
        return 0
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    folders = [p for p in folders if not (p / KEEP_MARKER).exists()]
    if len(folders) <= keep:
        return 0
    folders.sort(key=lambda p: p.stat().st_mtime)
    removed = 0
    for folder in folders[: len(folders) - keep]:
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def write_run(report, request: RunRequest, run_dir: Path, key: str) -> None:
    """Write ``report`` and the request it answers into ``run_dir``, then the zip that marks it complete."""
    from ..outputs import write_report

    write_report(report, run_dir)
    (run_dir / REQUEST_FILE).write_text(
        json.dumps({"key": key, **request.identity()}, indent=2, default=str, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    build_zip(run_dir, key)

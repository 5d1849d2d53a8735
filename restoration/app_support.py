"""What the Gradio app needs around the pipeline, kept out of ``app.py``.

``app.py`` lays out widgets and translates between them and this module:

- :func:`prompt_request` / :func:`restore_request` — widget values → a validated
  :class:`RunRequest` (raises :class:`~restoration.errors.BadInputError` with the message
  the user sees);
- :func:`stream_run` — runs a request in a worker thread and yields :class:`RunEvent`\\ s:
  progress, the audio generated so far, and finally a :class:`RunResult` (or the error);
- the cache: a request's :meth:`RunRequest.key` names its run folder
  ``data_dir()/runs/<key>/``; a complete folder is served again without recomputing;
- :func:`metrics_table`, :func:`notes_markdown`, :func:`model_status_markdown` — tables
  and text for the page;
- :func:`stop_event_for` — the per-session stop events of the "Stop" button;
- :func:`read_prompt_examples`, :func:`example_clips` — the examples of both tabs.

Only one run computes at a time (:data:`RUN_LOCK`): torch already uses every core, and two
models in flight would double the memory. A cached request never waits for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import queue
import random
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import BadInputError, RestorationError
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings, validate_prompt

logger = logging.getLogger(__name__)

#: Bump when the layout of a run folder or the meaning of a setting changes: old runs stop matching.
CACHE_VERSION = 1
RUNS_DIR = "runs"
STREAM_DIR = "_stream"
UNCACHED_DIR = "_uncached"
KEEP_MARKER = ".keep"
REQUEST_FILE = "request.json"
VERSIONS = ("input", "demucs", "spectral_gating")
STEMS = ("drums", "bass", "other", "vocals")
MAX_SEED = 2**31 - 1
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_RUNS = 200

#: Serializes model work across every user; cached requests never take it.
RUN_LOCK = threading.Lock()
_STOP_EVENTS: dict[str, threading.Event] = {}
_STOP_GUARD = threading.Lock()


# --------------------------------------------------------------------------- limits


def max_upload_mb() -> float:
    """The largest accepted upload in MB: env ``RESTORATION_MAX_UPLOAD_MB``, default 50."""
    raw = os.environ.get("RESTORATION_MAX_UPLOAD_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_UPLOAD_MB
    try:
        value = float(raw)
    except ValueError:
        raise BadInputError(f"RESTORATION_MAX_UPLOAD_MB must be a number of MB, got {raw!r}") from None
    return value


def max_runs() -> int:
    """How many cached run folders are kept: env ``RESTORATION_MAX_RUNS``, default 200 (oldest go first)."""
    try:
        return max(1, int(os.environ.get("RESTORATION_MAX_RUNS", DEFAULT_MAX_RUNS)))
    except ValueError:
        return DEFAULT_MAX_RUNS


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RunRequest:
    """One comparison to run: a prompt to generate from, or an uploaded file to restore.

    Everything that changes the result is in :meth:`identity`, and so in :meth:`key`:
    the prompt or the file's SHA-256, every setting, and the models that will be used.
    """

    kind: str  # "prompt" or "file"
    demucs: DemucsSettings
    gating: GatingSettings
    metrics: MetricSettings
    prompt: str | None = None
    generation: GenerationSettings | None = None
    audio_path: str | None = None
    audio_sha256: str | None = None
    audio_name: str | None = None

    def identity(self) -> dict:
        """The JSON-ready description the cache key is the hash of."""
        from . import generation as gen
        from . import separation

        ident: dict[str, Any] = {
            "cache_version": CACHE_VERSION,
            "kind": self.kind,
            "demucs": asdict(self.demucs),
            "demucs_model": separation.model_name(),
            "demucs_repo": str(separation.model_repo() or ""),
            "gating": asdict(self.gating),
            "metrics": asdict(self.metrics),
        }
        if self.kind == "prompt":
            ident["prompt"] = self.prompt
            ident["generation"] = asdict(self.generation)
            ident["musicgen_model"] = gen.current_model_id()
        else:
            ident["audio_sha256"] = self.audio_sha256
        return ident

    def key(self) -> str:
        """A 20-hex-digit hash of :meth:`identity`: the name of the run folder."""
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _number(value, name: str, *, kind=float):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInputError(f"{name} is missing")
    try:
        number = kind(float(value))
    except (TypeError, ValueError):
        raise BadInputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise BadInputError(f"{name} must be a finite number, got {value!r}")
    return number


def resolve_seed(seed) -> int:
    """The seed to use: ``seed`` itself when ≥ 0; a fresh random one for ``None`` or a negative value."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return random.SystemRandom().randrange(0, MAX_SEED)
    value = _number(seed, "seed", kind=int)
    if value < 0:
        return random.SystemRandom().randrange(0, MAX_SEED)
    if value > MAX_SEED:
        raise BadInputError(f"seed must be at most {MAX_SEED}, got {value}")
    return value


def restoration_settings(
    *, demucs_shifts=0, gains=None, gating="nonstationary", gating_strength=1.0, hber_cutoff_hz=8000.0
) -> tuple[DemucsSettings, GatingSettings, MetricSettings]:
    """The Demucs, gating and metric settings from the Advanced widgets (``gains``: stem → linear gain)."""
    stem_gains = []
    for stem, gain in (gains or {}).items():
        gain = _number(gain, f"gain of {stem}")
        if gain != 1.0:  # unit gains are the default: leaving them out keeps the cache key canonical
            stem_gains.append((stem, gain))
    if gating not in ("nonstationary", "stationary"):
        raise BadInputError(f"gating must be 'nonstationary' or 'stationary', got {gating!r}")
    demucs = DemucsSettings(shifts=_number(demucs_shifts, "Demucs shifts", kind=int),
                            stem_gains=tuple(sorted(stem_gains)))
    gate = GatingSettings(stationary=gating == "stationary", prop_decrease=_number(gating_strength, "gating strength"))
    metric = MetricSettings(hber_cutoff_hz=_number(hber_cutoff_hz, "HBER cutoff"))
    return demucs, gate, metric


def prompt_request(
    prompt, *, duration, seed, guidance=3.0, temperature=1.0, top_k=250, mode="exact", **restoration
) -> RunRequest:
    """Validate the "Generate & compare" widgets; ``seed`` < 0 or empty draws a random seed."""
    from . import generation as gen

    text = validate_prompt(prompt)
    settings = GenerationSettings(
        duration_s=_number(duration, "duration"),
        seed=resolve_seed(seed),
        guidance_scale=_number(guidance, "guidance"),
        temperature=_number(temperature, "temperature"),
        top_k=_number(top_k, "top-k", kind=int),
        mode=gen.resolve_mode(mode or None),
    )
    demucs, gating, metrics = restoration_settings(**restoration)
    return RunRequest(kind="prompt", prompt=text, generation=settings, demucs=demucs, gating=gating, metrics=metrics)


def restore_request(audio_path, **restoration) -> RunRequest:
    """Validate an uploaded or recorded file (present, not empty, under the size limit) and the widgets."""
    if audio_path is None or (isinstance(audio_path, str) and not audio_path.strip()):
        raise BadInputError("no audio: upload a file (wav, flac, ogg or mp3) or record one")
    path = Path(audio_path)
    if not path.is_file():
        raise BadInputError("the uploaded audio did not reach the server; please upload it again")
    size_mb = path.stat().st_size / 1e6
    limit = max_upload_mb()
    if size_mb > limit:
        raise BadInputError(
            f"the file is too large: {size_mb:.1f} MB, at most {limit:g} MB are accepted (RESTORATION_MAX_UPLOAD_MB)"
        )
    if size_mb == 0:
        raise BadInputError("the file is empty: it holds no audio")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    demucs, gating, metrics = restoration_settings(**restoration)
    return RunRequest(
        kind="file", audio_path=str(path), audio_sha256=digest.hexdigest(), audio_name=path.name,
        demucs=demucs, gating=gating, metrics=metrics,
    )


# --------------------------------------------------------------------------- results on disk


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

    def has(self, version: str) -> bool:
        return (self.run_dir / f"{version}.wav").is_file()

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
    from .paths import data_dir

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


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunEvent:
    """One message from a running request: ``progress``, ``chunk``, ``done`` or ``error``."""

    kind: str
    stage: str = ""
    fraction: float | None = None
    detail: str = ""
    path: str | None = None
    result: RunResult | None = None
    error: BaseException | None = None


# Share of the whole run each stage takes, for one progress bar (stage, detail-of-loading).
_PROMPT_WEIGHTS = (
    ("waiting", 0.0), ("loading models:MusicGen", 0.05), ("generating", 0.55), ("loading models:Demucs", 0.03),
    ("demucs", 0.17), ("gating", 0.05), ("metrics", 0.05), ("loudness matching", 0.02), ("plots", 0.08),
)
_FILE_WEIGHTS = (
    ("waiting", 0.0), ("loading models:Demucs", 0.05), ("demucs", 0.55), ("gating", 0.1), ("metrics", 0.1),
    ("loudness matching", 0.05), ("plots", 0.15),
)
STAGE_LABELS = {
    "waiting": "Waiting for the run ahead of yours",
    "loading models": "Loading models",
    "generating": "Generating with MusicGen",
    "demucs": "Restoring with Demucs",
    "gating": "Spectral gating",
    "metrics": "Measuring",
    "loudness matching": "Loudness matching",
    "plots": "Drawing spectrograms and writing files",
}


def overall_fraction(kind: str, stage: str, fraction: float | None, detail: str = "") -> float:
    """Map a pipeline stage and its own fraction to the fraction of the whole run (0–1)."""
    weights = _PROMPT_WEIGHTS if kind == "prompt" else _FILE_WEIGHTS
    name = f"{stage}:{detail}" if stage == "loading models" else stage
    total = sum(w for _, w in weights)
    done = 0.0
    for step, weight in weights:
        if step == name:
            return min(1.0, (done + weight * float(fraction or 0.0)) / total)
        done += weight
    return min(1.0, done / total)


def stage_text(stage: str, detail: str = "") -> str:
    label = STAGE_LABELS.get(stage, stage.capitalize())
    return f"{label}: {detail}" if detail else label


def stop_event_for(session: str | None) -> threading.Event:
    """A fresh stop event for ``session``'s new run (replacing, and setting, any earlier one)."""
    event = threading.Event()
    with _STOP_GUARD:
        old = _STOP_EVENTS.get(session or "")
        if old is not None:
            old.set()  # a session runs one thing at a time: a new click supersedes the old run
        _STOP_EVENTS[session or ""] = event
    return event


def running_stop_event(session: str | None) -> threading.Event | None:
    """The stop event of ``session``'s current run, or None."""
    with _STOP_GUARD:
        return _STOP_EVENTS.get(session or "")


def request_stop(session: str | None) -> bool:
    """Set the stop event of ``session``'s running request; False when nothing was running."""
    with _STOP_GUARD:
        event = _STOP_EVENTS.get(session or "")
    if event is None or event.is_set():
        return False
    event.set()
    return True


def release_stop_event(session: str | None, event: threading.Event) -> None:
    with _STOP_GUARD:
        if _STOP_EVENTS.get(session or "") is event:
            del _STOP_EVENTS[session or ""]


def is_cancellation(exc: BaseException, stop_event: threading.Event | None) -> bool:
    """True for the package's "stopped on request" errors (exit status 130) or once the stop event is set."""
    return (stop_event is not None and stop_event.is_set()) or getattr(exc, "exit_code", None) == 130


def stream_run(
    request: RunRequest, *, stop_event: threading.Event | None = None, poll_s: float = 0.1
) -> Iterator[RunEvent]:
    """Run ``request`` (or serve it from the cache) and yield its events; the last is ``done`` or ``error``.

    The pipeline runs in a worker thread, so the caller (a Gradio generator) can show the
    audio generated so far while MusicGen is still sampling. Chunk events carry the path of
    a wav that holds everything generated up to then; only the newest waiting one is yielded.
    """
    start = time.perf_counter()
    hit = cached_result(request)
    if hit is not None:
        yield RunEvent("done", result=replace(hit, elapsed_s=time.perf_counter() - start))
        return
    events: queue.Queue = queue.Queue()
    worker = threading.Thread(
        target=_work, args=(request, events, stop_event, start), name="restoration-run", daemon=True
    )
    worker.start()
    while True:
        try:
            event = events.get(timeout=poll_s)
        except queue.Empty:
            continue
        if event.kind == "chunk":  # skip stale chunks: only the newest audio is worth showing
            while True:
                try:
                    newer = events.get_nowait()
                except queue.Empty:
                    break
                if newer.kind != "chunk":
                    yield event
                    event = newer
                    break
                event = newer
        yield event
        if event.kind in ("done", "error"):
            return


def _work(request: RunRequest, events: queue.Queue, stop_event: threading.Event | None, start: float) -> None:
    stream_dir = None
    try:
        key = request.key()
        root = runs_root()
        run_dir = root / key
        if not RUN_LOCK.acquire(blocking=False):
            events.put(RunEvent("progress", "waiting", None, "another run is in progress"))
            while not RUN_LOCK.acquire(timeout=0.2):
                if stop_event is not None and stop_event.is_set():
                    raise _cancelled()
        try:
            if is_complete(run_dir, key):  # an identical request finished while this one waited
                events.put(RunEvent("done", result=load_result(run_dir, key, cached=True,
                                                               elapsed_s=time.perf_counter() - start)))
                return
            stream_dir = root / STREAM_DIR / uuid.uuid4().hex
            logger.info("run %s started (%s)", key[:10], request.kind)
            report = _compute(request, events, stop_event, stream_dir)
            events.put(RunEvent("progress", "plots", 0.0))
            if report.unavailable:
                # A degraded run (a model missing) is not cached: it would outlive the fix.
                run_dir = root / UNCACHED_DIR / uuid.uuid4().hex[:12]
            _write(report, request, run_dir, key)
            if report.unavailable:
                prune_runs(root / UNCACHED_DIR, keep=20)
            events.put(RunEvent("progress", "plots", 1.0))
        finally:
            RUN_LOCK.release()
        prune_runs(root)
        logger.info("run %s finished in %.1f s", key[:10], time.perf_counter() - start)
        events.put(RunEvent("done", result=load_result(run_dir, key, cached=False,
                                                       elapsed_s=time.perf_counter() - start)))
    except BaseException as exc:  # the consumer decides how to show it; nothing escapes the thread
        if is_cancellation(exc, stop_event):
            logger.info("run stopped on request after %.1f s", time.perf_counter() - start)
        events.put(RunEvent("error", error=exc))
    finally:
        if stream_dir is not None:
            shutil.rmtree(stream_dir, ignore_errors=True)


def _cancelled() -> RestorationError:
    from .errors import CancelledError

    return CancelledError("stopped by the user")


def _compute(request: RunRequest, events: queue.Queue, stop_event, stream_dir: Path):
    from .pipeline import run

    def progress(stage: str, fraction, detail: str = "") -> None:
        events.put(RunEvent("progress", stage, fraction, detail))

    def on_chunk(audio_so_far: np.ndarray, sample_rate: int) -> None:
        from .audio import write_wav

        path = write_wav(stream_dir / "input.wav", audio_so_far, sample_rate, subtype="FLOAT")
        events.put(RunEvent("chunk", path=str(path), detail=f"{audio_so_far.shape[-1] / sample_rate:.1f} s"))

    common = dict(demucs=request.demucs, gating=request.gating, metrics=request.metrics, require_demucs=False,
                  progress=progress, stop_event=stop_event)
    if request.kind == "prompt":
        return run(prompt=request.prompt, generation=request.generation, on_chunk=on_chunk, **common)
    return run(file=request.audio_path, file_name=request.audio_name or "the audio", **common)


def _write(report, request: RunRequest, run_dir: Path, key: str) -> None:
    from .outputs import write_report

    write_report(report, run_dir)
    (run_dir / REQUEST_FILE).write_text(
        json.dumps({"key": key, **request.identity()}, indent=2, default=str, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    build_zip(run_dir, key)


def _display_model(model_id: str) -> str:
    from .pipeline import public_model_name

    return public_model_name(model_id)


# --------------------------------------------------------------------------- tables and text


def _fmt(value, unit: str) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return str(value)
    if unit == "count":
        return f"{value:g}" if isinstance(value, float) else str(int(value))
    value = float(value)
    text = f"{value:.0f}" if unit == "Hz" else f"{value:.3f}" if unit == "0–1" else f"{value:.1f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0"


def version_title(version: str, kind: str) -> str:
    if version == "input":
        return "Input (MusicGen)" if kind == "prompt" else "Input"
    return {"demucs": "Demucs", "spectral_gating": "Spectral gating"}[version]


def metrics_table(result: RunResult) -> dict:
    """The metrics as a table: a row per metric (label, unit, a column per version, what better means).

    Per-band ΔHBER rows follow ΔHBER, and a last row says how each version was made
    (seed and model of the input; why a version is missing). Cells are text; ``undefined``
    marks a value that cannot be computed (its reason is in :func:`notes_markdown`).
    Returns ``{"headers": [...], "data": [[...], ...]}`` for ``gr.Dataframe``.
    """
    from .metrics import METRIC_INFO

    kind = (result.summary.get("source") or {}).get("kind", "prompt")
    headers = ["Metric", "Unit", *(version_title(v, kind) for v in VERSIONS), "Better means"]
    unavailable = result.unavailable

    def cells(key: str, unit: str, band: str | None = None) -> list[str]:
        row = []
        for version in VERSIONS:
            if version in unavailable or version not in result.metrics:
                row.append("not run")
                continue
            values = result.metrics[version]
            value = (values.get("hber_bands_db") or {}).get(band) if band else values.get(key)
            if version == "input" and key in ("hber_delta_db", "residual_db"):
                row.append("reference")
            else:
                row.append(_fmt(value, unit))
        return row

    bands = list((result.metrics.get("input") or {}).get("hber_bands_db") or {})
    data = []
    for key, (label, unit, better) in METRIC_INFO.items():
        data.append([label, unit, *cells(key, unit), better])
        if key == "hber_delta_db":
            for band in bands:
                data.append([f"ΔHBER {band.replace('-', '–').replace('kHz', ' kHz')}", "dB",
                             *cells(key, "dB", band), "> 0 = more energy in this band than the input"])
    data.append(["How it was made", "", *(provenance(result, v) for v in VERSIONS), "settings of this run"])
    return {"headers": headers, "data": data}


def metrics_html(result: RunResult) -> str:
    """:func:`metrics_table` as an HTML table for the page (cells carry ``data-label`` for narrow screens)."""
    from html import escape

    table = metrics_table(result)
    headers, rows = table["headers"], table["data"]
    head = "".join(f"<th scope='col'>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = [f"<th scope='row'>{escape(str(row[0]))}</th>"]
        for header, cell in zip(headers[1:], row[1:]):
            text = str(cell)
            css = " class='undefined'" if text in ("undefined", "not run", "reference") else ""
            cells.append(f"<td data-label='{escape(header)}'{css}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<div class='metrics-wrap'><table class='metrics'><caption>Metrics: every version measured at the "
        "input's sample rate, in one band</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def provenance(result: RunResult, version: str) -> str:
    """One line on how ``version`` was made (or why it is missing)."""
    settings = result.summary.get("settings") or {}
    source = result.summary.get("source") or {}
    if version in result.unavailable:
        return f"not run: {result.unavailable[version]}"
    if version == "input":
        if source.get("kind") == "prompt":
            gen = settings.get("generation") or {}
            return (f"MusicGen {source.get('model')}, seed {source.get('seed')}, {gen.get('mode', 'exact')} mode, "
                    f"guidance {gen.get('guidance_scale')}, temperature {gen.get('temperature')}, "
                    f"top-k {gen.get('top_k')}")
        return f"your file {source.get('file', '')}".strip()
    if version == "demucs":
        dm = settings.get("demucs") or {}
        gains = ", ".join(f"{stem}×{gain:g}" for stem, gain in dm.get("stem_gains") or [])
        return f"{dm.get('model')}, shifts {dm.get('shifts')}" + (f", gains {gains}" if gains else "")
    gate = settings.get("gating") or {}
    mode = "stationary" if gate.get("stationary") else "non-stationary"
    return f"noisereduce, {mode}, strength {gate.get('prop_decrease')}, threshold {gate.get('threshold_std_used')} σ"


def notes_markdown(result: RunResult) -> str:
    """Why some cells are undefined (one line per metric and reason), plus a line on loudness matching."""
    from .metrics import METRIC_INFO

    kind = (result.summary.get("source") or {}).get("kind", "prompt")
    reasons: dict[tuple[str, str], list[str]] = {}
    for version in VERSIONS:
        for key, note in ((result.metrics.get(version) or {}).get("notes") or {}).items():
            if key not in METRIC_INFO or (version == "input" and key in ("hber_delta_db", "residual_db")):
                continue
            reasons.setdefault((key, note), []).append(version_title(version, kind))
    lines = [f"- **{METRIC_INFO[key][0]}** is undefined for {', '.join(names)}: {note}"
             for (key, note), names in reasons.items()]
    loud = result.summary.get("loudness_matching") or {}
    if loud:
        target = next(iter(loud.values())).get("target_lufs")
        gains = ", ".join(f"{version_title(v, kind)} {loud[v]['gain_db']:+.1f} dB" for v in VERSIONS if v in loud)
        lines.append(f"- The players play copies matched to {target:.1f} LUFS ({gains}); "
                     "untick *loudness-matched* for the raw levels.")
    return "\n".join(lines)


def warm_up(*, mode: str | None = None, duration_s: float = 5.0) -> dict:
    """Pay every first-request cost before anyone clicks: what the app runs in a thread after start.

    Loads MusicGen in ``mode`` (default: what :func:`restoration.generation.resolve_mode`
    gives, ``"exact"`` unless ``MUSICGEN_QUANTIZE=int8``) and Demucs, and warms librosa, numba
    and the figures for a ``duration_s`` clip (:func:`restoration.pipeline.warm_up`). Nothing
    here raises. Returns seconds per step.
    """
    from .warmup import warm_up as warm_pipeline

    return warm_pipeline(duration_s=duration_s, musicgen=True, mode=mode)


def model_status() -> dict:
    """Each model's availability, checked on disk without loading or downloading anything."""
    from . import generation as gen
    from . import separation

    out = {}
    for role, fn in (("musicgen", gen.model_status), ("demucs", separation.model_status)):
        try:
            out[role] = fn()
        except Exception as exc:  # a status check must never take the page down
            logger.exception("model status of %s failed", role)
            out[role] = {"available": False, "detail": f"status check failed: {type(exc).__name__}"}
    return out


def model_status_markdown(status: dict) -> str:
    """One line per model: available or not, and the fix when not."""
    mg, dm = status.get("musicgen") or {}, status.get("demucs") or {}
    lines = []
    name = _display_model(str(mg.get("model_id", "MusicGen")))
    if mg.get("available"):
        lines.append(f"**MusicGen** `{name}`: available ({mg.get('source')}, {mg.get('device', 'cpu')}).")
    else:
        lines.append(f"**MusicGen** `{name}`: **not available**, so *Generate* cannot work. "
                     f"Fix: {_fix_sentence(mg.get('fix') or mg.get('detail', ''))}")
    dname = dm.get("model", "Demucs")
    if dm.get("available"):
        lines.append(f"**Demucs** `{dname}`: available ({dm.get('source')}).")
    else:
        lines.append(f"**Demucs** `{dname}`: **not available**, so only spectral gating runs. "
                     f"{_fix_sentence(dm.get('detail') or '')} Fix: {_fix_sentence(dm.get('fix') or '')}")
    return "  \n".join(lines)


def _fix_sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        return ""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --------------------------------------------------------------------------- examples


def read_prompt_examples(path) -> list[tuple[str, str]]:
    """``(genre, prompt)`` pairs from a ``genre | prompt`` file; ``#`` lines are comments."""
    pairs = []
    path = Path(path)
    if not path.is_file():
        return pairs
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        genre, sep, prompt = line.partition("|")
        pairs.append((genre.strip(), prompt.strip()) if sep else ("unlabelled", line))
    return [(g, p) for g, p in pairs if p]


def example_clips(folder, script) -> list[tuple[str, str]]:
    """``(path, label)`` of the example clips, made by ``scripts/make_example_clips.py`` if missing."""
    try:
        spec = importlib.util.spec_from_file_location("make_example_clips", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return [(str(path), label) for path, label in module.make_clips(folder)]
    except Exception:  # examples are a convenience: the app must start without them
        logger.exception("could not make the example clips in %s", folder)
        return []

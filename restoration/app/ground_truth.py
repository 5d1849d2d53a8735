"""The app's "Ground truth" tab without Gradio: one clean clip, one degradation, four versions compared.

:func:`run_comparison` takes a built-in piece or an uploaded file, cuts ``seconds`` from its
middle, and runs it through :func:`restoration.groundtruth.run_clip`, the same unit of work as
``python -m restoration groundtruth``. The folder lands in ``<data dir>/groundtruth/<key>/``;
the key hashes the clean audio, the degradation, the length and the models, so an identical
request is answered from disk. :func:`metrics_rows` and :func:`verdict` turn the folder's
``metrics.json`` into the tab's table and its one-line verdict.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError
from ..hashing import text_sha256
from ..reference_metrics import REFERENCE_METRIC_INFO
from ..versions import CLEAN, DEGRADED, DEMUCS, FILES, GATING, GROUND_TRUTH_VERSIONS, TITLES

__all__ = ["DEGRADATION_CHOICES", "GroundTruthResult", "builtin_choices", "metrics_rows", "run_comparison",
           "verdict"]

#: (label, degradation name) offered by the tab.
DEGRADATION_CHOICES = (
    ("MusicGen's own codec (EnCodec, 2.2 kbps)", "musicgen-codec"),
    ("MP3 at 32 kbps", "mp3-32"),
    ("MP3 at 64 kbps", "mp3-64"),
    ("White hiss 30 dB below the music", "noise-30"),
    ("Low-pass at 8 kHz", "lowpass-8"),
)
#: Proxy rows of the table after the full-reference ones: (metrics key, label, unit, better means).
PROXY_ROWS = (
    ("spectral_flatness", "Mean spectral flatness", "0–1", "lower = more tonal, less noise-like"),
    ("hber_delta_db", "ΔHBER vs the degraded input (≥ 8 kHz)", "dB", "> 0 = more high-band energy"),
    ("bandwidth_hz", "Bandwidth (99 % roll-off)", "Hz", "higher = wider band kept"),
    ("noise_floor_p10_dbfs", "Noise floor p10 (loudness-matched)", "dBFS", "lower = quieter quiet parts"),
    ("lufs", "Integrated loudness (raw)", "LUFS", "context only; the players are loudness-matched"),
)
DEFAULT_SECONDS = 8.0
MAX_SECONDS = 15.0


def builtin_choices() -> list[tuple[str, str]]:
    """(label, piece name) of the built-in clean set."""
    from ..cleanset import PIECES

    return [(f"{piece.genre.capitalize()} (built-in)", piece.name) for piece in PIECES]


@dataclass(frozen=True)
class GroundTruthResult:
    """A finished comparison folder and what the tab shows from it."""

    folder: Path
    metrics: dict
    info: dict
    cached: bool

    def listening(self, version: str) -> Path:
        """The loudness-matched 16-bit copy of ``version`` (what the players play)."""
        return self.folder / "listening" / FILES[version]

    def mel(self, version: str) -> Path:
        return self.folder / f"mel_{version}.png"


def _file_digest(path: Path) -> str:
    from ..hashing import file_sha256

    return file_sha256(path)


def _request_key(digest: str, degradation: str, seconds: float) -> str:
    models = [os.environ.get(k, "") for k in ("MUSICGEN_MODEL", "MUSICGEN_QUANTIZE", "DEMUCS_MODEL", "DEMUCS_REPO")]
    text = json.dumps({"audio": digest, "degradation": degradation, "seconds": round(float(seconds), 3),
                       "models": models, "layout": 1})
    return text_sha256(text)[:20]


def clean_clip(*, upload=None, builtin: str | None = None, seconds: float = DEFAULT_SECONDS):
    """The :class:`~restoration.cleanset.CleanClip` of an upload (preferred when given) or a built-in piece.

    ``seconds`` (1–15) is cut from the middle; an upload shorter than that is used whole (at
    least 1 s). Raises :class:`BadInputError` for an unreadable, over-large or too-short file, or
    an unknown piece.
    """
    import soundfile as sf

    from .. import cleanset
    from .requests import max_upload_mb

    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise BadInputError(f"the length must be a number of seconds, got {seconds!r}") from None
    if not 1.0 <= seconds <= MAX_SECONDS:
        raise BadInputError(f"the length must be between 1 and {MAX_SECONDS:g} s, got {seconds:g}")
    if upload:
        path = Path(upload)
        if not path.is_file():
            raise BadInputError("the uploaded file is missing; upload it again")
        if path.stat().st_size > max_upload_mb() * 1e6:
            raise BadInputError(f"the file is larger than {max_upload_mb():g} MB")
        try:
            info = sf.info(str(path))
        except Exception:
            raise BadInputError(f"cannot read {path.name} as audio (wav, flac, ogg or mp3 expected)") from None
        duration = info.frames / info.samplerate if info.samplerate else 0.0
        if duration < 1.0:
            raise BadInputError(f"{path.name} lasts {duration:.2f} s; the ground-truth comparison needs at least 1 s")
        seconds = min(seconds, duration)
        return cleanset.CleanClip("upload", path, cleanset.centre_offset_s(duration, seconds), seconds, duration)
    names = [name for _, name in builtin_choices()]
    if builtin not in names:
        raise BadInputError(f"pick a built-in piece ({', '.join(names)}) or upload a clean recording")
    path = cleanset.ensure_builtin(names=[builtin])[0]
    duration = sf.info(str(path)).duration
    genre = next(p.genre for p in cleanset.PIECES if p.name == builtin)
    return cleanset.CleanClip(builtin, path, cleanset.centre_offset_s(duration, seconds), seconds, duration, genre)


def run_comparison(*, upload=None, builtin: str | None = None, degradation: str = "musicgen-codec",
                   seconds: float = DEFAULT_SECONDS, progress=None, lock=None) -> GroundTruthResult:
    """Degrade the clean clip, restore it both ways, measure all four versions; cached on disk.

    ``lock`` (a ``threading.Lock``) is taken around the model work, so one comparison computes at
    a time; a cached answer does not wait for it.
    """
    import contextlib

    from .. import groundtruth
    from ..degradations import check_name
    from ..paths import data_dir

    check_name(degradation)
    clip = clean_clip(upload=upload, builtin=builtin, seconds=seconds)
    key = _request_key(_file_digest(clip.path) + f"@{clip.offset_s}", degradation, clip.seconds)
    out_dir = data_dir() / "groundtruth" / key
    job = groundtruth.Job(clip, degradation, seed=0)
    cached = groundtruth.is_done(job, out_dir)
    if not cached:
        with lock if lock is not None else contextlib.nullcontext():
            groundtruth.run_clip(job, out_dir, groundtruth.StudySettings(), progress=progress)
    folder = job.folder(out_dir)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    info = json.loads((folder / groundtruth.CLIP_FILE).read_text(encoding="utf-8"))
    return GroundTruthResult(folder, metrics, info, cached)


def _fmt(value, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "Hz":
        return f"{value / 1000:.2f} kHz"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def metrics_rows(result: GroundTruthResult) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): the full-reference metrics first (the clean column is the reference), then proxies."""
    headers = ["Metric", "Unit", *(TITLES[v] for v in GROUND_TRUTH_VERSIONS), "Better means"]
    rows = []
    for key, (label, unit, better, _) in REFERENCE_METRIC_INFO.items():
        cells = ["reference"]
        for version in (DEGRADED, DEMUCS, GATING):
            cells.append(_fmt((result.metrics[version]["full_reference"] or {}).get(key), unit))
        rows.append([f"{label} (vs clean)", unit, *cells, better])
    for key, label, unit, better in PROXY_ROWS:
        cells = [_fmt(result.metrics[v]["proxies"].get(key), unit) for v in GROUND_TRUTH_VERSIONS]
        rows.append([f"{label} (proxy)", unit, *cells, better])
    return headers, rows


def verdict(result: GroundTruthResult) -> str:
    """One line: which version came closest to the clean original, by which metric, by how much.

    The headline metric is Zimtohrli (perceptual) when it was computed, else SI-SDR; the others'
    winners follow in brief.
    """
    candidates = (DEGRADED, DEMUCS, GATING)

    def winner(metric: str):
        values = {v: (result.metrics[v]["full_reference"] or {}).get(metric) for v in candidates}
        if any(value is None for value in values.values()):
            return None, values
        higher = REFERENCE_METRIC_INFO[metric][3]
        best = max(values, key=lambda v: values[v] if higher else -values[v])
        return best, values

    headline = "zimtohrli_mos" if winner("zimtohrli_mos")[0] is not None else "si_sdr_db"
    best, values = winner(headline)
    label, unit, _, higher = REFERENCE_METRIC_INFO[headline]
    unit_text = "" if unit == "1–5" else f" {unit}"
    if best == DEGRADED:
        lead = (f"Neither restoration got closer to the clean original by {label}: the degraded input scores "
                f"{values[DEGRADED]:.2f}{unit_text}, Demucs {values[DEMUCS]:.2f}, spectral gating {values[GATING]:.2f}.")
    else:
        gain = values[best] - values[DEGRADED] if higher else values[DEGRADED] - values[best]
        lead = (f"Closest to the clean original by {label}: {TITLES[best]}, {values[best]:.2f}{unit_text} against "
                f"{values[DEGRADED]:.2f} for the degraded input ({gain:+.2f}{unit_text}).")
    others = []
    for metric in REFERENCE_METRIC_INFO:
        if metric == headline:
            continue
        other, _ = winner(metric)
        if other is not None:
            others.append(f"{REFERENCE_METRIC_INFO[metric][0]}: {TITLES[other]}")
    return lead + (f" Closest by the other metrics — {'; '.join(others)}." if others else "")

"""Stimulus preparation: clip folders → blind, loudness-matched 16-bit WAVs under random names.

A *clip folder* holds ``input.wav``, ``demucs.wav``, ``spectral_gating.wav`` and ``report.json``
(what ``restoration run``/``batch`` and the app write). Each clip becomes four versions:

- ``original``: the MusicGen output (``input.wav``),
- ``demucs`` and ``spectral_gating``: the two restorations,
- ``anchor``: the original low-passed at 3.5 kHz (a hidden low anchor for screening).

Everything that could give a version away is unified (docs/LISTENING.md, "Stimulus
preparation"): one sample rate (the input's), one layout (mono), one length (the shortest
version's, cut to one fixed 10 s excerpt when a clip is longer than 12 s), identical 15 ms
raised-cosine fades, and one integrated loudness (ITU-R BS.1770, −23 LUFS) under a shared
−1 dBFS sample-peak ceiling. When any version of any clip would exceed the ceiling, the target is
lowered for *every* stimulus of the test, so levels stay equal within and across trials.
Files are written as 16-bit PCM under uuid names, then read back: the loudness of the file
actually served is checked to be within 0.1 LU of the target, and its SHA-256 is recorded.
Nothing about a file tells its version: every version of a clip has the same length, so the same
size and the same WAV header; the versions are written in a random order, and every file of a
test is then given one common modification time.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import (apply_fades, convert_channels, integrated_lufs, lowpass, peak_dbfs, read_audio, resample,
                     shared_loudness_target, write_wav)
from ..errors import BadInputError
from ..hashing import file_sha256 as sha256_file
from ..versions import ANCHOR, CONDITION_VERSION, CONDITIONS, FILES, ORIGINAL, REAL_CONDITIONS

#: The file of a clip folder each real condition is read from.
SOURCE_FILES = {condition: FILES[version] for condition, version in CONDITION_VERSION.items()}
#: The extra stimulus of the practice clip: the volume check's sound.
CALIBRATION = "calibration"


@dataclass(frozen=True)
class StimulusSettings:
    """How stimuli are made; stored with each test."""

    target_lufs: float = -23.0
    peak_ceiling_dbfs: float = -1.0
    tolerance_lu: float = 0.1
    anchor_cutoff_hz: float = 3500.0
    fade_s: float = 0.015
    max_clip_s: float = 12.0
    excerpt_s: float = 10.0

    def __post_init__(self):
        if not 0.010 <= self.fade_s <= 0.020:
            raise BadInputError(f"fade_s must be 10–20 ms, got {self.fade_s * 1000:g} ms")
        if not 10.0 <= self.excerpt_s <= self.max_clip_s <= 12.0:
            raise BadInputError("the excerpt must last 10–12 s and max_clip_s at most 12 s")
        if self.peak_ceiling_dbfs > 0:
            raise BadInputError("peak_ceiling_dbfs must be at most 0 dBFS")


@dataclass(frozen=True)
class ClipSource:
    """A clip folder and what its report.json says about it."""

    folder: Path
    prompt: str
    seed: int | None
    genre: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.genre}: {self.prompt} (seed {self.seed})"


@dataclass
class PreparedStimulus:
    """One served file and what preparation did to it."""

    stimulus_id: str
    condition: str
    file_name: str
    sha256: str
    lufs_before: float | None
    lufs_after: float
    gain_db: float
    peak_dbfs: float
    target_lufs: float


@dataclass
class PreparedClip:
    """One clip: its source, its excerpt and its four stimuli."""

    clip_id: str
    source: ClipSource
    sample_rate: int
    frames: int
    excerpt_start_s: float
    source_seconds: float
    stimuli: list[PreparedStimulus] = field(default_factory=list)


def is_clip_folder(folder: Path) -> bool:
    """True when ``folder`` has report.json and the three version wavs."""
    return (folder / "report.json").is_file() and all((folder / n).is_file() for n in SOURCE_FILES.values())


def find_clip_folders(root) -> list[Path]:
    """Every clip folder at or below ``root`` (hidden and staging folders skipped), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"--from {root} is not a folder")
    found = []
    for report in root.rglob("report.json"):
        folder = report.parent
        rel = folder.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if is_clip_folder(folder):
            found.append(folder)
    return sorted(found)


def read_clip_source(folder) -> ClipSource:
    """Read ``report.json`` of a clip folder (prompt, seed, genre, model)."""
    folder = Path(folder)
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read {folder / 'report.json'}: {exc}") from None
    source = report.get("source") or {}
    if not isinstance(source, dict):
        source = {}
    genre = source.get("genre") or _genre_from_path(folder) or "unknown"
    seed = source.get("seed")
    try:
        seed = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        seed = None
    return ClipSource(folder=folder, prompt=str(source.get("prompt") or folder.name), seed=seed,
                      genre=str(genre), model=str(source.get("model") or ""))


def _genre_from_path(folder: Path) -> str | None:
    parts = folder.parts
    if "clips" in parts:
        i = len(parts) - 1 - parts[::-1].index("clips")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def select_clips(sources: list[ClipSource], n_clips: int, *, seed: int = 0,
                 training: bool = True) -> tuple[list[ClipSource], ClipSource | None]:
    """Pick ``n_clips`` clips spread over genres, plus one more for the practice trial.

    Clips are shuffled within each genre (seeded), then taken round-robin over the genres
    (sorted by name), so a test of 10 clips from 5 genres gets 2 of each. The practice clip is
    the next one in that sequence; when no clip is left it reuses the first test clip.
    """
    if n_clips < 1:
        raise BadInputError(f"--clips must be at least 1, got {n_clips}")
    if not sources:
        raise BadInputError("no clip folders found (each needs report.json, input.wav, demucs.wav, "
                            "spectral_gating.wav)")
    rng = random.Random(seed)
    by_genre: dict[str, list[ClipSource]] = defaultdict(list)
    for s in sources:
        by_genre[s.genre].append(s)
    queues = []
    for genre in sorted(by_genre):
        clips = sorted(by_genre[genre], key=lambda s: str(s.folder))
        rng.shuffle(clips)
        queues.append(clips)
    sequence = []
    while any(queues):
        for q in queues:
            if q:
                sequence.append(q.pop(0))
    chosen = sequence[:n_clips]
    extra = sequence[n_clips:]
    practice = (extra[0] if extra else chosen[0]) if training else None
    return chosen, practice


def load_versions(source: ClipSource, settings: StimulusSettings) -> tuple[dict[str, np.ndarray], int, float, float]:
    """Read the three versions, unify rate/layout/length/excerpt/fades and add the anchor.

    Returns ``(versions, sample_rate, excerpt_start_s, source_seconds)``; versions are mono
    float32 ``(1, frames)`` at the input's rate, not yet loudness-matched.
    """
    raw = {}
    rate = None
    for condition, name in SOURCE_FILES.items():
        audio, sr = read_audio(source.folder / name)
        if rate is None:
            rate = sr  # the input's rate is the common one
        audio = convert_channels(audio, 1)
        audio = resample(audio, orig_rate=sr, target_rate=rate)
        raw[condition] = audio
    frames = min(a.shape[-1] for a in raw.values())
    if frames < int(0.5 * rate):
        raise BadInputError(f"{source.folder}: shorter than 0.5 s")
    versions = {c: a[..., :frames] for c, a in raw.items()}
    versions[ANCHOR] = lowpass(versions[ORIGINAL], rate, cutoff_hz=settings.anchor_cutoff_hz)
    seconds = frames / rate
    start_s = 0.0
    if seconds > settings.max_clip_s:
        # One fixed excerpt, the same in every version: centred in the clip.
        excerpt = int(round(settings.excerpt_s * rate))
        start = (frames - excerpt) // 2
        start_s = start / rate
        versions = {c: a[..., start:start + excerpt] for c, a in versions.items()}
    versions = {c: apply_fades(a, rate, fade_s=settings.fade_s) for c, a in versions.items()}
    return {c: versions[c] for c in CONDITIONS}, rate, start_s, seconds


def feasible_target(versions: dict[str, np.ndarray], sample_rate: int, settings: StimulusSettings) -> float:
    """The highest loudness target (≤ the nominal one) that keeps every version under the peak ceiling."""
    lufs = {condition: integrated_lufs(audio, sample_rate) for condition, audio in versions.items()}
    for condition, value in lufs.items():
        if value is None:
            raise BadInputError(f"the {condition} version has no measurable loudness (silent or under 0.4 s)")
    return shared_loudness_target(versions, lufs, target_lufs=settings.target_lufs,
                                  peak_ceiling_dbfs=settings.peak_ceiling_dbfs)


def write_stimuli(versions: dict[str, np.ndarray], sample_rate: int, folder: Path, *, target_lufs: float,
                  settings: StimulusSettings) -> list[PreparedStimulus]:
    """Scale every version to ``target_lufs``, write 16-bit WAVs under uuid names and verify them.

    The versions are written in a random order (so no file-system order follows the condition);
    the result lists them in the order of ``versions``.
    """
    import soundfile as sf

    order = list(versions)
    secrets.SystemRandom().shuffle(order)
    out = {}
    for condition in order:
        audio = versions[condition]
        before = integrated_lufs(audio, sample_rate)
        gain_db = target_lufs - before
        scaled = (audio.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)
        stimulus_id = uuid.uuid4().hex
        name = f"{stimulus_id}.wav"
        path = write_wav(folder / name, scaled, sample_rate, subtype="PCM_16")
        served, _ = sf.read(str(path), dtype="float64", always_2d=True)
        after = integrated_lufs(served.T, sample_rate)
        peak = peak_dbfs(served.T)
        if after is None or abs(after - target_lufs) > settings.tolerance_lu:
            raise BadInputError(f"loudness matching missed: {after} LUFS against a target of {target_lufs:.2f}")
        if peak > settings.peak_ceiling_dbfs + 0.01:
            raise BadInputError(f"peak {peak:.2f} dBFS exceeds the ceiling of {settings.peak_ceiling_dbfs} dBFS")
        out[condition] = PreparedStimulus(stimulus_id=stimulus_id, condition=condition, file_name=name,
                                          sha256=sha256_file(path), lufs_before=before, lufs_after=after,
                                          gain_db=float(gain_db), peak_dbfs=peak, target_lufs=float(target_lufs))
    return [out[condition] for condition in versions]


def stamp_files(folder, *, mtime_s: float | None = None) -> float:
    """Give every file in ``folder`` one modification (and access) time, whole seconds; returns it.

    Web servers derive ``Last-Modified`` and ``ETag`` from it: one value for every file of a
    test orders nothing.
    """
    stamp = float(int(time.time() if mtime_s is None else mtime_s))
    for path in Path(folder).iterdir():
        if path.is_file():
            os.utime(path, (stamp, stamp))
    return stamp


def calibration_mix(versions: dict[str, np.ndarray]) -> np.ndarray:
    """The calibration sound: the mean of the three real versions (music, but none of them)."""
    return np.mean([versions[c] for c in REAL_CONDITIONS], axis=0).astype(np.float32)


def prepare_stimuli(scored: list[ClipSource], practice: ClipSource | None, folder,
                    settings: StimulusSettings | None = None,
                    ) -> tuple[list[PreparedClip], PreparedClip | None, list[str]]:
    """Prepare the scored clips and the practice clip into ``folder`` under one loudness target.

    The practice clip also gets a ``calibration`` stimulus (see :func:`calibration_mix`).
    Returns ``(scored clips, practice clip or None, skipped)``; ``skipped`` lists clips left out
    with the reason (unreadable audio, a version without measurable loudness).
    """
    settings = settings or StimulusSettings()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loaded: dict[Path, tuple] = {}
    skipped = []
    for source in ([practice] if practice is not None else []) + list(scored):
        if source.folder in loaded:
            continue
        try:
            versions, rate, start_s, seconds = load_versions(source, settings)
            if source is practice:
                versions[CALIBRATION] = calibration_mix(versions)
            target = feasible_target(versions, rate, settings)
        except BadInputError as exc:
            skipped.append(f"{source.folder}: {exc}")
            continue
        loaded[source.folder] = (versions, rate, start_s, seconds, target)
    if not loaded:
        return [], None, skipped
    target = min(item[-1] for item in loaded.values())

    def make(source: ClipSource, with_calibration: bool) -> PreparedClip | None:
        if source.folder not in loaded:
            return None
        versions, rate, start_s, seconds, _ = loaded[source.folder]
        if not with_calibration:
            versions = {c: versions[c] for c in CONDITIONS}
        clip = PreparedClip(clip_id=uuid.uuid4().hex[:12], source=source, sample_rate=rate,
                            frames=int(versions[ORIGINAL].shape[-1]), excerpt_start_s=start_s,
                            source_seconds=seconds)
        clip.stimuli = write_stimuli(versions, rate, folder, target_lufs=target, settings=settings)
        return clip

    training = make(practice, True) if practice is not None else None
    prepared = [c for c in (make(s, False) for s in scored) if c is not None]
    stamp_files(folder)
    return prepared, training, skipped

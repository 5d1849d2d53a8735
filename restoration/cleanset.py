"""Clean music to degrade: a built-in set rendered offline, or any folder of audio files.

**The built-in set** (``--clean builtin``): ten short pieces in different genres, each with
drums, bass, chords and a lead line. Each is written as MIDI with ``pretty_midi`` from a small
score (tempo, meter, key, chord progression, drum, bass, comping and melody patterns, a seed
for the melody and velocities), then rendered to 44.1 kHz stereo by FluidSynth with the
General MIDI soundfont FluidR3_GM (Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``):

    fluidsynth -ni -q -F piece.wav -r 44100 FluidR3_GM.sf2 piece.mid

The pieces are made on first use into ``<data dir>/cleanset/`` (never committed) and are the
same on every machine with the same FluidSynth and soundfont. Each is brought to −20 LUFS
(BS.1770) under a −1 dBFS peak and stored as 16-bit WAV.

**A user folder** (``--clean DIR``): every wav/flac/ogg/mp3 file in it (not recursive). Each
file gives one clip of ``seconds``, cut at a fixed offset: the middle of the file,
``offset = (duration − seconds) / 2`` rounded down to 10 ms, which skips intros and fade-outs.
The offsets are recorded in ``clips.csv``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_SUFFIXES
from .errors import BadInputError, ModelUnavailableError

BUILTIN = "builtin"
SAMPLE_RATE = 44100
PIECE_SECONDS = 16.0  # every built-in piece lasts at least this long, so --seconds up to 15 fits
SOUNDFONT_ENV = "RESTORATION_SOUNDFONT"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TARGET_LUFS = -20.0
PEAK_CEILING_DBFS = -1.0
SET_VERSION = "v1"  # bump when the scores or the rendering change, so old renders are not reused


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class Piece:
    """A short score. Steps are sixteenth notes (a 4/4 bar has 16, a 3/4 bar 12).

    ``progression``: one chord per bar, as (semitones above the key's root, quality), quality in
    ``maj``, ``min``, ``7``, ``maj7``, ``min7``, ``5`` (power chord). ``drums``: GM drum note →
    steps of the bar it plays on. ``bass``: (step, semitones above the chord root, length in
    steps). ``comp``: (step, length) of the chord hits. ``lead_steps``: the steps the melody may
    start a note on; ``scale``: semitone offsets of its scale; ``programs``: GM programs (0-based)
    of bass, chords and lead.
    """

    name: str
    genre: str
    tempo_bpm: float
    beats_per_bar: int
    root_midi: int
    progression: tuple[tuple[int, str], ...]
    drums: dict
    bass: tuple[tuple[int, int, int], ...]
    comp: tuple[tuple[int, int], ...]
    lead_steps: tuple[int, ...]
    scale: tuple[int, ...]
    programs: tuple[int, int, int]
    swing: float = 0.0
    seed: int = 0

    @property
    def steps_per_bar(self) -> int:
        return 4 * self.beats_per_bar

    @property
    def bar_s(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo_bpm


_CHORDS = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
           "5": (0, 7, 12)}
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
BLUES = (0, 3, 5, 6, 7, 10)
PENTATONIC = (0, 2, 4, 7, 9)

KICK, SNARE, RIM, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, RIDE, CRASH, SHAKER, COWBELL = 36, 38, 37, 39, 42, 44, 46, 51, 49, 70, 56
EIGHTHS = tuple(range(0, 16, 2))
SIXTEENTHS = tuple(range(16))

#: The built-in set, in the order of ``clips.csv``.
PIECES: tuple[Piece, ...] = (
    Piece("rock", "rock", 124, 4, 40, ((0, "5"), (0, "5"), (8, "5"), (10, "5")),
          {KICK: (0, 6, 8), SNARE: (4, 12), CLOSED_HAT: EIGHTHS, CRASH: (0,)},
          ((0, 0, 2), (2, 0, 2), (4, 0, 2), (6, 0, 2), (8, 0, 2), (10, 0, 2), (12, 0, 2), (14, 0, 2)),
          ((0, 6), (6, 2), (8, 6), (14, 2)), (0, 4, 8, 10, 12), MINOR, (33, 29, 30), seed=1),
    Piece("funk", "funk", 104, 4, 43, ((0, "min7"), (0, "min7"), (5, "7"), (5, "7")),
          {KICK: (0, 3, 10), SNARE: (4, 12), CLOSED_HAT: SIXTEENTHS, OPEN_HAT: (14,)},
          ((0, 0, 1), (3, 12, 1), (6, 0, 1), (7, 10, 1), (10, 0, 2), (13, 7, 1), (14, 10, 2)),
          ((2, 1), (6, 1), (9, 1), (14, 1)), (0, 3, 6, 8, 11, 14), DORIAN, (36, 7, 61), seed=2),
    Piece("jazz", "jazz swing", 132, 4, 41, ((2, "min7"), (7, "7"), (0, "maj7"), (9, "7")),
          {RIDE: (0, 4, 7, 8, 12, 15), PEDAL_HAT: (4, 12), KICK: (0,), SNARE: (11,)},
          ((0, 0, 4), (4, 4, 4), (8, 7, 4), (12, 5, 4)),
          ((0, 3), (7, 5)), (0, 2, 4, 6, 8, 10, 12, 14), MAJOR, (32, 0, 66), swing=1 / 3, seed=3),
    Piece("bossa", "bossa nova", 128, 4, 45, ((0, "maj7"), (0, "maj7"), (2, "min7"), (7, "7")),
          {RIM: (0, 3, 6, 10, 13), CLOSED_HAT: EIGHTHS, KICK: (0, 3, 8, 11)},
          ((0, 0, 3), (3, 7, 1), (8, 7, 3), (11, 0, 1)),
          ((0, 2), (3, 2), (6, 2), (10, 2), (13, 2)), (0, 4, 6, 8, 12), MAJOR, (32, 24, 73), seed=4),
    Piece("house", "house", 122, 4, 45, ((0, "min7"), (5, "min7"), (8, "maj7"), (7, "min7")),
          {KICK: (0, 4, 8, 12), CLAP: (4, 12), CLOSED_HAT: (2, 6, 10, 14), OPEN_HAT: (14,)},
          ((2, 0, 2), (6, 0, 2), (10, 0, 2), (14, 12, 2)),
          ((0, 16),), (0, 3, 6, 10, 12), MINOR, (38, 89, 80), seed=5),
    Piece("reggae", "reggae", 76, 4, 43, ((0, "maj"), (5, "maj"), (0, "maj"), (7, "maj")),
          {KICK: (8,), RIM: (8,), CLOSED_HAT: EIGHTHS},
          ((0, 0, 3), (4, 7, 2), (8, 12, 2), (11, 7, 1), (12, 0, 4)),
          ((4, 2), (12, 2)), (0, 4, 8, 12), MAJOR, (33, 16, 22), seed=6),
    Piece("blues", "blues shuffle", 96, 4, 40, ((0, "7"), (5, "7"), (0, "7"), (7, "7")),
          {KICK: (0, 8), SNARE: (4, 12), RIDE: EIGHTHS},
          ((0, 0, 2), (2, 4, 2), (4, 7, 2), (6, 9, 2), (8, 10, 2), (10, 9, 2), (12, 7, 2), (14, 4, 2)),
          ((0, 2), (4, 2), (8, 2), (12, 2)), (0, 2, 6, 8, 10, 14), BLUES, (33, 4, 27), swing=1 / 3, seed=7),
    Piece("hiphop", "lofi hip hop", 86, 4, 38, ((0, "maj7"), (9, "min7"), (5, "maj7"), (4, "min7")),
          {KICK: (0, 7, 10), SNARE: (4, 12), CLOSED_HAT: EIGHTHS, SHAKER: (3, 11)},
          ((0, 0, 6), (7, 0, 2), (10, 7, 4)),
          ((0, 8), (8, 8)), (0, 3, 6, 8, 12), PENTATONIC, (33, 4, 11), swing=0.2, seed=8),
    Piece("country", "country", 112, 4, 43, ((0, "maj"), (0, "maj"), (5, "maj"), (7, "maj")),
          {KICK: (0, 8), SNARE: (4, 12), CLOSED_HAT: SIXTEENTHS, COWBELL: (0,)},
          ((0, 0, 4), (4, 7, 4), (8, 0, 4), (12, 7, 4)),
          ((2, 2), (6, 2), (10, 2), (14, 2)), (0, 2, 4, 8, 10, 12), MAJOR, (32, 25, 40), seed=9),
    Piece("waltz", "chamber waltz", 150, 3, 38, ((0, "min"), (5, "min"), (7, "7"), (0, "min")),
          {KICK: (0,), CLOSED_HAT: (4, 8), RIDE: (0,)},
          ((0, 0, 4), (4, 7, 4), (8, 12, 4)),
          ((4, 3), (8, 3)), (0, 4, 8), MINOR, (43, 48, 68), seed=10),
)


def piece_names() -> list[str]:
    return [piece.name for piece in PIECES]


def compose(piece: Piece, *, seconds: float = PIECE_SECONDS):
    """The MIDI of ``piece`` (a ``pretty_midi.PrettyMIDI``): enough whole bars to last ``seconds``, then a final chord.

    Deterministic: the melody and the velocities come from ``numpy.random.default_rng(piece.seed)``.
    The melody walks the scale by steps of at most a third, lands on a chord tone on each bar's
    first note, and stays within an octave and a half above the key's root + 2 octaves.
    """
    import pretty_midi

    rng = np.random.default_rng(piece.seed)
    step_s = piece.bar_s / piece.steps_per_bar
    bars = int(math.ceil(seconds / piece.bar_s))

    def at(bar: int, step: int) -> float:
        # Swing delays each off-beat eighth (step 2 of a beat) by ``swing`` of an eighth note.
        offset = piece.swing * 2 * step_s if step % 4 == 2 else 0.0
        return bar * piece.bar_s + step * step_s + offset

    def velocity(base: int) -> int:
        return int(np.clip(base + rng.integers(-8, 9), 1, 127))

    midi = pretty_midi.PrettyMIDI(initial_tempo=float(piece.tempo_bpm))
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    bass = pretty_midi.Instrument(program=piece.programs[0], name="bass")
    chords = pretty_midi.Instrument(program=piece.programs[1], name="chords")
    lead = pretty_midi.Instrument(program=piece.programs[2], name="lead")
    scale = [piece.root_midi + 24 + 12 * octave + degree for octave in (0, 1) for degree in piece.scale]
    scale.append(piece.root_midi + 48)
    position = len(scale) // 3
    for bar in range(bars):
        degree, quality = piece.progression[bar % len(piece.progression)]
        chord_root = piece.root_midi + degree
        for note, steps in piece.drums.items():
            for step in steps:
                if note == CRASH and bar % 4:
                    continue
                start = at(bar, step)
                drums.notes.append(pretty_midi.Note(velocity(100 if note in (KICK, SNARE) else 78), note, start,
                                                    start + 0.08))
        for step, interval, length in piece.bass:
            start = at(bar, step)
            bass.notes.append(pretty_midi.Note(velocity(96), chord_root - 12 + interval, start,
                                               start + length * step_s * 0.92))
        voicing = [chord_root + 12 + i for i in _CHORDS[quality]]
        for step, length in piece.comp:
            start = at(bar, step)
            for pitch in voicing:
                chords.notes.append(pretty_midi.Note(velocity(72), pitch, start, start + length * step_s * 0.95))
        starts = [s for s in piece.lead_steps if rng.random() < 0.8 or s == piece.lead_steps[0]]
        chord_pcs = {(chord_root + i) % 12 for i in _CHORDS[quality]}
        for k, step in enumerate(starts):
            if k == 0:
                tones = [i for i, p in enumerate(scale) if p % 12 in chord_pcs] or [position]
                position = min(tones, key=lambda i: abs(i - position))
            else:
                position = int(np.clip(position + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(scale) - 1))
            end_step = starts[k + 1] if k + 1 < len(starts) else piece.steps_per_bar
            start = at(bar, step)
            lead.notes.append(pretty_midi.Note(velocity(88), scale[position], start,
                                               start + (end_step - step) * step_s * 0.9))
    end = bars * piece.bar_s
    degree, quality = piece.progression[0]
    for pitch in [piece.root_midi - 12] + [piece.root_midi + degree + 12 + i for i in _CHORDS[quality]]:
        (bass if pitch < piece.root_midi else chords).notes.append(pretty_midi.Note(80, pitch, end, end + 1.5))
    drums.notes.append(pretty_midi.Note(90, CRASH, end, end + 0.5))
    drums.notes.append(pretty_midi.Note(100, KICK, end, end + 0.1))
    midi.instruments.extend([drums, bass, chords, lead])
    return midi


# --------------------------------------------------------------------------- rendering


def soundfont_path() -> Path:
    """The General MIDI soundfont: env ``RESTORATION_SOUNDFONT``, else Debian's FluidR3_GM.sf2."""
    return Path(os.environ.get(SOUNDFONT_ENV, "").strip() or DEFAULT_SOUNDFONT)


def renderer_unavailable() -> str | None:
    """Why the built-in set cannot be rendered here (``None`` when it can)."""
    missing = []
    if shutil.which("fluidsynth") is None:
        missing.append("the fluidsynth program")
    if not soundfont_path().is_file():
        missing.append(f"the soundfont {soundfont_path()}")
    if not missing:
        return None
    return (f"the built-in clean set needs {' and '.join(missing)}: install the Debian packages fluidsynth and "
            f"fluid-soundfont-gm (`make install` does), or set {SOUNDFONT_ENV} to a General MIDI .sf2 file")


def render(midi, wav_path, *, sample_rate: int = SAMPLE_RATE) -> Path:
    """Render a ``pretty_midi.PrettyMIDI`` with FluidSynth to a stereo WAV at ``sample_rate``, loudness-normalised.

    The result is brought to −20 LUFS, lowered if needed so its peak stays at or below −1 dBFS,
    and written atomically as 16-bit PCM. Raises :class:`ModelUnavailableError` when FluidSynth
    or the soundfont is missing.
    """
    import soundfile as sf

    from .audio import integrated_lufs, write_wav

    reason = renderer_unavailable()
    if reason is not None:
        raise ModelUnavailableError(reason)
    wav_path = Path(wav_path)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wav_path.parent, prefix=".render-") as tmp:
        mid = Path(tmp) / "piece.mid"
        raw = Path(tmp) / "raw.wav"
        midi.write(str(mid))
        result = subprocess.run(
            ["fluidsynth", "-ni", "-q", "-F", str(raw), "-r", str(int(sample_rate)), str(soundfont_path()), str(mid)],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()[:300]}")
        audio, rate = sf.read(str(raw), dtype="float32", always_2d=True)
    audio = _trim_tail(audio.T, rate)
    lufs = integrated_lufs(audio, rate)
    gain_db = TARGET_LUFS - lufs if lufs is not None else 0.0
    peak = float(np.max(np.abs(audio))) or 1.0
    gain_db = min(gain_db, PEAK_CEILING_DBFS - 20.0 * math.log10(peak))
    audio = (audio * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    return write_wav(wav_path, audio, rate, subtype="PCM_16")


def _trim_tail(audio: np.ndarray, sample_rate: int, *, below_db: float = 50.0, keep_s: float = 0.3) -> np.ndarray:
    """Cut FluidSynth's silent tail: end ``keep_s`` after the last 50 ms frame within ``below_db`` of the loudest.

    The kept end fades out over ``keep_s`` (raised cosine).
    """
    frame = int(0.05 * sample_rate)
    count = audio.shape[-1] // frame
    rms = np.sqrt(np.mean(audio[:, : count * frame].reshape(audio.shape[0], count, frame) ** 2, axis=(0, 2)))
    level_db = 20.0 * np.log10(np.maximum(rms, 1e-12))
    last = int(np.nonzero(level_db >= level_db.max() - below_db)[0][-1])
    fade = int(keep_s * sample_rate)
    end = min(audio.shape[-1], (last + 1) * frame + fade)
    out = np.array(audio[:, :end], dtype=np.float32)
    ramp = 0.5 + 0.5 * np.cos(np.pi * np.arange(min(fade, end)) / max(fade, 1))
    out[:, end - ramp.size:] *= ramp.astype(np.float32)
    return out


def builtin_folder() -> Path:
    """Where the built-in set is rendered: ``<data dir>/cleanset/v1``."""
    from .paths import data_dir

    return data_dir() / "cleanset" / SET_VERSION


def ensure_builtin(folder=None, *, names=None, progress=None) -> list[Path]:
    """Render every built-in piece (or those in ``names``) that is missing from ``folder``; return their paths.

    ``progress(done, total, name)`` is called after each piece. Raises
    :class:`ModelUnavailableError` when a piece is missing and FluidSynth or the soundfont is too.
    """
    folder = Path(folder) if folder is not None else builtin_folder()
    pieces = [p for p in PIECES if names is None or p.name in names]
    paths = []
    for done, piece in enumerate(pieces, 1):
        path = folder / f"{piece.name}.wav"
        if not path.is_file():
            render(compose(piece), path)
        paths.append(path)
        if progress is not None:
            progress(done, len(pieces), piece.name)
    return paths


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class CleanClip:
    """One clean clip of a study: ``seconds`` of ``path`` from ``offset_s``.

    ``clip_id`` names it in tables and folders (the file's stem, made unique); ``genre`` is the
    built-in piece's genre, or "" for a user file.
    """

    clip_id: str
    path: Path
    offset_s: float
    seconds: float
    duration_s: float
    genre: str = ""

    def load(self) -> tuple[np.ndarray, int]:
        """The clip as float32 ``(channels, frames)`` at the file's own rate."""
        import soundfile as sf

        with sf.SoundFile(str(self.path)) as f:
            rate = int(f.samplerate)
            f.seek(int(round(self.offset_s * rate)))
            data = f.read(int(round(self.seconds * rate)), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), rate


def centre_offset_s(duration_s: float, seconds: float) -> float:
    """The fixed cut: ``(duration − seconds) / 2``, rounded down to 10 ms (never negative)."""
    return max(0.0, math.floor((duration_s - seconds) / 2.0 * 100.0) / 100.0)


def audio_files(folder) -> list[Path]:
    """The wav/flac/ogg/mp3 files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def plan_clips(clean, *, seconds: float, progress=None) -> list[CleanClip]:
    """The clips of a study from ``clean`` (``"builtin"`` or a folder), each ``seconds`` long.

    Checks everything before any work and raises :class:`BadInputError` for a missing folder, a
    folder without audio files, an unreadable file or one shorter than ``seconds`` (the message
    names the file and its length). The built-in set is rendered first if needed.
    """
    import soundfile as sf

    from .settings import validate_duration

    seconds = validate_duration(seconds)
    if str(clean) == BUILTIN:
        paths = ensure_builtin(progress=progress)
        genres = {f"{p.name}.wav": p.genre for p in PIECES}
    else:
        folder = Path(clean)
        if not folder.exists():
            raise BadInputError(f"clean-audio folder not found: {folder}")
        if not folder.is_dir():
            raise BadInputError(f"--clean must be a folder of audio files or 'builtin', got the file {folder}")
        paths = audio_files(folder)
        if not paths:
            raise BadInputError(f"no audio files (wav, flac, ogg, mp3) in {folder}")
        genres = {}
    clips, used = [], set()
    for path in paths:
        try:
            info = sf.info(str(path))
        except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError
            raise BadInputError(f"cannot read {path.name} as audio: {str(exc).strip() or type(exc).__name__}") from None
        duration = float(info.frames) / float(info.samplerate) if info.samplerate else 0.0
        if duration < seconds:
            raise BadInputError(f"{path.name} lasts {duration:.2f} s, shorter than --seconds {seconds:g}")
        clip_id = _unique(_slug(path.stem), used)
        clips.append(CleanClip(clip_id, path, centre_offset_s(duration, seconds), seconds, duration,
                               genres.get(path.name, "")))
    return clips


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "clip"


def _unique(name: str, used: set) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate

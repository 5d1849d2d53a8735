#!/usr/bin/env python3
"""Make the short, labelled example clips of the app's "Restore your own audio" tab.

The clips are music: pieces of the built-in clean set (:mod:`restoration.cleanset`), written as
MIDI and rendered by FluidSynth with the FluidR3 General MIDI soundfont, so they are made here
instead of being committed (``*.wav`` is ignored by git). ``make run`` calls this script, and the
app calls :func:`make_clips` at start when a clip is missing. Each clip is 6 s of 44.1 kHz stereo
16-bit WAV cut from the middle of its piece; three carry a known, named degradation
(:mod:`restoration.degradations`), so a listener hears what a restoration is up against:

- jazz (drums, walking bass, piano, tenor sax), clean;
- funk through an MP3 round trip at 32 kbps (codec artefacts, a lost top band);
- bossa nova under white hiss 30 dB below the music (broadband noise: gating's home ground);
- house low-passed at 6 kHz (dull, like a band-limited generator).

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm`` (``make run`` installs them).

Usage: ``python scripts/make_example_clips.py [--out examples/audio] [--force]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = ROOT / "examples" / "audio"
DURATION_S = 6.0

#: file name, label shown in the app, built-in piece, degradation (None = clean)
CLIPS = (
    ("jazz_clean.wav", "Jazz quartet (clean, FluidSynth)", "jazz", None),
    ("funk_mp3_32kbps.wav", "Funk through MP3 at 32 kbps", "funk", "mp3-32"),
    ("bossa_hiss_30db.wav", "Bossa nova under hiss (30 dB below)", "bossa", "noise-30"),
    ("house_lowpass_6khz.wav", "House low-passed at 6 kHz", "house", "lowpass-6"),
)


def make_clips(folder=DEFAULT_FOLDER, *, force: bool = False) -> list[tuple[Path, str]]:
    """Write every clip that is missing (all with ``force``) into ``folder``; return ``(path, label)`` pairs.

    Raises :class:`restoration.errors.ModelUnavailableError` when FluidSynth or the soundfont is
    missing and a clip has to be made.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from restoration import cleanset
    from restoration.audio import write_wav
    from restoration.degradations import degrade

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = {piece.name: piece for piece in cleanset.PIECES}
    made = []
    for name, label, piece_name, degradation in CLIPS:
        path = folder / name
        if force or not path.is_file():
            with tempfile.TemporaryDirectory(dir=folder, prefix=".render-") as tmp:
                cleanset.render(cleanset.compose(pieces[piece_name], seconds=DURATION_S + 2.0),
                                           Path(tmp) / "piece.wav")
                clip = cleanset.plan_clips(Path(tmp), seconds=DURATION_S)[0]
                audio, rate = clip.load()
            if degradation is not None:
                audio = degrade(audio, rate, name=degradation, seed=0).degraded
            write_wav(path, audio.clip(-1.0, 1.0), rate, subtype="PCM_16")
        made.append((path, label))
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_FOLDER,
                        help="folder to write into (default examples/audio)")
    parser.add_argument("--force", action="store_true", help="rewrite clips that already exist")
    args = parser.parse_args(argv)
    for path, label in make_clips(args.out, force=args.force):
        print(f"{path}  —  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Make the short, labelled example clips of the app's "Restore your own audio" tab.

The clips are synthetic, so they are made here instead of being committed (``*.wav`` is
ignored by git): ``make run`` calls this script, and the app calls :func:`make_clips` at
start when a clip is missing. Each clip is 4 s of 16-bit WAV, made from a fixed seed, and
shows one thing a restoration may or may not fix:

- a sine chord under −40 dBFS white hiss (broadband noise: gating's home ground);
- noise band-limited at 4 kHz (an empty top band: does anything "restore" it?);
- drum-like clicks over 50 Hz mains hum (transients and a tonal hum);
- a plucked melody with vinyl crackle, low-passed at 8 kHz (lo-fi music, the closest to MusicGen's defects).

Usage: ``python scripts/make_example_clips.py [--out examples/audio] [--force]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent / "examples" / "audio"
DURATION_S = 4.0


def _db(value_db: float) -> float:
    return 10.0 ** (value_db / 20.0)


def _lowpass(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


def noisy_sine_chord(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A major chord (A3, C♯4, E4) at −12 dBFS peak under white hiss at −40 dBFS RMS; mono."""
    t = np.arange(int(DURATION_S * sample_rate)) / sample_rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    chord *= _db(-12.0) / np.max(np.abs(chord))
    hiss = rng.standard_normal(t.size) * _db(-40.0)
    return (chord + hiss)[None, :]


def bandlimited_noise(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """White noise low-passed at 4 kHz (8th-order Butterworth), −20 dBFS RMS; mono."""
    noise = _lowpass(rng.standard_normal(int(DURATION_S * sample_rate)), sample_rate, 4000.0)
    return (noise * _db(-20.0) / np.sqrt(np.mean(noise**2)))[None, :]


def clicks_with_hum(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Decaying noise bursts on every beat at 120 BPM (a kick-like thump on 1 and 3) over 50 Hz hum; stereo."""
    n = int(DURATION_S * sample_rate)
    t = np.arange(n) / sample_rate
    hum = sum(_db(-30.0 - 6.0 * k) * np.sin(2 * np.pi * 50.0 * (k + 1) * t) for k in range(3))
    drums = np.zeros(n)
    for beat, start in enumerate(np.arange(0.0, DURATION_S, 0.5)):
        i = int(start * sample_rate)
        length = min(int(0.25 * sample_rate), n - i)
        tt = np.arange(length) / sample_rate
        burst = rng.standard_normal(length) * np.exp(-tt / 0.03) * _db(-10.0)
        if beat % 2 == 0:
            burst += np.sin(2 * np.pi * 60.0 * tt * np.exp(-tt / 0.1)) * np.exp(-tt / 0.08) * _db(-6.0)
        drums[i:i + length] += burst
    left = drums + hum
    right = 0.8 * drums + hum
    return np.stack([left, right]) * 0.9 / max(np.max(np.abs(left)), np.max(np.abs(right)))


def lofi_melody(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A plucked pentatonic melody (decaying harmonics) with vinyl crackle, low-passed at 8 kHz; mono."""
    n = int(DURATION_S * sample_rate)
    out = np.zeros(n)
    notes = (261.63, 293.66, 329.63, 392.0, 440.0, 392.0, 329.63, 293.66)
    step = DURATION_S / len(notes)
    for k, freq in enumerate(notes):
        i = int(k * step * sample_rate)
        length = min(int(1.2 * step * sample_rate), n - i)
        tt = np.arange(length) / sample_rate
        tone = sum(np.sin(2 * np.pi * freq * h * tt) / h**1.5 for h in range(1, 8))
        out[i:i + length] += tone * np.exp(-tt / 0.35)
    out *= _db(-10.0) / np.max(np.abs(out))
    crackle = np.zeros(n)
    pops = rng.integers(0, n, size=int(8 * DURATION_S))
    crackle[pops] = rng.choice([-1.0, 1.0], size=pops.size) * rng.uniform(0.05, 0.3, size=pops.size)
    hiss = rng.standard_normal(n) * _db(-50.0)
    return _lowpass(out + crackle + hiss, sample_rate, 8000.0)[None, :]


#: file name, label shown in the app, builder, sample rate (Hz)
CLIPS = (
    ("noisy_sine_chord.wav", "Noisy sine chord (−40 dBFS hiss)", noisy_sine_chord, 32000),
    ("bandlimited_noise_4khz.wav", "Band-limited noise (4 kHz)", bandlimited_noise, 32000),
    ("drum_clicks_with_hum.wav", "Drum-like clicks with 50 Hz hum (stereo)", clicks_with_hum, 44100),
    ("lofi_melody_crackle.wav", "Lo-fi melody with vinyl crackle (8 kHz band)", lofi_melody, 32000),
)


def make_clips(folder=DEFAULT_FOLDER, *, force: bool = False) -> list[tuple[Path, str]]:
    """Write every clip that is missing (all with ``force``) into ``folder``; return ``(path, label)`` pairs."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for seed, (name, label, build, sample_rate) in enumerate(CLIPS):
        path = folder / name
        if force or not path.is_file():
            audio = np.clip(build(np.random.default_rng(seed), sample_rate), -1.0, 1.0).astype(np.float32)
            tmp = path.with_name(f".{name}.tmp")
            sf.write(str(tmp), audio.T, sample_rate, subtype="PCM_16", format="WAV")
            tmp.replace(path)
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

"""Command line: ``python -m restoration {run,restore,batch,doctor,…}``.

Exit status: 0 success, 2 bad input, 3 a model cannot be loaded, 130 interrupted,
1 anything unexpected. Errors are one line on stderr, never a traceback
(set ``RESTORATION_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cluster import add_ray_options, cluster_from_args
from .errors import BadInputError, RestorationError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line with exit status 2."""

    def error(self, message):
        raise BadInputError(f"{message} (see `python -m restoration {self.prog.split()[-1]} --help`)")


def _check_out(path: Path) -> Path:
    """``--out`` must be a folder, or creatable in a writable folder (checked before any work)."""
    if path.exists() and not path.is_dir():
        raise BadInputError(f"--out {path} exists and is not a folder")
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError(f"--out {path} cannot be created: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInputError(f"--out {path}: no permission to write in {ancestor}")
    return path


def _add_restoration_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("restoration")
    g.add_argument("--shifts", type=int, default=0, help="Demucs random shifts (0 = off)")
    g.add_argument("--overlap", type=float, default=0.25, help="Demucs chunk overlap fraction")
    g.add_argument("--stem-gain", action="append", default=[], metavar="STEM=GAIN",
                   help="linear gain of one Demucs stem before summing (repeatable), e.g. vocals=0.5")
    g.add_argument("--gating", choices=("nonstationary", "stationary"), default="nonstationary")
    g.add_argument("--gating-strength", type=float, default=1.0, help="noisereduce prop_decrease, 0–1")
    g.add_argument("--gating-threshold", type=float, default=None, help="gate threshold in noise std devs")
    g.add_argument("--hber-cutoff-hz", type=float, default=8000.0, help="ΔHBER high-band edge in Hz")


def _add_generation_options(p: argparse.ArgumentParser, *, duration_default: str | None) -> None:
    p.add_argument("--duration", default=duration_default, required=duration_default is None,
                   help="clip length in seconds, 1–30")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=250)
    p.add_argument("--mode", choices=("exact", "fast"), default=None,
                   help="exact = fp32; fast = int8 decoder (default: env MUSICGEN_QUANTIZE=int8 → fast, else exact)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="restoration", description="Zero-shot restoration of MusicGen audio: Demucs vs spectral gating.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="generate a clip from a prompt, restore it both ways, write the report")
    p.add_argument("--prompt", required=True)
    p.add_argument("--seed", type=int, default=0)
    _add_generation_options(p, duration_default=None)
    p.add_argument("--out", required=True, type=Path)
    _add_restoration_options(p)

    p = sub.add_parser("restore", help="restore an existing wav/flac/ogg/mp3 both ways and write the report")
    p.add_argument("file")
    p.add_argument("--out", required=True, type=Path)
    _add_restoration_options(p)

    p = sub.add_parser("batch", help="prompts × seeds with aggregate tables and 95 %% CIs (resumable)")
    p.add_argument("--prompts", required=True, help="text file: one prompt per line, optionally 'genre | prompt'")
    p.add_argument("--seeds", type=int, default=1, help="run seeds 0 … N−1 per prompt")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="clips MusicGen samples together, each with its own seed (default: 16 on CPU, 32 on a GPU; "
                        "1 = one at a time); the clips are the same whatever B")
    _add_generation_options(p, duration_default="5")
    p.add_argument("--out", required=True, type=Path)
    _add_restoration_options(p)
    add_ray_options(p)

    p = sub.add_parser("doctor", help="what is installed, the device, and whether model weights are reachable")
    p.add_argument("--json", action="store_true")

    for register in _extension_commands():
        register(sub)
    return parser


def _extension_commands():
    """Command groups that live in their own modules (benchmark, listening test)."""
    registers = []
    for module in ("bench", "listening.cli", "groundtruth_cli"):
        try:
            mod = __import__(f"restoration.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("restoration."):
                continue
            raise
        registers.append(mod.register)
    return registers


def settings_from_args(args):
    """The Demucs, gating and metric settings from parsed arguments (:func:`restoration.settings.restoration_settings`)."""
    from .settings import restoration_settings

    gains = []
    for item in args.stem_gain:
        stem, sep, value = item.partition("=")
        if not sep or not stem.strip():
            raise BadInputError(f"--stem-gain expects STEM=GAIN, got {item!r}")
        gains.append((stem.strip(), value))
    return restoration_settings(shifts=args.shifts, overlap=args.overlap, stem_gains=gains, gating=args.gating,
                                gating_strength=args.gating_strength, gating_threshold_std=args.gating_threshold,
                                hber_cutoff_hz=args.hber_cutoff_hz, seed=getattr(args, "seed", 0) or 0)


def generation_from_args(args, *, seed: int = 0):
    """MusicGen's settings from parsed arguments (:func:`restoration.settings.generation_settings`)."""
    from .generation import resolve_mode
    from .settings import generation_settings

    return generation_settings(duration_s=args.duration, seed=seed, guidance_scale=args.guidance,
                               temperature=args.temperature, top_k=args.top_k, mode=resolve_mode(args.mode))


def _stage_printer(stream=sys.stdout):
    last = {"stage": None}

    def progress(stage, fraction, detail):
        if stage != last["stage"]:
            last["stage"] = stage
            print(f"[{stage}] {detail}".rstrip(), file=stream, flush=True)

    return progress


def _print_summary(report, out: Path) -> None:
    from .metrics import METRIC_INFO

    names = list(report.metrics)
    print(f"wrote {out}/ ({', '.join(names)}; total {report.timings_s.get('total', 0):.1f} s)")
    print(f"{'metric':32s}" + "".join(f"{n:>18s}" for n in names))
    for key, (label, unit, _) in METRIC_INFO.items():
        cells = []
        for n in names:
            v = report.metrics[n].get(key)
            cells.append(f"{'—' if v is None else format(v, '.3g'):>18s}")
        print(f"{label + ' (' + unit + ')':32.32s}" + "".join(cells))


def cmd_run(args) -> int:
    from .pipeline import run
    from .settings import validate_prompt
    from .sidecar import finisher

    validate_prompt(args.prompt)  # bad input exits before the second process starts
    generation = generation_from_args(args, seed=args.seed)
    demucs, gating, metrics = settings_from_args(args)
    printer = _stage_printer()
    # Demucs, metrics and figures get ready in a second process while MusicGen loads and samples.
    with finisher(out=args.out, progress=printer, duration_s=generation.duration_s) as finish:
        report = run(prompt=args.prompt, generation=generation, demucs=demucs, gating=gating, metrics=metrics,
                     progress=printer, finish=finish)
    _print_summary(report, args.out)
    return 0


def cmd_restore(args) -> int:
    from .outputs import write_report
    from .pipeline import run

    demucs, gating, metrics = settings_from_args(args)
    report = run(file=args.file, demucs=demucs, gating=gating, metrics=metrics, progress=_stage_printer())
    write_report(report, args.out)
    _print_summary(report, args.out)
    return 0


def cmd_batch(args) -> int:
    from .batch import run_batch

    generation = generation_from_args(args)
    demucs, gating, metrics = settings_from_args(args)
    cluster = cluster_from_args(args)
    if cluster is not None:
        from .cluster import report, run_batch_on_ray

        counts = run_batch_on_ray(args.prompts, args.out, seeds=args.seeds, batch_size=args.batch_size,
                                  generation=generation, demucs=demucs, gating=gating, metrics=metrics, cluster=cluster)
        return report(counts, args.out)
    if args.batch_size is not None and args.batch_size < 1:
        raise BadInputError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    counts = run_batch(args.prompts, args.out, seeds=args.seeds, batch_size=args.batch_size, generation=generation,
                       demucs=demucs, gating=gating, metrics=metrics)
    print(f"{counts['clips']} clips ({counts['ran']} run, {counts['skipped']} already done); "
          f"tables in {args.out}/summary.csv, clips.csv, summary.png")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import diagnose, format_text

    info = diagnose()
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0


COMMANDS = {"run": cmd_run, "restore": cmd_restore, "batch": cmd_batch, "doctor": cmd_doctor}


def main(argv=None) -> int:
    debug = os.environ.get("RESTORATION_DEBUG") == "1"
    try:
        args = build_parser().parse_args(argv)
        if isinstance(getattr(args, "out", None), Path):
            _check_out(args.out)
        handler = COMMANDS.get(args.command) or args.handler
        return int(handler(args) or 0)
    except RestorationError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        if debug:
            raise
        print(f"unexpected error: {type(exc).__name__}: {exc} (set RESTORATION_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1

"""``python -m restoration groundtruth``: the ground-truth study on the command line, locally or on Ray.

The study itself is :mod:`restoration.groundtruth`; :mod:`restoration.cluster` runs its clips on
Ray workers. This module sits above both, so neither imports the other's command line.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    """Add ``groundtruth`` to the ``python -m restoration`` command line."""
    from .cluster import add_ray_options
    from .degradations import NAMES_HELP

    p = subparsers.add_parser(
        "groundtruth",
        help="degrade clean music, restore it both ways, measure against the original; proxy validity table",
    )
    p.add_argument("--clean", required=True, metavar="DIR|builtin",
                   help="a folder of clean wav/flac/ogg/mp3 files, or 'builtin' (ten FluidSynth-rendered pieces)")
    p.add_argument("--degrade", default="musicgen-codec", metavar="NAMES",
                   help=f"comma-separated degradations (default musicgen-codec): {NAMES_HELP}")
    p.add_argument("--seconds", default="10", help="clip length in seconds, 1–30 (default 10); cut from each file's middle")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--hber-cutoff-hz", type=float, default=8000.0, help="ΔHBER high-band edge in Hz")
    p.add_argument("--no-perceptual", action="store_true", help="skip Zimtohrli (the slowest metric)")
    add_ray_options(p)
    p.set_defaults(handler=cmd_groundtruth)


def cmd_groundtruth(args) -> int:
    from .cluster import cluster_from_args
    from .groundtruth import StudySettings, run_study
    from .reference_metrics import ReferenceMetricSettings
    from .settings import MetricSettings, validate_duration

    seconds = validate_duration(args.seconds)
    settings = StudySettings(metrics=MetricSettings(hber_cutoff_hz=args.hber_cutoff_hz),
                             reference=ReferenceMetricSettings(perceptual=not args.no_perceptual))
    cluster = cluster_from_args(args)
    if cluster is not None:  # the same runs on Ray workers (restoration.cluster)
        from .cluster import report, run_groundtruth_on_ray

        counts = run_groundtruth_on_ray(args.clean, args.out, seconds=seconds, degradations=args.degrade,
                                        settings=settings, cluster=cluster)
        return report(counts, args.out, unit="clip × degradation runs",
                      tables="clips.csv, summary.csv, summary.png, proxies.csv, proxies.png")
    counts = run_study(args.clean, args.out, seconds=seconds, degradations=args.degrade, settings=settings)
    print(f"{counts['jobs']} clip × degradation runs ({counts['ran']} run, {counts['skipped']} already done); "
          f"tables in {args.out}/clips.csv, summary.csv, summary.png, proxies.csv, proxies.png")
    return 0

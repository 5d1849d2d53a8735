"""``python -m restoration listening {create,list,results,export}``: the organiser's commands."""

from __future__ import annotations

from pathlib import Path


def cmd_create(args) -> int:
    from .build import create_test

    info = create_test(args.name, from_dir=args.from_dir, n_clips=args.clips, seed=args.seed)
    print(f"created test {info['name']!r}: {info['trials']} trials ({', '.join(info['genres'])})"
          f"{' + 1 practice trial' if info['practice'] else ''}, loudness {info['target_lufs']:.2f} LUFS; "
          "participants now see it")
    for note in info["notes"]:
        print(f"note: {note}")
    for skipped in info["skipped"]:
        print(f"skipped: {skipped}")
    return 0


def cmd_list(args) -> int:
    from . import store

    tests = store.list_tests()
    if not tests:
        print("no listening tests yet")
        return 0
    print(f"{'':2s}{'name':30s} {'trials':>6s} {'sessions':>8s} {'finished':>8s}  created")
    for t in tests:
        print(f"{'*' if t['active'] else ' '} {t['name'][:30]:30s} {t['n_trials']:6d} {t['n_sessions']:8d} "
              f"{t['n_finished']:8d}  {t['created_at'][:16]}")
    print("(* = the test participants see)")
    return 0


def cmd_results(args) -> int:
    from . import results

    res = results.load_results(args.test, include_everyone=args.include_everyone)
    print(results.markdown(res))
    return 0


def cmd_export(args) -> int:
    from . import results

    path, n = results.export_csv(args.out, args.test)
    print(f"wrote {n} ratings to {path}")
    return 0


def cmd_open(args) -> int:
    from . import store

    test = store.set_active(args.test)
    print(f"participants now see {test['name']!r}")
    return 0


def register(subparsers) -> None:
    """Add the ``listening`` command group to the main parser's subparsers."""
    p = subparsers.add_parser("listening", help="blind listening test: create, list, results, export")
    sub = p.add_subparsers(dest="listening_command", required=True, parser_class=type(p))

    c = sub.add_parser("create", help="build a test from clip folders (a batch output or the app's runs)")
    c.add_argument("--from", dest="from_dir", required=True, type=Path,
                   help="folder searched recursively for report.json + input/demucs/spectral_gating.wav")
    c.add_argument("--clips", type=int, default=10, help="scored clips per listener (8–12 recommended; default 10)")
    c.add_argument("--name", required=True, help="a unique name for the test")
    c.add_argument("--seed", type=int, default=0, help="seed of the clip selection")
    c.set_defaults(handler=cmd_create)

    c = sub.add_parser("list", help="tests with their counts of sessions")
    c.set_defaults(handler=cmd_list)

    c = sub.add_parser("results", help="screening, means with 95 % CIs, Friedman and Wilcoxon–Holm")
    c.add_argument("--test", default=None, help="test name (default: the open one)")
    c.add_argument("--include-everyone", action="store_true", help="ignore the screening")
    c.set_defaults(handler=cmd_results)

    c = sub.add_parser("export", help="long-format CSV, a row per rating, from a consistent snapshot")
    # a str, not a Path: the main CLI treats a Path --out as an output folder.
    c.add_argument("--out", required=True, type=str, help="CSV file to write (replaced if it exists)")
    c.add_argument("--test", default=None, help="test name (default: the open one)")
    c.set_defaults(handler=cmd_export)

    c = sub.add_parser("open", help="make a test the one participants see")
    c.add_argument("test", help="test name")
    c.set_defaults(handler=cmd_open)

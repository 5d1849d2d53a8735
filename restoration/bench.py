"""``python -m restoration bench``: how long a user waits, stock libraries against this package.

One run of the benchmark measures, on this machine:

1. **Whole processes**, as a user meets them (imports and loading included), each in its own
   subprocess with its peak RSS and CPU time: the *stock* pipeline — a script written with
   stock library calls only (transformers ``generate`` with guidance 3 and top-k 250, demucs
   ``apply_model``, ``noisereduce.reduce_noise``, librosa metrics and three pyplot Mel
   figures) — and ``python -m restoration run`` in each generation mode, stage by stage.
   ``--repeats N`` runs each N times, rotating the order, and reports medians.
2. **Fast against exact** on the same inputs (teacher forcing): the token sequence an exact
   run samples is fed to both decoders; the bench reports how often their next-token choice
   (argmax of the guided logits) agrees, per codebook and overall, and the mean cosine
   similarity of the guided logits. Below :data:`DRIFT_AGREEMENT` it says that fast drifts.
3. **Demucs's segment**: the clip separated with the model's training segment and with
   shorter ones — time and largest difference — so the question "does a short clip pay for
   padding?" is answered by measurement.
4. **Metrics and plots** for the three versions, warm (target ≤ 0.5 s).
5. **The app, warm**: in a fresh process, the app's own warm-up
   (:func:`restoration.warmup.warm_up`, which ``app.py`` runs after start), then two
   clicks of *Generate* in ``fast`` mode through :func:`restoration.app.jobs.stream_run`,
   the function the button runs: seconds to the first streamed audio (first sound) and to
   the full results. Gradio's own transport is not included (a cached request's whole
   round trip through the browser took 0.3 s).
6. **Start-up** of the command-line process.

Models: the real weights when ``MUSICGEN_MODEL`` / ``DEMUCS_MODEL`` name available ones;
otherwise the full-size architectures with random weights (the same compute), built once
into ``<data dir>/bench-models/``. ``--models configured`` takes whatever is configured
(the tests use tiny models that way).

Nothing here imports torch at module import: every CLI call imports this module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .errors import BadInputError

#: The issue's targets: whole ``python -m restoration run`` process against the stock one.
TARGETS = {"exact_speedup_min": 1.3, "fast_speedup_min": 5.0, "fast_wall_max_s": 25.0, "metrics_plots_max_s": 0.5,
           "app_fast_results_max_s": 20.0, "app_first_sound_max_s": 5.0, "batch_speedup_min": 4.0,
           "fast_agreement_min": 0.95, "fast_total_variation_max": 0.02, "fast_ms_per_token_max": 50.0}
#: Fast mode "drifts" when its next-token choice agrees with exact's less often than this.
DRIFT_AGREEMENT = 0.9
PROMPT = "lofi hip hop beat with mellow piano and soft drums"
MODES = ("exact", "fast")
RANDOM_MUSICGEN = "musicgen-small-random"
RANDOM_DEMUCS = "htdemucs_random"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

#: The stock pipeline, a script of stock library calls run as its own process (see its docstring).
STOCK_SCRIPT = Path(__file__).with_name("bench_stock.py")


# --------------------------------------------------------------------------- command line


def register(subparsers) -> None:
    """Add ``bench`` to the ``python -m restoration`` command line."""
    p = subparsers.add_parser(
        "bench", help="time stock vs this package (whole processes), fast-mode fidelity, Demucs segment, plots"
    )
    p.add_argument("--duration", default="5", help="clip length in seconds (default 5)")
    p.add_argument("--modes", default="exact,fast", help="generation modes to time, comma-separated (exact,fast)")
    p.add_argument("--skip-stock", action="store_true", help="do not time the stock pipeline")
    p.add_argument("--skip-processes", action="store_true",
                   help="time no whole process (stock or ours): only the in-process checks and the study")
    p.add_argument("--skip-app", action="store_true", help="do not time the app's warm clicks")
    p.add_argument("--skip-ray", action="store_true",
                   help="do not time the small study locally and on a local Ray with 2 workers")
    p.add_argument("--models", choices=("auto", "configured"), default="auto",
                   help="auto: real weights when available, else full-size random ones (built once); "
                        "configured: MUSICGEN_MODEL / DEMUCS_MODEL / DEMUCS_REPO as set (e.g. tiny test models)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each process; medians are reported (default 1)")
    p.add_argument("--batch-size", type=int, default=None, help="the study's batch of clips (default: batch's own)")
    p.add_argument("--study-steps", type=int, default=None,
                   help="token steps timed per study measurement (default: a whole clip)")
    p.add_argument("--fidelity-seconds", default=None,
                   help="seconds of tokens compared under teacher forcing (default: --duration)")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    # A string, not a Path: the CLI checks Path-typed --out options as report folders.
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON result to this file")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    from .settings import validate_duration

    duration_s = validate_duration(args.duration)
    modes = tuple(m.strip() for m in str(args.modes).split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        raise BadInputError(f"--modes must be a comma-separated subset of {','.join(MODES)}, got {args.modes!r}")
    if args.repeats < 1:
        raise BadInputError(f"--repeats must be ≥ 1, got {args.repeats}")
    for name in ("batch_size", "study_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise BadInputError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise BadInputError(f"--out {out} is a folder; give a file name for the JSON")
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (lambda text: print(text, flush=True))
    result = run_bench(duration_s=duration_s, modes=modes, skip_stock=args.skip_stock, skip_app=args.skip_app,
                       skip_processes=args.skip_processes,
                       skip_ray=args.skip_ray, models=args.models, repeats=int(args.repeats),
                       batch_size=args.batch_size, study_steps=args.study_steps,
                       fidelity_s=validate_duration(args.fidelity_seconds) if args.fidelity_seconds else None, log=log)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        print(format_table(result))
        if out is not None:
            print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- the benchmark


def run_bench(*, duration_s: float, modes=MODES, skip_stock: bool = False, skip_app: bool = False,
              skip_ray: bool = False, models: str = "auto", repeats: int = 1, batch_size: int | None = None,
              study_steps: int | None = None, fidelity_s: float | None = None, skip_processes: bool = False,
              log=print) -> dict:
    """Run every measurement and return the JSON-ready result (see the module docstring).

    ``batch_size``: the study's batch (default :func:`restoration.batch.auto_batch_size`);
    ``study_steps``: token steps timed per study measurement (default: a whole clip);
    ``fidelity_s``: seconds of tokens compared under teacher forcing (default ``duration_s``).
    """
    from .generation import tokens_for_duration

    started = time.time()
    load_start = _loadavg()
    model_env, model_info = resolve_models(models, log=log)
    os.environ.update(model_env)  # the in-process checks load what the subprocesses load
    os.environ.pop("MUSICGEN_QUANTIZE", None)
    _clear_model_caches()
    env = _child_env(model_env)
    tokens = tokens_for_duration(duration_s)

    # "fast_cold" is fast with no prepared weights on disk (its run prepares and keeps them); "fast"
    # runs right after it, as every later process does. They rotate as one unit.
    units = ([] if skip_stock else [["stock"]]) + [["fast_cold", "fast"] if m == "fast" else [m] for m in modes]
    if skip_processes:
        units = []
    kinds = [kind for unit in units for kind in unit]
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="restoration-bench-") as work:
        work_dir = Path(work)
        stock_script = STOCK_SCRIPT
        ours_env = {**env, "RESTORATION_DATA_DIR": str(work_dir / "data")}  # a private prepared-weights cache
        clip_path = None
        for repeat in range(repeats if units else 0):
            order = units[repeat % len(units):] + units[: repeat % len(units)]  # rotate: no kind always first
            for kind in [kind for unit in order for kind in unit]:
                out = work_dir / f"{kind}-{repeat}"
                out.mkdir()
                log(f"[bench] run {repeat + 1}/{repeats}: {kind} ({duration_s:g} s clip)…")
                if kind == "stock":
                    record = _run_stock(stock_script, out, env, model_env, tokens=tokens)
                else:
                    if kind == "fast_cold":
                        shutil.rmtree(work_dir / "data" / "prepared", ignore_errors=True)
                    record = _run_ours(kind.split("_")[0], out, ours_env, duration_s=duration_s)
                    if clip_path is None and (out / "input.wav").is_file():
                        clip_path = out / "input.wav"
                        clip_copy = work_dir / "clip.wav"
                        clip_copy.write_bytes(clip_path.read_bytes())
                        clip_path = clip_copy
                log(f"[bench]   {record['wall_s']:.1f} s, peak RSS {record['peak_rss_mb']:.0f} MB, "
                    f"load {record['load_before'][0]:.1f}→{record['load_after'][0]:.1f}")
                runs[kind].append(record)

        log("[bench] fast vs exact (teacher forcing), every int8 scheme…" if "fast" in modes
            else "[bench] sampling a clip…")
        fidelity, clip = fast_fidelity(duration_s=fidelity_s or duration_s, compare="fast" in modes, log=log)
        if clip_path is not None:
            clip = _read_clip(clip_path)
        log("[bench] study throughput: clips sampled one at a time and together…")
        study = batch_study(modes=modes, duration_s=duration_s, batch_size=batch_size, steps=study_steps,
                                 clip=clip, log=log)
        log("[bench] Demucs segment check…")
        segment = demucs_segment_check(*clip)
        log("[bench] Demucs on a batch of clips…")
        study["demucs_batch"] = demucs_batch_check(*clip, batch=2)
        log("[bench] metrics + plots, warm…")
        figures = metrics_plots_timing(*clip, restored=segment.pop("_restored"))
    app = None
    if not skip_app:
        app_mode = "fast" if "fast" in modes else modes[0]
        log(f"[bench] the app, warm: two clicks of Generate ({app_mode})…")
        app = _measured_or_error(lambda: app_timing(env, duration_s=duration_s, mode=app_mode), log=log)
    log("[bench] start-up…")
    startup = _measured_or_error(lambda: startup_timing(env), log=log)
    # Study throughput on Ray (restoration.cluster): whole `batch` commands, local and on a local Ray.
    study_ray = None
    if not skip_ray:
        from .cluster import study_throughput

        study_ray = _measured_or_error(
            lambda: study_throughput(env=model_env, clips=4, duration_s=duration_s,
                                     mode="fast" if "fast" in modes else modes[0], ray_workers=(2,), log=log),
            log=log)

    summary = {kind: _summarize(records) for kind, records in runs.items()}
    ratios = {}
    if "stock" in summary:
        for kind in kinds[1:]:
            ratios[kind] = round(summary["stock"]["wall_s"] / summary[kind]["wall_s"], 2)
    result = {
        "schema": 1,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": duration_s,
        "prompt": PROMPT,
        "new_tokens": tokens,
        "repeats": repeats,
        "machine": machine_info(load_start),
        "models": model_info,
        "runs": runs,
        "summary": summary,
        "speedup_vs_stock": ratios,
        "targets": _targets(summary, ratios, figures, app, fidelity=fidelity, study=study),
        "fidelity": fidelity,
        "study": study,
        "demucs_segment": segment,
        "metrics_plots": figures,
        "app_warm": app,
        "startup": startup,
        "study_ray": study_ray,
        "bench_wall_s": round(time.time() - started, 1),
    }
    result["machine"]["load_avg_end"] = _loadavg()
    return result


def _measured_or_error(measure, *, log=print):
    """``measure()``, or ``{"error": its first line}`` when it raises: a late section's failure keeps the others."""
    try:
        return measure()
    except Exception as exc:
        from .musicgen.loading import first_line

        log(f"[bench]   failed: {first_line(exc)}")
        return {"error": first_line(exc)}


# --------------------------------------------------------------------------- models


def resolve_models(choice: str, *, log=print) -> tuple[dict, dict]:
    """The model environment for every run, and a description of it.

    ``configured``: the environment as set. ``auto``: the configured models when their
    weights are on this disk (and are not demucs's random test model), else full-size
    random-weight stand-ins, built once into ``<data dir>/bench-models/``.
    """
    from . import generation, separation
    from .paths import data_dir

    env: dict[str, str] = {}
    info: dict[str, dict] = {}
    status = generation.model_status()
    if choice == "configured" or status["available"]:
        env["MUSICGEN_MODEL"] = status["model_id"]
        info["musicgen"] = {"source": "configured" if choice == "configured" else "real weights",
                            "id": status["model_id"], **_musicgen_size(status.get("path"))}
    else:
        folder = data_dir() / "bench-models" / RANDOM_MUSICGEN
        if not (folder / "model.safetensors").is_file():
            from .standins.musicgen import build_musicgen_small_random

            log(f"[bench] {status['model_id']} is not on this disk: building the full-size musicgen-small "
                f"architecture with random weights (587 M parameters, 2.4 GB) into {folder}, once…")
            start = time.perf_counter()
            build_musicgen_small_random(folder)
            log(f"[bench]   built in {time.perf_counter() - start:.0f} s")
        env["MUSICGEN_MODEL"] = str(folder)
        info["musicgen"] = {"source": "random weights, full size (same compute as musicgen-small)",
                            "id": str(folder), **_musicgen_size(str(folder))}

    demucs = separation.model_status()
    real = demucs["available"] and demucs["model"] != separation.UNITTEST_MODEL
    if choice == "configured" or real:
        env["DEMUCS_MODEL"] = demucs["model"]
        if demucs["repo"]:
            env["DEMUCS_REPO"] = demucs["repo"]
        info["demucs"] = {"source": "configured" if choice == "configured" else "real weights",
                          "model": demucs["model"], "repo": demucs["repo"]}
    else:
        repo = data_dir() / "bench-models" / "demucs"
        if not (repo / f"{RANDOM_DEMUCS}.th").is_file():
            from .standins.demucs import build_htdemucs_random

            log(f"[bench] {demucs['model']} weights are not on this disk: building the full-size htdemucs "
                f"architecture with random weights (27 M parameters, 0.1 GB) into {repo}, once…")
            build_htdemucs_random(seed=0, folder=repo, name=RANDOM_DEMUCS)
        env["DEMUCS_MODEL"], env["DEMUCS_REPO"] = RANDOM_DEMUCS, str(repo)
        info["demucs"] = {"source": "random weights, full size (same compute as htdemucs)",
                          "model": RANDOM_DEMUCS, "repo": str(repo)}
    return env, info


def _musicgen_size(path) -> dict:
    """Decoder layers and width, read from ``config.json`` (no loading)."""
    if not path:
        return {}
    config_path = Path(path) if str(path).endswith(".json") else Path(path) / "config.json"
    try:
        decoder = json.loads(config_path.read_text(encoding="utf-8"))["decoder"]
        return {"decoder_layers": decoder["num_hidden_layers"], "decoder_hidden": decoder["hidden_size"]}
    except (OSError, KeyError, ValueError):
        return {}


def _clear_model_caches() -> None:
    from . import generation, separation

    generation.clear_model_cache()
    separation.clear_model_cache()


def _child_env(model_env: dict) -> dict:
    env = dict(os.environ)
    env.pop("MUSICGEN_QUANTIZE", None)  # the mode comes from --mode, not from the environment
    env.pop("DEMUCS_REPO", None)
    env.update(model_env)
    env.setdefault("HF_HUB_OFFLINE", "1")  # no network retries inside a timed process
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]))
    return env


# --------------------------------------------------------------------------- whole processes


def _run_stock(script: Path, out: Path, env: dict, model_env: dict, *, tokens: int) -> dict:
    args = {"musicgen": model_env["MUSICGEN_MODEL"], "demucs": model_env["DEMUCS_MODEL"],
            "demucs_repo": model_env.get("DEMUCS_REPO"), "tokens": tokens, "prompt": PROMPT, "out": str(out)}
    record = run_process([sys.executable, str(script), json.dumps(args)], env=env)
    stages = {}
    for line in record.pop("stdout").splitlines():
        if line.startswith("STOCK-STAGES "):
            stages = json.loads(line[len("STOCK-STAGES "):])
    record["stages_s"] = {k: round(v, 3) for k, v in stages.items()}
    return record


def _run_ours(mode: str, out: Path, env: dict, *, duration_s: float) -> dict:
    command = [sys.executable, "-m", "restoration", "run", "--prompt", PROMPT, "--duration", f"{duration_s:g}",
               "--seed", "0", "--mode", mode, "--out", str(out)]
    record = run_process(command, env=env)
    record.pop("stdout")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    record["stages_s"] = report.get("timings_s", {})
    record["generation_mode"] = report.get("settings", {}).get("generation", {}).get("mode")
    # The run forks a restoration process (restoration.sidecar); wait4's peak is the larger of the two.
    helper = report.get("resources", {}).get("restoration_process_peak_rss_mb")
    if helper is not None:
        record["restoration_process_peak_rss_mb"] = helper
    record["outside_stages_s"] = round(record["wall_s"] - float(record["stages_s"].get("total", 0.0)), 3)
    return record


def run_process(command: list, *, env: dict, timeout_s: float = 3600.0, check: bool = True) -> dict:
    """Run one process to completion: wall time, peak RSS (its own), CPU time and the load around it.

    Peak RSS comes from ``wait4``'s resource usage of that child (Linux: ``ru_maxrss`` in KiB);
    where ``wait4`` is missing, from polling with psutil every 50 ms. A non-zero exit raises
    RuntimeError with the last lines of its stderr; with ``check`` False it is returned instead,
    as ``exit_code`` and ``stderr_tail``.
    """
    load_before = _loadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=str(PACKAGE_ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    streams = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=lambda s=s, k=k: streams[k].append(s.read()), daemon=True)
               for k, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak_mb = usage.ru_maxrss / (1024.0 if sys.platform != "darwin" else 1024.0 ** 2)
            cpu_s = usage.ru_utime + usage.ru_stime
        else:  # pragma: no cover - not on Linux
            peak_mb, cpu_s = _poll_rss(proc), float("nan")
            wall = time.perf_counter() - start
    finally:
        timer.cancel()
    for reader in readers:
        reader.join()
    stdout, stderr = "".join(streams["stdout"]), "".join(streams["stderr"])
    record = {"wall_s": round(wall, 3), "peak_rss_mb": round(peak_mb, 1), "cpu_s": round(cpu_s, 2),
              "load_before": load_before, "load_after": _loadavg(), "stdout": stdout}
    if proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        if check:
            raise RuntimeError(f"{' '.join(map(str, command[:4]))}… exited with {proc.returncode}: {tail}")
        record.update(exit_code=proc.returncode, stderr_tail=tail)
    return record


def _poll_rss(proc) -> float:  # pragma: no cover - fallback without wait4
    import psutil

    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    return peak / 1024.0 ** 2


def _summarize(records: list[dict]) -> dict:
    """Medians over repeats: wall, peak RSS, CPU time, and each stage."""
    keys = ["wall_s", "peak_rss_mb", "cpu_s"]
    if all("restoration_process_peak_rss_mb" in r for r in records):
        keys.append("restoration_process_peak_rss_mb")
    summary = {key: round(statistics.median(r[key] for r in records), 3) for key in keys}
    stages = {}
    for name in records[0].get("stages_s", {}):
        values = [r["stages_s"][name] for r in records if name in r.get("stages_s", {})]
        stages[name] = round(statistics.median(values), 3)
    summary["stages_s"] = stages
    summary["wall_s_all"] = [r["wall_s"] for r in records]
    return summary


def _targets(summary: dict, ratios: dict, figures: dict, app: dict | None = None, *, fidelity: dict | None = None,
             study: dict | None = None) -> dict:
    checks = {}
    if fidelity and "top1_agreement" in fidelity:
        agreement, tv = fidelity["top1_agreement"], fidelity["mean_total_variation"]
        checks["fast_agreement"] = {"target": f"≥ {TARGETS['fast_agreement_min']}", "measured": agreement,
                                    "met": agreement >= TARGETS["fast_agreement_min"]}
        checks["fast_total_variation"] = {"target": f"≤ {TARGETS['fast_total_variation_max']}", "measured": tv,
                                          "met": tv <= TARGETS["fast_total_variation_max"]}
    if "fast" in summary and "generating" in summary["fast"]["stages_s"]:
        tokens = (study or {}).get("tokens_per_clip")
        if tokens:
            ms = round(1000 * summary["fast"]["stages_s"]["generating"] / tokens, 1)
            checks["fast_ms_per_token"] = {"target": f"≤ {TARGETS['fast_ms_per_token_max']:g} ms (whole process's "
                                                     "generating stage, EnCodec included)",
                                           "measured": ms, "met": ms <= TARGETS["fast_ms_per_token_max"]}
    for mode, entry in ((study or {}).get("modes") or {}).items():
        if "batch_speedup" in entry:
            checks[f"batch_speedup_{mode}"] = {
                "target": f"≥ {TARGETS['batch_speedup_min']:g}× clips/hour at batch {study['batch_size']} vs 1",
                "measured": entry["batch_speedup"], "met": entry["batch_speedup"] >= TARGETS["batch_speedup_min"]}
    if "exact" in ratios:
        checks["exact_speedup"] = {"target": f"≥ {TARGETS['exact_speedup_min']}×", "measured": ratios["exact"],
                                   "met": ratios["exact"] >= TARGETS["exact_speedup_min"]}
    if "fast" in ratios:
        checks["fast_speedup"] = {"target": f"≥ {TARGETS['fast_speedup_min']}×", "measured": ratios["fast"],
                                  "met": ratios["fast"] >= TARGETS["fast_speedup_min"]}
    if "fast" in summary:
        wall = summary["fast"]["wall_s"]
        checks["fast_wall"] = {"target": f"≤ {TARGETS['fast_wall_max_s']:g} s", "measured": wall,
                               "met": wall <= TARGETS["fast_wall_max_s"]}
    warm = figures["warm_s"]
    checks["metrics_plots_warm"] = {"target": f"≤ {TARGETS['metrics_plots_max_s']:g} s", "measured": warm,
                                    "met": warm <= TARGETS["metrics_plots_max_s"]}
    if app and app.get("mode") == "fast":  # the slower of the two clicks
        results = max(click["results_s"] for click in app["clicks"])
        first = max(click["first_sound_s"] for click in app["clicks"])
        checks["app_fast_results"] = {"target": f"≤ {TARGETS['app_fast_results_max_s']:g} s", "measured": results,
                                      "met": results <= TARGETS["app_fast_results_max_s"]}
        checks["app_first_sound"] = {"target": f"≤ {TARGETS['app_first_sound_max_s']:g} s", "measured": first,
                                     "met": first <= TARGETS["app_first_sound_max_s"]}
    return checks


# --------------------------------------------------------------------------- in-process checks


def fast_fidelity(*, duration_s: float, compare: bool = True, log=print) -> tuple[dict, tuple]:
    """Teacher forcing: how close each int8 decoder's next-token choices stay to fp32's.

    The exact lean loop samples a clip (seed 0, guidance 3, top-k 250) and keeps each step's
    logits; each int8 decoder (every scheme of :data:`restoration.decoding.INT8_SCHEMES`,
    ``fast`` being the default one) is then fed the same tokens. Compared are the guided logits
    ``uncond + 3 · (cond − uncond)`` that sampling draws from, at every position the delay
    pattern lets the model choose: top-1 agreement, cosine, and the total variation distance
    between the top-k sampling distributions. Each scheme's teacher-forced ms per token (on the
    process's threads, as the token loop uses them on an idle machine) gives the trade-off
    curve, agreement against speed. The top-level fields describe ``fast``'s scheme. Returns
    the report and the exact clip ``(audio, rate)``.
    """
    import gc

    import torch

    from . import decoding, generation
    from .musicgen.streaming import decode_codes, to_mono

    exact = generation.load_musicgen(mode="exact")
    if exact.decoder is None:
        audio, rate = generation.generate(PROMPT, settings=generation.GenerationSettings(duration_s=duration_s))
        return {"skipped": "the lean token loop does not support this model"}, (audio, rate)
    inputs = exact.processor(text=[PROMPT], padding=True, return_tensors="pt").to(exact.device)
    steps = generation.tokens_for_duration(duration_s, frame_rate=exact.frame_rate,
                                           num_codebooks=exact.delay_frames + 1)
    scale = 3.0
    exact_logits: list = []
    last: dict = {}
    start = time.perf_counter()
    codes = exact.decoder.sample(
        inputs["input_ids"], inputs["attention_mask"], steps=steps, guidance_scale=scale, temperature=1.0,
        top_k=250, generator=torch.Generator(device=exact.device).manual_seed(0),
        on_step=lambda tokens: last.__setitem__("tokens", tokens),
        on_logits=lambda step, logits: exact_logits.append(logits),
    )
    exact_s = time.perf_counter() - start
    with torch.inference_mode():
        audio = to_mono(decode_codes(exact, codes).float().cpu().numpy())
    audio = audio[:, : int(round(duration_s * exact.sample_rate))]
    clip = (audio, exact.sample_rate)
    if not compare:
        return {"skipped": "fast mode not benchmarked"}, clip

    tokens = last["tokens"]
    exact_stack = torch.stack(exact_logits)  # (steps, rows, codebooks, vocab)
    pattern, _, _ = exact.decoder.delay_pattern(steps)
    chosen = (pattern[:, 1:] == -1).T  # (steps, codebooks): positions where the model picks the token

    def guided(logits):
        return logits[:, 1] + (logits[:, 0] - logits[:, 1]) * scale

    def sampling_distribution(scores):  # what top-k 250 sampling draws from
        k = min(250, scores.shape[-1])
        kept = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -float("inf"))
        return torch.softmax(kept, dim=-1)

    ge = guided(exact_stack)
    exact_dist = sampling_distribution(ge)
    del exact_logits, exact_stack

    def measure(decoder, scheme: str) -> dict:
        start = time.perf_counter()
        fast_logits = decoder.logits_for(inputs["input_ids"], inputs["attention_mask"], tokens, guidance_scale=scale)
        fast_s = time.perf_counter() - start
        gf = guided(fast_logits.float())
        agree = (ge.argmax(-1) == gf.argmax(-1)) & chosen
        cosine = torch.nn.functional.cosine_similarity(ge, gf, dim=-1)
        total_variation = 0.5 * (exact_dist - sampling_distribution(gf)).abs().sum(-1)
        overall = float(agree.sum() / chosen.sum())
        return {
            "scheme": scheme,
            "top1_agreement": round(overall, 4),
            "top1_agreement_per_codebook": [round(float(agree[:, k].sum() / chosen[:, k].sum()), 4)
                                            for k in range(chosen.shape[1])],
            "mean_cosine": round(float(cosine[chosen].mean()), 5),
            "min_cosine": round(float(cosine[chosen].min()), 5),
            "mean_total_variation": round(float(total_variation[chosen].mean()), 5),
            "teacher_forced_ms_per_token": round(1000 * fast_s / steps, 1),
        }

    points = []
    for scheme in [s for s in decoding.INT8_SCHEMES if s != decoding.DEFAULT_INT8_SCHEME]:
        log(f"[bench]   int8 scheme {scheme!r}…")
        decoder = _int8_decoder(scheme)
        points.append(measure(decoder, scheme))
        del decoder
        gc.collect()
    log(f"[bench]   int8 scheme {decoding.DEFAULT_INT8_SCHEME!r} (fast)…")
    fast = generation.load_musicgen(mode="fast")
    default = measure(fast.decoder, decoding.DEFAULT_INT8_SCHEME)
    points.insert(0, default)
    report = {
        "method": "teacher forcing on the token sequence exact mode sampled (seed 0, guidance 3, top-k 250); "
                  "argmax and cosine of the guided logits at every delay-pattern position the model chooses; "
                  "total variation distance between the top-k sampling distributions (0 = same, 1 = disjoint); "
                  "ms per token: teacher forcing on all the process's threads (machine.torch_threads)",
        "steps": steps,
        "positions": int(chosen.sum()),
        **{k: v for k, v in default.items() if k != "teacher_forced_ms_per_token"},
        "threshold": DRIFT_AGREEMENT,
        "drifts": default["top1_agreement"] < DRIFT_AGREEMENT,
        "exact_loop_ms_per_token": round(1000 * exact_s / steps, 1),
        "fast_teacher_forced_ms_per_token": default["teacher_forced_ms_per_token"],
        "schemes": points,
    }
    return report, clip


def _int8_decoder(scheme: str):
    """A fresh copy of the configured MusicGen, its decoder int8 with ``scheme``, as a lean decoder."""
    import torch
    from transformers import MusicgenForConditionalGeneration

    from . import decoding, generation
    from .musicgen.threads import torch_threads

    from .musicgen.loading import quiet_transformers

    with torch_threads(1), quiet_transformers():
        model = MusicgenForConditionalGeneration.from_pretrained(generation.current_model_id(), dtype=torch.float32)
        model.eval()
        fused = decoding.quantize_int8(model, scheme=scheme)
        return decoding.prepare(model, fused_int8=fused)


def batch_study(*, modes, duration_s: float, batch_size: int | None, steps: int | None, clip: tuple,
                     log=print) -> dict:
    """Clips per hour of a study (``batch``), one clip at a time against ``batch_size`` clips together.

    Per mode, the lean loop samples 1 clip, then ``batch_size`` clips with distinct prompts and
    seeds together (:meth:`restoration.decoding.LeanDecoder.sample_batch`, the thread policy of
    ``batch``), for ``steps`` token steps (default: a whole clip). A clip then costs its share
    of the sampling, ``step time × tokens per clip / clips``, plus what each clip pays alone:
    EnCodec decoding (timed on one clip, warm) and the rest of the pipeline,
    :func:`restoration.pipeline.run_generated` and writing its folder (Demucs, gating,
    metrics, figures; timed on ``clip``, the same for every mode, warm: the second of two
    runs, as every clip after a study's first; the first, with the one-off first-call
    costs, is ``first_finish_s``). ``clips_per_hour`` =
    3600 / that. Weight packing for a new row count is paid once per study and left out.
    """
    import torch

    from . import generation
    from .batch import auto_batch_size
    from .device import pick_device
    from .musicgen.streaming import decode_codes
    from .musicgen.threads import LoopThreads
    from .outputs import write_report
    from .pipeline import run_generated
    from .settings import GenerationSettings

    size = int(batch_size or auto_batch_size(pick_device()))
    tokens = generation.tokens_for_duration(duration_s)
    timed_steps = min(int(steps or tokens), tokens)
    audio, rate = clip
    with tempfile.TemporaryDirectory(prefix="restoration-bench-study-") as tmp:
        finishes = []  # the first clip of a study also pays the one-off first-call costs; the second is warm
        for attempt in ("first", "warm"):
            start = time.perf_counter()
            report = run_generated(audio, rate, prompt=PROMPT, generation=GenerationSettings(duration_s=duration_s))
            write_report(report, Path(tmp) / attempt)
            finishes.append(time.perf_counter() - start)
        first_finish_s, finish_s = finishes
    result = {
        "method": "sampling timed over the steps below at 1 clip and at the batch size, per clip: step time × "
                  "tokens / clips; plus EnCodec decoding and the rest of the pipeline (run_generated + writing "
                  "the folder), each timed warm; clips_per_hour = 3600 / the sum",
        "duration_s": duration_s, "tokens_per_clip": tokens, "timed_steps": timed_steps, "batch_size": size,
        "finish_s": round(finish_s, 3), "first_finish_s": round(first_finish_s, 3), "modes": {},
    }
    for mode in modes:
        bundle = generation.load_musicgen(mode=mode)
        if bundle.decoder is None:
            result["modes"][mode] = {"skipped": "the lean token loop does not support this model"}
            continue
        rows = {}
        decode_s = None
        for clips in (1, size) if size > 1 else (1,):
            prompts = []
            for i in range(clips):
                inputs = bundle.processor(text=[f"{PROMPT}, take {i + 1}"], padding=True, return_tensors="pt")
                prompts.append((inputs["input_ids"], inputs["attention_mask"]))
            generators = [torch.Generator().manual_seed(i) for i in range(clips)]
            bundle.decoder.prepare_rows(2 * clips)
            threads = LoopThreads(bundle)
            log(f"[bench]   {mode}: {clips} clip(s) together, {timed_steps} steps…")
            start = time.perf_counter()
            with threads:
                codes = bundle.decoder.sample_batch(prompts, steps=timed_steps, guidance_scale=3.0, temperature=1.0,
                                                    top_k=250, generators=generators,
                                                    on_step=lambda tokens: threads.step())
            step_s = (time.perf_counter() - start) / timed_steps
            if decode_s is None:
                full = torch.zeros((1, 1, bundle.num_codebooks, tokens - bundle.delay_frames), dtype=torch.long)
                full[..., : codes[0].shape[-1]] = codes[0]
                with torch.inference_mode():
                    decode_codes(bundle, full)  # warm
                    start = time.perf_counter()
                    decode_codes(bundle, full)
                    decode_s = time.perf_counter() - start
            clip_s = step_s * tokens / clips + decode_s + finish_s
            rows[str(clips)] = {"clips": clips, "step_ms": round(1000 * step_s, 1),
                                "sampling_s_per_clip": round(step_s * tokens / clips, 2),
                                "clip_s": round(clip_s, 2), "clips_per_hour": round(3600 / clip_s, 1),
                                "load_avg": _loadavg()}
            log(f"[bench]     {1000 * step_s:.0f} ms/step → {rows[str(clips)]['clips_per_hour']:.0f} clips/hour")
        entry = {"decode_s": round(decode_s, 3), "by_batch": rows}
        if size > 1:
            entry["batch_speedup"] = round(rows[str(size)]["clips_per_hour"] / rows["1"]["clips_per_hour"], 2)
            entry["sampling_speedup"] = round(rows["1"]["sampling_s_per_clip"] / rows[str(size)]["sampling_s_per_clip"],
                                              2)
        result["modes"][mode] = entry
    return result


def demucs_batch_check(audio, sample_rate: int, *, batch: int = 2) -> dict:
    """Demucs on ``batch`` clips at once against one at a time: one training segment each, warm, timed.

    Says whether ``batch`` should separate clips together. The model is called directly on
    ``(batch, channels, frames)`` inputs built from ``audio`` (resampled to the model's rate,
    its channels), one segment or the clip long, whichever is shorter.
    """
    import torch

    from . import separation

    model = separation.load_demucs()
    model = getattr(model, "models", [model])[0]
    mono = torch.as_tensor(audio, dtype=torch.float32).mean(0)
    mono = torch.nn.functional.interpolate(mono[None, None], scale_factor=model.samplerate / sample_rate,
                                           mode="linear")[0, 0]
    # One training segment, or the clip if shorter (an HT model pads a shorter input to its segment).
    length = min(int(round(float(getattr(model, "segment", 7.8)) * model.samplerate)), int(mono.shape[-1]))
    segment = torch.zeros(length)
    segment[: min(length, mono.shape[-1])] = mono[:length]
    one = segment.expand(model.audio_channels, -1)[None].contiguous()
    many = one.expand(batch, -1, -1).contiguous()

    def timed(fn):
        fn()  # warm
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    with torch.inference_mode():
        alone = timed(lambda: [model(one) for _ in range(batch)])
        together = timed(lambda: model(many))
    faster = together < alone * 0.95
    return {"batch": batch, "segment_s": round(length / model.samplerate, 2), "one_at_a_time_s": round(alone, 3),
            "together_s": round(together, 3), "speedup": round(alone / together, 2),
            "verdict": (f"{batch} clips together are faster: worth batching" if faster else
                        f"{batch} clips together are not faster than one at a time here: batch separates "
                        "each clip alone")}


def _read_clip(path: Path) -> tuple:
    from .audio import read_audio

    return read_audio(path)


def demucs_segment_check(audio, sample_rate: int) -> dict:
    """Separate the clip with the model's own segment and shorter ones: time and largest difference.

    HT Demucs pads every chunk to its training segment inside ``forward``, so a segment
    shorter than the clip means more chunks, each still a full segment of compute, and
    chunk borders the model was not trained on.
    """
    import numpy as np

    from . import separation
    from .settings import DemucsSettings

    model = separation.load_demucs()
    limit = separation._max_segment_s(model)
    clip_s = audio.shape[-1] / sample_rate
    settings = DemucsSettings()

    def timed(segment_s):
        times, out = [], None
        for _ in range(2):  # the first call also pays one-off costs; the second is what a warm app pays
            start = time.perf_counter()
            out = separation.restore(audio, sample_rate, settings=settings, segment_s=segment_s)
            times.append(time.perf_counter() - start)
        return out.restored, times

    reference, ref_times = timed(None)
    rows = [{"segment_s": None if limit == float("inf") else round(limit, 3), "label": "the model's own",
             "first_s": round(ref_times[0], 3), "warm_s": round(ref_times[1], 3),
             "max_abs_diff": 0.0, "relative_rms_diff": 0.0}]
    ref_rms = float(np.sqrt(np.mean(reference ** 2))) or 1.0
    candidates = sorted({round(min(clip_s, limit), 2), round(min(clip_s, limit) / 2, 2)})
    for segment_s in candidates:
        if segment_s <= 0 or (limit != float("inf") and abs(segment_s - limit) < 1e-6):
            continue
        restored, times = timed(segment_s)
        diff = restored - reference
        rows.append({"segment_s": segment_s, "label": "shorter" if segment_s < limit else "given", "first_s": round(times[0], 3),
                     "warm_s": round(times[1], 3), "max_abs_diff": round(float(np.abs(diff).max()), 5),
                     "relative_rms_diff": round(float(np.sqrt(np.mean(diff ** 2))) / ref_rms, 4)})
    shorter = [r for r in rows[1:]]
    faster_same = [r for r in shorter if r["warm_s"] < rows[0]["warm_s"] and r["relative_rms_diff"] < 1e-3]
    verdict = (
        f"a {faster_same[0]['segment_s']} s segment gives the same answer faster" if faster_same else
        "no shorter segment is both faster and the same: keep the model's segment "
        "(HT models pad every chunk to it, so shorter chunks add compute and change the output)"
    )
    return {"model": separation.model_name(), "clip_s": round(clip_s, 3), "rows": rows, "verdict": verdict,
            "_restored": reference}


def metrics_plots_timing(audio, sample_rate: int, *, restored, repeats: int = 5) -> dict:
    """Metrics and figures for the three versions, warm (after ``plots.warm_up``): median of ``repeats``."""
    import numpy as np

    from . import plots
    from .gating import spectral_gate
    from .metrics import measure_versions
    from .outputs import render_figures
    from .report import Report
    from .versions import DEMUCS, GATING, INPUT

    versions = {INPUT: audio, DEMUCS: np.asarray(restored, dtype=np.float32), GATING: spectral_gate(audio, sample_rate)}
    start = time.perf_counter()
    plots.warm_up(duration_s=audio.shape[-1] / sample_rate, sample_rate=sample_rate)
    warm_up_s = time.perf_counter() - start
    metric_times, figure_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            table = measure_versions(versions, sample_rate)
            middle = time.perf_counter()
            report = Report(sample_rate=sample_rate, versions=versions, residual=None, listening={}, loudness={},
                            metrics=table, source={}, settings={})
            render_figures(report, tmp)
            end = time.perf_counter()
            metric_times.append(middle - start)
            figure_times.append(end - middle)
    totals = [m + f for m, f in zip(metric_times, figure_times)]
    return {"versions": list(versions), "repeats": repeats, "warm_up_s": round(warm_up_s, 3),
            "metrics_s": round(statistics.median(metric_times), 3), "figures_s": round(statistics.median(figure_times), 3),
            "warm_s": round(statistics.median(totals), 3), "target_s": TARGETS["metrics_plots_max_s"]}


def app_timing(env: dict, *, duration_s: float, mode: str, clicks: int = 2) -> dict:
    """:func:`app_clicks` in a fresh process (the app's state after start), with a private data folder."""
    with tempfile.TemporaryDirectory(prefix="restoration-bench-app-") as data:
        child_env = {**env, "RESTORATION_DATA_DIR": data}
        code = ("import json; from restoration.bench import app_clicks; "
                f"print('APP-TIMING ' + json.dumps(app_clicks(duration_s={duration_s!r}, mode={mode!r}, "
                f"clicks={int(clicks)})))")
        record = run_process([sys.executable, "-c", code], env=child_env, check=False)
    for line in record.pop("stdout").splitlines():
        if line.startswith("APP-TIMING "):
            result = {**json.loads(line[len("APP-TIMING "):]), "peak_rss_mb": record["peak_rss_mb"]}
            if "exit_code" in record:  # the timings were printed; the process failed afterwards, on its way out
                result["exit_after_timings"] = {"exit_code": record["exit_code"], "stderr_tail": record["stderr_tail"]}
            return result
    raise RuntimeError(f"the app timing process printed no result (exit status {record.get('exit_code', 0)}: "
                       f"{record.get('stderr_tail', '')})")


def app_clicks(*, duration_s: float, mode: str, clicks: int = 2) -> dict:
    """The app's warm-up, then ``clicks`` Generate requests (new seeds, so no cache hit), timed.

    Each click goes through :func:`restoration.app.jobs.stream_run` as the button's handler
    does: ``first_sound_s`` is when the first streamed chunk of audio was ready for the Input
    player (a clip shorter than one chunk streams none: then the results are the first sound),
    ``results_s`` when the full result (every version, metrics, figures, zip) was.
    """
    from .app.jobs import stream_run
    from .app.requests import prompt_request
    from .warmup import warm_up

    start = time.perf_counter()
    warm = warm_up(duration_s=duration_s, musicgen=True, mode=mode)
    warm_s = time.perf_counter() - start
    rows = []
    for click in range(clicks):
        request = prompt_request(PROMPT, duration=duration_s, seed=1000 + click, mode=mode)
        first = done = None
        start = time.perf_counter()
        for event in stream_run(request):
            if event.kind == "chunk" and first is None:
                first = time.perf_counter() - start
            elif event.kind == "error":
                raise event.error
            elif event.kind == "done":
                done = time.perf_counter() - start
        rows.append({"click": click + 1, "first_sound_s": round(first if first is not None else done, 3),
                     "results_s": round(done, 3)})
    return {"mode": mode, "duration_s": duration_s, "warm_up_s": round(warm_s, 3), "warm_up_steps_s": warm,
            "clicks": rows}


def startup_timing(env: dict, repeats: int = 3) -> dict:
    """Wall time of ``python -m restoration --help`` (interpreter, CLI and its command groups), median."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "restoration", "--help"], env=env, cwd=str(PACKAGE_ROOT),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    bare = time.perf_counter() - start
    return {"cli_help_s": round(statistics.median(times), 3), "bare_python_s": round(bare, 3)}


# --------------------------------------------------------------------------- machine and output


def machine_info(load_start=None) -> dict:
    import torch

    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    from .device import pick_device

    device = pick_device()
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_model": model_name,
        "memory_gb": memory_gb,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_avg_start": load_start or _loadavg(),
    }
    for name in ("transformers", "demucs"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - reporting only
            info[name] = None
    return info


def _loadavg() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Unix
        return [None, None, None]


def format_table(result: dict) -> str:
    """The human-readable summary: whole processes, speed-ups, targets, fidelity, Demucs, plots."""
    summary, lines = result["summary"], []
    machine = result["machine"]
    lines.append(f"Benchmark: {result['duration_s']:g} s clip, {result['new_tokens']} tokens, "
                 f"{result['repeats']} run(s) each (medians) — {machine['cpu_count']} × {machine['cpu_model']}, "
                 f"{machine['device']}, load average {machine['load_avg_start'][0]} → {machine['load_avg_end'][0]}")
    lines.append(f"Models: MusicGen {result['models']['musicgen']['source']}; "
                 f"Demucs {result['models']['demucs']['source']}")
    kinds = list(summary)
    lines.append("")
    lines.append(f"{'whole process':28s}" + "".join(f"{k:>12s}" for k in kinds))
    lines.append(f"{'  wall (s)':28s}" + "".join(f"{summary[k]['wall_s']:12.1f}" for k in kinds))
    lines.append(f"{'  CPU time (s)':28s}" + "".join(f"{summary[k]['cpu_s']:12.1f}" for k in kinds))
    lines.append(f"{'  peak RSS (MB)':28s}" + "".join(f"{summary[k]['peak_rss_mb']:12.0f}" for k in kinds))
    if any("restoration_process_peak_rss_mb" in summary[k] for k in kinds):
        lines.append(f"{'  + restoration process (MB)':28s}" + "".join(
            f"{summary[k]['restoration_process_peak_rss_mb']:12.0f}" if "restoration_process_peak_rss_mb" in summary[k]
            else f"{'—':>12s}" for k in kinds))
    if result["speedup_vs_stock"]:
        lines.append(f"{'  stock / this':28s}" + "".join(
            f"{(str(result['speedup_vs_stock'][k]) + '×') if k in result['speedup_vs_stock'] else '—':>12s}"
            for k in kinds))
    for kind in kinds:
        lines.append(f"stages, {kind}:")
        for name, value in summary[kind]["stages_s"].items():
            lines.append(f"  {name:34s}{value:9.2f} s")
    lines.append("")
    for name, check in result["targets"].items():
        lines.append(f"target {name}: {check['target']}, measured {check['measured']} → "
                     f"{'met' if check['met'] else 'NOT met'}")
    fidelity = result["fidelity"]
    if "top1_agreement" in fidelity:
        state = (f"DRIFTS: agreement below {fidelity['threshold']}" if fidelity["drifts"]
                 else f"within the {fidelity['threshold']} agreement threshold")
        lines.append(f"fast vs exact (teacher forcing, {fidelity['positions']} choices): top-1 agreement "
                     f"{fidelity['top1_agreement']:.3f} (per codebook {fidelity['top1_agreement_per_codebook']}), "
                     f"mean cosine {fidelity['mean_cosine']:.4f}, sampling-distribution total variation "
                     f"{fidelity.get('mean_total_variation', float('nan')):.3f} — {state}")
    for point in fidelity.get("schemes", []):
        lines.append(f"  int8 scheme {point['scheme']:8s} agreement {point['top1_agreement']:.3f}, TV "
                     f"{point['mean_total_variation']:.3f}, {point['teacher_forced_ms_per_token']:.0f} ms/token "
                     "(teacher forcing)")
    study = result.get("study")
    if study:
        lines.append(f"study throughput ({study['duration_s']:g} s clips, batch {study['batch_size']}, "
                     f"{study['timed_steps']} steps timed; rest of the pipeline {study['finish_s']:.1f} s a clip):")
        for mode, entry in study["modes"].items():
            if "by_batch" not in entry:
                lines.append(f"  {mode}: {entry.get('skipped')}")
                continue
            cells = "; ".join(f"{row['clips']} at a time: {row['step_ms']:.0f} ms/step, {row['clips_per_hour']:.0f} "
                              f"clips/hour" for row in entry["by_batch"].values())
            lines.append(f"  {mode}: {cells}" + (f" → {entry['batch_speedup']}×" if "batch_speedup" in entry else ""))
        if study.get("demucs_batch"):
            lines.append(f"  Demucs: {study['demucs_batch']['verdict']} ({study['demucs_batch']['speedup']}×)")
    segment = result["demucs_segment"]
    lines.append(f"Demucs segment ({segment['model']}, {segment['clip_s']:g} s clip):")
    for row in segment["rows"]:
        lines.append(f"  segment {row['segment_s']} s ({row['label']}): first {row['first_s']:.2f} s, warm "
                     f"{row['warm_s']:.2f} s, max |diff| {row['max_abs_diff']:.4g}, rel. RMS diff "
                     f"{row['relative_rms_diff']:.3g}")
    lines.append(f"  → {segment['verdict']}")
    figures = result["metrics_plots"]
    lines.append(f"metrics + plots, 3 versions, warm: {figures['warm_s']:.3f} s (metrics {figures['metrics_s']:.3f}, "
                 f"figures {figures['figures_s']:.3f}; one-off warm-up {figures['warm_up_s']:.2f} s)")
    app = result.get("app_warm")
    if app and "error" in app:
        lines.append(f"app, warm: failed: {app['error']}")
    elif app:
        clicks = "; ".join(f"click {c['click']}: first sound {c['first_sound_s']:.1f} s, results {c['results_s']:.1f} s"
                           for c in app["clicks"])
        lines.append(f"app, warm ({app['mode']}, {app['duration_s']:g} s clip, after its {app['warm_up_s']:.1f} s "
                     f"warm-up): {clicks}")
        if "exit_after_timings" in app:
            lines.append(f"  (the app process then exited with status {app['exit_after_timings']['exit_code']}: "
                         f"{app['exit_after_timings']['stderr_tail']})")
    startup = result["startup"]
    lines.append(f"start-up: failed: {startup['error']}" if "error" in startup else
                 f"start-up: `python -m restoration --help` {startup['cli_help_s']:.2f} s "
                 f"(bare interpreter {startup['bare_python_s']:.2f} s)")
    study = result.get("study_ray")
    if study and "error" in study:
        lines.append(f"study on Ray: failed: {study['error']}")
    elif study:
        runs = "; ".join(f"{name.replace('_', ' ')}: {run['clips_per_hour']:.0f} clips/hour ({run['wall_s']:.0f} s, "
                         f"median clip {run['median_clip_s']:.1f} s)" for name, run in study["runs"].items())
        lines.append(f"study of {study['clips']} clips × {study['duration_s']:g} s ({study['mode']}), whole `batch` "
                     f"commands: {runs}")
    return "\n".join(lines)

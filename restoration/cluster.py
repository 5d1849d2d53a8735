"""Studies on a Ray cluster: ``batch --ray`` and ``groundtruth --ray``.

The clip is the unit of work. The driver (the process that runs the command) plans the clips,
skips those whose folder is complete, and hands the rest to a pool of Ray actors, the *workers*.
Each worker loads its models once, then runs one clip at a time with the same function as the
local loop (for ``batch``, :func:`restoration.batch.run_job`) and writes the clip's folder all or
nothing (:func:`restoration.outputs.write_report` stages it beside the folder, then moves it in).
The output folder must therefore be on storage every node sees. The driver shows a bar over
clips and, at the end, writes the same tables and plots as a local run, with the same functions.

Resources: one worker per GPU (``num_gpus=1``) where the cluster has GPUs; otherwise one worker
per ``cpus_per_worker`` CPUs (default 1: on CPUs, processes side by side beat threads in one
process for this batch-1 decoding). Ray gives a CPU worker as many torch threads as CPUs.

Faults, and why the retries are set as they are:

- A clip that raises (bad model output, any exception) is caught in the worker and recorded with
  its error in ``failures.csv``; the others go on. It is not retried: the same job with the same
  seed and settings fails the same way again.
- A worker *process* that dies (out of memory, a node lost or preempted) is restarted by Ray up
  to :data:`MAX_RESTARTS` times over the study, reloading its models, and the clip it was running
  is retried once (:data:`MAX_TASK_RETRIES`): such a death is usually not the clip's fault. A clip
  that kills its worker twice is recorded as failed. A worker out of restarts leaves the pool and
  the others go on.
- Ctrl-C stops the workers (``ray.kill``), waits until they are gone, removes any staging folder
  they left, and exits with status 130. A lost driver (killed, its machine gone) takes its
  workers with it (Ray ends the actors of a dead owner); the next run removes staging folders
  left behind before it starts. Either way no clip folder is half written, and the next run
  redoes only the clips without a complete folder.

One run at a time per output folder: a second run on the same folder would redo the same
clips and would remove the first one's staging folders.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInputError, RestorationError

#: How often Ray restarts one worker process over a study (each restart reloads its models).
MAX_RESTARTS = 3
#: How often Ray reruns the clip a worker was running when its process died.
MAX_TASK_RETRIES = 1
#: Environment variables the driver forwards to every worker: where the models come from
#: (``MUSICGEN_MODEL``, ``DEMUCS_MODEL``, ``DEMUCS_REPO``, the Hub cache and offline switches,
#: torch's cache), the generation mode and the debug switch.
FORWARDED_ENV_PREFIXES = ("MUSICGEN_", "DEMUCS_", "HF_", "TRANSFORMERS_", "TORCH_HOME", "XDG_CACHE_HOME",
                          "RESTORATION_")
#: Variables holding a local path, made absolute before they travel (a worker's working folder differs).
PATH_ENV = ("MUSICGEN_MODEL", "DEMUCS_REPO", "HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME",
            "RESTORATION_DATA_DIR")
FAILURES_CSV = "failures.csv"
# write_report stages a clip as "<parent>/.<name>.partial-XXXX" and moves it in when complete.
_STAGING_GLOB = ".*.partial-*"


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how wide a study runs on Ray.

    ``address``: a running cluster (``host:port`` of its head, ``ray://host:10001``, or
    ``auto`` for one started on this machine with ``ray start``); None or ``""`` takes
    ``RAY_ADDRESS`` and, when that is unset too, starts a local Ray on this machine's cores.
    ``workers``: how many workers; None = one per GPU, or on a cluster without GPUs, its
    CPUs divided by ``cpus_per_worker``. ``cpus_per_worker``: CPUs (and torch threads) each
    worker holds.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0

    def __post_init__(self):
        if self.workers is not None and int(self.workers) < 1:
            raise BadInputError(f"--ray-workers must be ≥ 1, got {self.workers}")
        if not float(self.cpus_per_worker) > 0:
            raise BadInputError(f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}")

    def resolved_address(self) -> tuple[str | None, str]:
        """(address or None for a local Ray, where it came from: ``--ray``, ``RAY_ADDRESS`` or ``local``)."""
        if self.address:
            return self.address, "--ray"
        env = os.environ.get("RAY_ADDRESS", "").strip()
        if env:
            return env, "RAY_ADDRESS"
        return None, "local"


# --------------------------------------------------------------------------- connecting


def _import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise BadInputError("--ray needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def _check_reachable(address: str, source: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when nothing listens at ``address`` (ray.init would retry for a minute)."""
    if address in ("auto", "local"):
        return
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise BadInputError(f"Ray address {address!r} ({source}) is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BadInputError(
            f"no Ray cluster reachable at {address} ({source}): {exc.strerror or exc}; start one with "
            "`ray start --head`, or give --ray no address for a local Ray"
        ) from None


@contextmanager
def connect(cluster: ClusterSettings = ClusterSettings(), *, num_cpus: int | None = None):
    """Connect to the cluster (or start a local Ray with ``num_cpus``, default all) for the block.

    Yields a short description of where the study runs. The connection ships this package to
    the workers (:func:`runtime_env`). An already connected process (a notebook, the tests)
    keeps its connection, and its workers must import this package already (same machine, or
    connected through this function). A connection made here is shut down at the end.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield "the connected Ray"
        return
    import logging

    address, source = cluster.resolved_address()
    debug = os.environ.get("RESTORATION_DEBUG") == "1"
    options = dict(logging_level=logging.INFO if debug else logging.ERROR, log_to_driver=debug)
    if address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        num_cpus = int(num_cpus or os.cpu_count() or 1)
        options.update(num_cpus=num_cpus, include_dashboard=False)
        where = f"a local Ray ({num_cpus} CPUs)"
    else:
        _check_reachable(address, source)
        where = f"Ray at {address} ({source})"
    try:
        # A job from `ray job submit --working-dir .` ships the code already (and Ray refuses to
        # merge a second py_modules into its runtime environment).
        in_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
        ray.init(address=address, runtime_env=None if in_job else runtime_env(), **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"cannot connect to {where}: {first}") from None
    try:
        yield where
    finally:
        ray.shutdown()


def worker_plan(resources: dict, cluster: ClusterSettings, *, clips: int) -> tuple[int, dict]:
    """(number of workers, Ray actor options) for ``clips`` units of work on a cluster with ``resources``.

    One worker per GPU with ``num_gpus=1`` where there are GPUs; otherwise one per
    ``cpus_per_worker`` CPUs. Never more workers than units (clips, or groups of clips sampled
    together), never fewer than one.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    options = {"num_cpus": float(cluster.cpus_per_worker)}
    if gpus > 0:
        options["num_gpus"] = 1
        fit = gpus
    else:
        fit = max(1, int(cpus // float(cluster.cpus_per_worker)))
    count = int(cluster.workers) if cluster.workers is not None else fit
    return max(1, min(count, max(clips, 1))), options


def _worker_env() -> dict:
    env = {}
    for key, value in os.environ.items():
        if key.startswith(FORWARDED_ENV_PREFIXES):
            if key in PATH_ENV and value.strip() and Path(value).exists():
                value = str(Path(value).resolve())
            env[key] = value
    return env


def runtime_env() -> dict:
    """The connection's runtime environment: this package's code, shipped to every worker.

    Shipping the package (``py_modules``) makes every node run the driver's code, so a cluster
    with an older copy installed still gives the same answers; the dependencies (torch,
    transformers, demucs, …) must be installed on the nodes. The model variables travel with
    each worker (:func:`_worker_env`, read when the study starts).
    """
    package = Path(__file__).resolve().parent
    return {"py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"]}


# --------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class BatchStudy:
    """``batch``'s work: one prompt × seed per clip (:class:`restoration.batch.Job`).

    ``batch_size`` clips are sampled together (:func:`restoration.batch.run_jobs`), in the same
    groups as the local loop forms: consecutive runs of the clips still to do.
    """

    generation: object
    demucs: object
    gating: object
    metrics: object
    batch_size: int | None = 1

    def load(self) -> None:
        """Load MusicGen (in the study's mode) and Demucs into this process's model caches."""
        from . import generation, separation

        generation.load_musicgen(mode=self.generation.mode)
        separation.load_demucs()

    def run(self, job, out_dir: Path) -> Path:
        from .batch import run_job

        return run_job(job, out_dir, generation=self.generation, demucs=self.demucs, gating=self.gating,
                       metrics=self.metrics)

    def run_group(self, jobs: list, out_dir: Path) -> list[dict]:
        """Sample the group together; if that raises, finish its unwritten clips one by one."""
        if len(jobs) == 1:
            return run_each(self, jobs, out_dir)
        from .batch import run_jobs

        outcomes, start = {}, time.perf_counter()

        def on_clip(job) -> None:
            nonlocal start
            outcomes[job] = {"ok": True, "error": "", "seconds": time.perf_counter() - start}
            start = time.perf_counter()

        try:
            run_jobs(jobs, out_dir, batch_size=len(jobs), generation=self.generation, demucs=self.demucs,
                     gating=self.gating, metrics=self.metrics, on_clip=on_clip)
        except Exception:  # one bad clip must cost only itself: the rest run alone, each recorded
            rest = [job for job in jobs if job not in outcomes]
            outcomes.update(zip(rest, run_each(self, rest, out_dir)))
        return [outcomes[job] for job in jobs]

    def folder(self, job, out_dir: Path) -> Path:
        return job.folder(out_dir)

    def is_done(self, job, out_dir: Path) -> bool:
        return (job.folder(out_dir) / "report.json").is_file()  # written last: its folder is complete

    def describe(self, job) -> dict:
        return {"genre": job.genre, "prompt": job.prompt, "seed": job.seed}

    def label(self, job) -> str:
        return f"{job.genre[:16]} seed {job.seed}"

    def write_tables(self, out_dir: Path) -> int:
        from .batch import collect_rows, write_tables

        rows = collect_rows(out_dir)
        write_tables(rows, out_dir)
        return len(rows)


@dataclass(frozen=True)
class GroundTruthStudy:
    """``groundtruth``'s work: one clean clip × degradation per clip (:class:`restoration.groundtruth.Job`).

    ``model_jobs`` holds one job per degradation of the study, so a worker loads exactly the
    models the study needs (MusicGen only for the ``musicgen-codec`` degradation).
    """

    settings: object
    model_jobs: tuple

    def load(self) -> None:
        from .groundtruth import check_models

        check_models(list(self.model_jobs))

    batch_size = 1

    def run(self, job, out_dir: Path) -> Path:
        from .groundtruth import run_clip

        run_clip(job, out_dir, self.settings)
        return job.folder(out_dir)

    def run_group(self, jobs: list, out_dir: Path) -> list[dict]:
        return run_each(self, jobs, out_dir)

    def folder(self, job, out_dir: Path) -> Path:
        return job.folder(out_dir)

    def is_done(self, job, out_dir: Path) -> bool:
        from .groundtruth import is_done

        return is_done(job, out_dir)

    def describe(self, job) -> dict:
        return {"clip": job.clip.clip_id, "degradation": job.degradation}

    def label(self, job) -> str:
        return f"{job.clip.clip_id[:14]} {job.degradation}"

    def write_tables(self, out_dir: Path) -> int:
        from .groundtruth import write_tables

        return int(write_tables(out_dir).get("rows", 0))


class Worker:
    """A Ray actor body: holds the study's models, loaded once, and runs one clip per call."""

    def __init__(self, study):
        self.study = study
        self.error = None
        start = time.perf_counter()
        try:
            study.load()
        except Exception as exc:  # handed to the driver by ready(), which reports it once
            self.error = exc if isinstance(exc, RestorationError) else RuntimeError(_one_line(exc))
        self.load_s = time.perf_counter() - start

    def ready(self) -> dict:
        return {"error": self.error, "load_s": self.load_s, "host": socket.gethostname(), "pid": os.getpid()}

    def run(self, jobs: list, out_dir: str) -> list[dict]:
        """Run a group of clips; an outcome per clip (``ok``, ``error``, ``seconds``)."""
        if self.error is not None:
            return [{"ok": False, "error": _one_line(self.error), "seconds": 0.0} for _ in jobs]
        return self.study.run_group(list(jobs), Path(out_dir))


def run_each(study, jobs: list, out_dir: Path) -> list[dict]:
    """Run the jobs one at a time; an exception is the failing clip's outcome, and the next goes on."""
    outcomes = []
    for job in jobs:
        start = time.perf_counter()
        try:
            study.run(job, out_dir)
        except Exception as exc:  # recorded in failures.csv by the driver; the study goes on
            outcomes.append({"ok": False, "error": _one_line(exc), "seconds": time.perf_counter() - start})
        else:
            outcomes.append({"ok": True, "error": "", "seconds": time.perf_counter() - start})
    return outcomes


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def remove_staging(out_dir) -> int:
    """Remove staging folders that a killed writer left under ``out_dir``; returns how many.

    Call it only when no worker writes into ``out_dir`` (before a run starts, after it ends).
    """
    removed = 0
    for path in Path(out_dir).rglob(_STAGING_GLOB):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _write_failures(failures: list[dict], out_dir: Path) -> None:
    from .csvfiles import csv_text, write_text_atomic

    path = out_dir / FAILURES_CSV
    if failures:
        write_text_atomic(path, csv_text(failures))
    elif path.exists():
        path.unlink()  # every clip of the study is now complete: an old list would mislead


def run_study(study, jobs: list, out_dir, *, cluster: ClusterSettings = ClusterSettings(),
              show_progress: bool = True, log=None) -> dict:
    """Run the jobs without a complete folder on Ray workers, then write the study's tables.

    Returns counts: ``clips`` (all jobs), ``ran`` (finished in this run), ``failed``,
    ``skipped`` (complete before), ``not_run`` (left when every worker was lost), ``rows``,
    ``workers``, ``per_worker`` (clips each worker finished or failed, most first), ``seconds``
    (wall time from connecting to the last clip, starting the workers and loading included).
    """
    from tqdm import tqdm

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir).resolve()
    todo = [job for job in jobs if not study.is_done(job, out_dir)]
    counts = {"clips": len(jobs), "ran": 0, "failed": 0, "skipped": len(jobs) - len(todo), "not_run": 0,
              "workers": 0, "per_worker": [], "seconds": 0.0}
    failures: list[dict] = []
    start = time.perf_counter()
    if todo:
        # Nothing is written before the connection and the workers' models pass: the workers
        # create the folders they write, the driver its tables.
        with connect(cluster) as where:
            remove_staging(out_dir)
            counts.update(_run_on_workers(study, todo, out_dir, cluster=cluster, where=where, total=len(jobs),
                                          failures=failures, show_progress=show_progress, log=log, tqdm=tqdm))
    counts["seconds"] = round(time.perf_counter() - start, 3)
    _write_failures(failures, out_dir)
    counts["rows"] = study.write_tables(out_dir)
    return counts


def _run_on_workers(study, todo, out_dir, *, cluster, where, total, failures, show_progress, log, tqdm) -> dict:
    import ray

    resources = ray.cluster_resources()
    size = study.batch_size
    if size is None:  # as the local loop: the default for the workers' device
        from .batch import auto_batch_size

        size = auto_batch_size("cuda" if resources.get("GPU", 0) > 0 else "cpu")
    # The local loop's groups: consecutive runs of the clips to do; pop() takes them in plan order.
    queue = [todo[i:i + size] for i in range(0, len(todo), size)][::-1]
    count, options = worker_plan(resources, cluster, clips=len(queue))
    each = "1 GPU" if options.get("num_gpus") else f"{options['num_cpus']:g} CPU"
    group = f", {size} clips sampled together" if size > 1 else ""
    log(f"{where}: {count} worker{'s' if count != 1 else ''} × {each}{group}, loading models…")
    actor_class = ray.remote(Worker).options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
                                             runtime_env={"env_vars": _worker_env()}, **options)
    actors = [actor_class.remote(study) for _ in range(count)]
    per_worker = {id(actor): 0 for actor in actors}
    # ObjectRef → (kind, job, actor). "start": the worker loaded its models (or could not);
    # "clips": a group's outcomes; "probe": is a worker whose process died with its clips back?
    pending: dict = {actor.ready.remote(): ("start", None, actor) for actor in actors}
    ran = failed = 0

    def submit(actor) -> None:
        if queue:
            group = queue.pop()
            pending[actor.run.remote(group, str(out_dir))] = ("clips", group, actor)

    def drop(actor) -> None:
        actors.remove(actor)
        ray.kill(actor, no_restart=True)
        log(f"a worker is gone for good; {len(actors)} left")

    bar = tqdm(total=total, initial=total - len(todo), unit="clip", disable=not show_progress)
    try:
        while any(kind == "clips" for kind, _, _ in pending.values()) or (queue and pending):
            # A short timeout keeps the driver responsive to Ctrl-C while it waits.
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                continue
            kind, group, actor = pending.pop(done[0])
            if kind in ("start", "probe"):
                try:
                    info = ray.get(done[0])
                except ray.exceptions.RayActorError:
                    drop(actor)
                    continue
                if info["error"] is not None:
                    if kind == "start":
                        raise info["error"]  # a model that cannot load fails every clip: stop, say why once
                    drop(actor)
                    continue
                submit(actor)
                continue
            per_worker[id(actor)] += len(group)
            try:
                outcomes = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:
                died = f"the worker process died running this clip: {_one_line(exc)}"
                outcomes = [{"ok": False, "error": died} for _ in group]
                pending[actor.ready.remote()] = ("probe", None, actor)
                actor = None
            for job, outcome in zip(group, outcomes):
                if outcome["ok"]:
                    ran += 1
                else:
                    failed += 1
                    failures.append({**study.describe(job),
                                     "folder": str(study.folder(job, out_dir).relative_to(out_dir)),
                                     "error": outcome["error"]})
            if failed:
                _write_failures(failures, out_dir)
            bar.set_description(study.label(group[-1]))
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(len(group))
            if actor is not None:
                submit(actor)
    except BaseException:
        bar.close()
        _stop(ray, actors, out_dir)
        raise
    bar.close()
    for actor in actors:
        ray.kill(actor, no_restart=True)  # give their CPUs and GPUs back to the cluster now
    return {"ran": ran, "failed": failed, "not_run": sum(len(group) for group in queue), "workers": count,
            "per_worker": sorted(per_worker.values(), reverse=True)}


def _stop(ray, actors, out_dir: Path, *, timeout_s: float = 30.0) -> None:
    """Kill the workers, wait until each is gone, then remove the staging folders they left."""
    for actor in actors:
        ray.kill(actor, no_restart=True)
    probes = [actor.ready.remote() for actor in actors]
    deadline = time.monotonic() + timeout_s
    for probe in probes:
        try:
            ray.get(probe, timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # RayActorError: the worker is gone, which is what we wait for
            pass
    remove_staging(out_dir)


# --------------------------------------------------------------------------- commands


def run_batch_on_ray(prompts_file, out_dir, *, seeds: int = 1, batch_size: int | None = None, generation, demucs,
                     gating, metrics, cluster: ClusterSettings = ClusterSettings(), show_progress: bool = True) -> dict:
    """``batch --ray``: the prompts × seeds of :func:`restoration.batch.run_batch`, clips on Ray workers.

    ``batch_size`` as in :func:`restoration.batch.run_batch` (None: the default for the workers'
    device); each worker samples one group of that many clips at a time.
    """
    from .batch import plan, read_prompts

    if batch_size is not None and int(batch_size) < 1:
        raise BadInputError(f"--batch-size must be ≥ 1, got {batch_size}")
    jobs = plan(read_prompts(prompts_file), seeds)
    study = BatchStudy(generation=generation, demucs=demucs, gating=gating, metrics=metrics, batch_size=batch_size)
    return run_study(study, jobs, out_dir, cluster=cluster, show_progress=show_progress)


# --------------------------------------------------------------------------- command line


def add_ray_options(parser) -> None:
    """``--ray [ADDRESS]``, ``--ray-workers``, ``--cpus-per-worker`` for a study command."""
    g = parser.add_argument_group("Ray (run the clips on a cluster; see README 'Running a study on a cluster')")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: at ADDRESS (host:port, ray://host:port, auto), else at $RAY_ADDRESS, "
                        "else on a local Ray over this machine's cores")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="workers (default: one per GPU, else CPUs / --cpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=float, default=None, metavar="C",
                   help="CPUs (and torch threads) per worker (default 1)")


def cluster_from_args(args) -> ClusterSettings | None:
    """The cluster settings of ``--ray …``, or None for a local run (Ray options without --ray are bad input)."""
    if args.ray is None:
        if args.ray_workers is not None or args.cpus_per_worker is not None:
            raise BadInputError("--ray-workers and --cpus-per-worker need --ray")
        return None
    cpus = 1.0 if args.cpus_per_worker is None else args.cpus_per_worker
    return ClusterSettings(address=args.ray.strip() or None, workers=args.ray_workers, cpus_per_worker=cpus)


def report(counts: dict, out_dir, *, unit: str = "clips", tables: str = "summary.csv, clips.csv, summary.png",
           stream=sys.stdout) -> int:
    """Print a study's outcome in one line (and what is missing on stderr); the exit status.

    0 when every clip is complete, 1 when some failed or were not run (a rerun retries them).
    """
    print(f"{counts['clips']} {unit} ({counts['ran']} run on {counts['workers']} Ray workers, "
          f"{counts['skipped']} already done); tables in {out_dir}/{tables}", file=stream)
    missing = counts["failed"] + counts["not_run"]
    if not missing:
        return 0
    parts = []
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed (errors in {Path(out_dir) / FAILURES_CSV})")
    if counts["not_run"]:
        parts.append(f"{counts['not_run']} not run (every worker was lost)")
    print(f"error: {missing} of {counts['clips']} clips missing: {', '.join(parts)}; a rerun retries them",
          file=sys.stderr)
    return 1


def run_groundtruth_on_ray(clean, out_dir, *, seconds: float, degradations, settings,
                           cluster: ClusterSettings = ClusterSettings(), show_progress: bool = True) -> dict:
    """``groundtruth --ray``: the clip × degradation runs of :func:`restoration.groundtruth.run_study` on Ray.

    The clean files (``clean``, or the built-in set rendered into the data folder) are read by
    the workers, so like ``out_dir`` they must be on storage every node sees.
    """
    from .groundtruth import plan

    jobs = plan(clean, seconds=seconds, degradations=degradations)
    model_jobs = tuple({job.degradation: job for job in jobs}.values())
    study = GroundTruthStudy(settings=settings, model_jobs=model_jobs)
    return run_study(study, jobs, out_dir, cluster=cluster, show_progress=show_progress)


# --------------------------------------------------------------------------- throughput


def study_throughput(*, env: dict, clips: int = 4, duration_s: float = 5.0, mode: str = "exact",
                     ray_workers=(2,), batch_size: int = 1, log=print) -> dict:
    """Clips per hour of a small study, run by ``batch`` locally and on a local Ray, whole commands.

    Each run is a fresh ``python -m restoration batch`` process with the model environment
    ``env``, on ``clips`` prompts × 1 seed of ``duration_s`` seconds in ``mode``, ``batch_size``
    clips sampled together (default 1: the figure isolates what the workers add): first the
    local loop, then ``--ray --ray-workers N`` for each N of ``ray_workers`` (Ray started by the
    command, 1 CPU per worker). ``clips_per_hour`` = clips / wall time of the whole command ×
    3600, start-up, model loading and tables included. ``median_clip_s`` is the median of the
    clips' own times (``report.json`` ``timings_s.total``), the steady cost of one clip on one
    worker, from which a larger cluster can be projected.
    """
    import json
    import statistics
    import subprocess
    import tempfile

    result = {"clips": int(clips), "duration_s": float(duration_s), "mode": mode, "batch_size": int(batch_size),
              "runs": {}}
    with tempfile.TemporaryDirectory(prefix="restoration-study-") as work:
        prompts = Path(work) / "prompts.txt"
        prompts.write_text("".join(f"bench | study prompt number {i}\n" for i in range(int(clips))), encoding="utf-8")
        for workers in (None, *ray_workers):
            name = "local" if workers is None else f"ray_{workers}_workers"
            out = Path(work) / name
            command = [sys.executable, "-m", "restoration", "batch", "--prompts", str(prompts), "--seeds", "1",
                       "--duration", f"{duration_s:g}", "--mode", mode, "--batch-size", str(batch_size),
                       "--out", str(out)]
            if workers is not None:
                command += ["--ray", "--ray-workers", str(workers)]
            child_env = {**os.environ, **env}
            child_env.pop("RAY_ADDRESS", None)  # a local Ray, whatever this shell points at
            log(f"[study] {name}: {clips} clips of {duration_s:g} s ({mode})…")
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            done = subprocess.run(command, env=child_env, capture_output=True, text=True)
            wall_s = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"study run {name} failed: {done.stderr.strip().splitlines()[-1:]}")
            clip_s = [json.loads(p.read_text(encoding="utf-8"))["timings_s"]["total"]
                      for p in out.glob("clips/*/*/*/report.json")]
            result["runs"][name] = {
                "workers": workers or 1,
                "wall_s": round(wall_s, 1),
                "clips_per_hour": round(int(clips) / wall_s * 3600, 1),
                "median_clip_s": round(statistics.median(clip_s), 2),
                "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
            log(f"[study]   {wall_s:.0f} s, {result['runs'][name]['clips_per_hour']:.0f} clips/hour, "
                f"median clip {result['runs'][name]['median_clip_s']:.1f} s")
    return result

"""Studies on Ray (``batch --ray``): same answers as a local run, faults recorded, killed runs resume.

One local Ray session serves the whole module (starting one costs seconds). It is started
before the model variables are set, so its worker processes see ``MUSICGEN_MODEL`` and
``DEMUCS_REPO`` only if the driver forwards them, as it must for a cluster started elsewhere.
Commands run as a user runs them (a subprocess) connect to it by address; one starts its own
local Ray, as ``--ray`` without an address does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from restoration import cluster
from restoration.batch import plan, read_prompts, run_batch
from restoration.settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(generation=GenerationSettings(duration_s=1.0), demucs=DemucsSettings(), gating=GatingSettings(),
                metrics=MetricSettings())
CLIP_FILES = ("report.json", "metrics.json", "metrics.csv", "input.wav", "demucs.wav", "spectral_gating.wav",
              "demucs_residual.wav", "listening/input.wav", "listening/demucs.wav", "listening/spectral_gating.wav")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for the module; yields (its address, its CPUs)."""
    import ray

    cpus = max(2, _torch_threads())
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MUSICGEN_MODEL", "DEMUCS_MODEL", "DEMUCS_REPO", "RAY_ADDRESS"):
            mp.delenv(key, raising=False)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        with cluster.connect(cluster.ClusterSettings(), num_cpus=cpus):
            yield ray.get_runtime_context().gcs_address, cpus


@pytest.fixture(scope="module")
def models(ray_cluster, tiny_musicgen_dir, tiny_demucs_repo):
    """The tiny stand-ins, in this process's environment only (set after Ray started)."""
    from restoration import generation, separation

    env = {"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_REPO": str(tiny_demucs_repo),
           "DEMUCS_MODEL": "tiny_htdemucs"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("MUSICGEN_QUANTIZE", raising=False)
        generation.clear_model_cache()
        separation.clear_model_cache()
        yield env
        generation.clear_model_cache()
        separation.clear_model_cache()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("jazz | smooth jazz trio\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_study(models, prompts, tmp_path_factory):
    """The reference: the same study run by the local loop, in this process, its 2 clips sampled together."""
    out = tmp_path_factory.mktemp("local") / "study"
    counts = run_batch(prompts, out, seeds=2, batch_size=2, show_progress=False, **SETTINGS)
    assert counts["ran"] == 2
    return out


def _audio(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): sf.read(p, dtype="float32", always_2d=True)[0]
            for p in sorted(out.glob("clips/**/*.wav"))}


def _metrics(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("clips/*/*/*/metrics.json"))}


def _numbers(tree, prefix=""):
    """(path, value) for every leaf of a metrics.json tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{prefix}/{key}")
    else:
        yield prefix, tree


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CLIP_FILES)


def _staging(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.partial-*")]


def _wait_for_free_cpus(cpus: int, timeout_s: float = 60.0) -> float:
    """Seconds until every CPU of the cluster is free again (the workers are gone)."""
    import ray

    start = time.monotonic()
    while ray.available_resources().get("CPU", 0) < cpus:
        assert time.monotonic() - start < timeout_s, f"workers still hold CPUs: {ray.available_resources()}"
        time.sleep(0.2)
    return time.monotonic() - start


def _command(*args, env: dict, address: str | None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env}
    full_env.pop("RAY_ADDRESS", None)
    ray_args = ["--ray", address] if address else ["--ray"]
    return [sys.executable, "-m", "restoration", *map(str, args), *ray_args], full_env


def _start(*args, env: dict, address: str | None) -> subprocess.Popen:
    command, full_env = _command(*args, env=env, address=address)
    # SIGINT's default action: a background job of a non-interactive shell (CI) would ignore it.
    return subprocess.Popen(command, env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_first_clip(out: Path, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    start = time.monotonic()
    while not list(out.glob("clips/*/*/*/report.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout_s, "no clip finished"
        time.sleep(0.05)


# --------------------------------------------------------------------------- same answers


def test_ray_gives_bitwise_the_local_clips_with_the_same_threads(ray_cluster, models, prompts, local_study, tmp_path):
    """One worker with as many CPUs (torch threads) as the local run, the same group: every sample and number equal."""
    out = tmp_path / "ray"
    counts = cluster.run_batch_on_ray(prompts, out, seeds=2, batch_size=2, show_progress=False, **SETTINGS,
                                      cluster=cluster.ClusterSettings(workers=1, cpus_per_worker=_torch_threads()))
    assert (counts["ran"], counts["failed"], counts["workers"]) == (2, 0, 1)
    local, remote = _audio(local_study), _audio(out)
    assert len(local) == 2 * 7 and local.keys() == remote.keys()
    for name in local:
        assert np.array_equal(local[name], remote[name]), name
    assert _metrics(out) == _metrics(local_study)
    for table in ("clips.csv", "summary.csv"):
        assert (out / table).read_text() == (local_study / table).read_text(), table
    assert (out / "summary.png").stat().st_size > 1000
    assert not (out / cluster.FAILURES_CSV).exists()


def test_two_single_thread_workers_match_the_local_clips_within_1e_6(ray_cluster, models, prompts, local_study,
                                                                       tmp_path):
    """Two workers of one thread each, one clip at a time: sums in another order, so equal within 1e-6.

    The 16-bit listening copies round those values, so one may land one step (2⁻¹⁵) away.
    """
    out = tmp_path / "ray"
    counts = cluster.run_batch_on_ray(prompts, out, seeds=2, batch_size=1, show_progress=False, **SETTINGS,
                                      cluster=cluster.ClusterSettings(workers=2, cpus_per_worker=1))
    assert (counts["ran"], counts["workers"]) == (2, 2)
    assert counts["per_worker"] == [1, 1]  # each worker ran one clip
    local, remote = _audio(local_study), _audio(out)
    assert local.keys() == remote.keys()
    for name in local:
        step = 2.0**-15 if name.split("/")[-2] == "listening" else 1e-6
        assert local[name].shape == remote[name].shape, name
        assert float(np.abs(local[name] - remote[name]).max()) <= step, name
    local_metrics, remote_metrics = _metrics(local_study), _metrics(out)
    assert local_metrics.keys() == remote_metrics.keys()
    for clip in local_metrics:
        a, b = dict(_numbers(local_metrics[clip])), dict(_numbers(remote_metrics[clip]))
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-6), (clip, key, a[key], b[key])
            else:
                assert a[key] == b[key], (clip, key)


# --------------------------------------------------------------------------- faults


def test_a_failing_clip_is_recorded_and_the_others_go_on(ray_cluster, models, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ambient pads\nfolk guitar\nbig band swing\n", encoding="utf-8")
    out = tmp_path / "study"
    jobs = plan(read_prompts(prompts), 1)
    blocked = jobs[1].folder(out)
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the clip's folder goes")  # writing this clip raises in the worker

    # The three clips are one group: sampled together, the group fails at the blocked clip, and
    # the others are still written.
    counts = cluster.run_batch_on_ray(prompts, out, seeds=1, batch_size=3, show_progress=False, **SETTINGS,
                                      cluster=cluster.ClusterSettings(workers=2))
    assert (counts["ran"], counts["failed"], counts["not_run"], counts["workers"]) == (2, 1, 0, 1)
    failures = (out / cluster.FAILURES_CSV).read_text().splitlines()
    assert failures[0] == "genre,prompt,seed,folder,error"
    assert len(failures) == 2 and failures[1].startswith("unlabelled,folk guitar,0,clips/unlabelled/01-folk-guitar/seed0,")
    assert "Error" in failures[1].split(",", 4)[4]  # the exception's type and message
    assert _complete(jobs[0].folder(out)) and _complete(jobs[2].folder(out))
    assert len((out / "clips.csv").read_text().splitlines()) == 1 + 2 * 3
    assert not _staging(out)
    assert cluster.report(counts, out) == 1
    assert "1 of 3 clips missing: 1 failed" in capsys.readouterr().err

    blocked.unlink()  # the cause is fixed: a rerun retries only the failed clip
    again = cluster.run_batch_on_ray(prompts, out, seeds=1, batch_size=1, show_progress=False, **SETTINGS,
                                     cluster=cluster.ClusterSettings(workers=1))
    assert (again["ran"], again["skipped"], again["failed"]) == (1, 2, 0)
    assert _complete(blocked) and not (out / cluster.FAILURES_CSV).exists()
    assert cluster.report(again, out) == 0


def test_ctrl_c_stops_the_workers_and_leaves_no_half_written_clip(ray_cluster, models, tmp_path):
    address, cpus = ray_cluster
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt number {i}\n" for i in range(3)), encoding="utf-8")
    out = tmp_path / "study"
    proc = _start("batch", "--prompts", prompts, "--seeds", "2", "--duration", "1", "--batch-size", "1", "--out", out,
                  env=models, address=address)
    _wait_for_first_clip(out, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert errors == ["error: interrupted"], stderr
    _wait_for_free_cpus(cpus, timeout_s=10)  # the driver stopped its workers before it exited
    folders = [p.parent for p in out.glob("clips/*/*/*/report.json")]
    assert 1 <= len(folders) < 6, "not stopped mid-study"
    assert all(_complete(folder) for folder in folders)
    assert len(list(out.glob("clips/*/*/seed*"))) == len(folders)  # no clip folder without its report
    assert not _staging(out)
    time.sleep(2)
    assert len(list(out.glob("clips/*/*/seed*"))) == len(folders)  # nothing writes any more


def test_a_killed_run_resumes_redoing_only_the_missing_clips(ray_cluster, models, tmp_path):
    address, cpus = ray_cluster
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"genre{i % 2} | prompt number {i}\n" for i in range(3)), encoding="utf-8")
    out = tmp_path / "study"
    args = ("batch", "--prompts", prompts, "--seeds", "2", "--duration", "1", "--batch-size", "2", "--out", out)
    proc = _start(*args, env=models, address=address)
    _wait_for_first_clip(out, proc)
    proc.send_signal(signal.SIGKILL)  # a lost driver: no chance to clean up
    proc.communicate(timeout=60)
    _wait_for_free_cpus(cpus)  # Ray ended the workers with their owner
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("clips/*/*/*/report.json")}
    assert 1 <= len(finished) < 6, "not killed mid-study"

    # Resume on a fresh local Ray (no address), as after a reboot.
    command, env = _command(*args, env=models, address=None)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    missing = 6 - len(finished)
    workers = min(2, math.ceil(missing / 2))  # the missing clips, two by two
    assert f"6 clips ({missing} run on {workers} Ray workers, {len(finished)} already done)" in result.stdout
    assert "6/6" in result.stderr  # the bar over clips reached the end
    for path, identity in finished.items():  # no finished clip redone or lost
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity, path
    folders = [p.parent for p in out.glob("clips/*/*/*/report.json")]
    assert len(folders) == 6 and all(_complete(folder) for folder in folders)
    assert not _staging(out)
    assert len((out / "clips.csv").read_text().splitlines()) == 1 + 6 * 3
    assert any(line.startswith("demucs,genre1,") for line in (out / "summary.csv").read_text().splitlines())


# --------------------------------------------------------------------------- input and resources


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path, prompts):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "study"
    for address, env, source in ((f"127.0.0.1:{port}", {}, "(--ray)"),
                                 (None, {"RAY_ADDRESS": f"127.0.0.1:{port}"}, "(RAY_ADDRESS)")):
        command, full_env = _command("batch", "--prompts", prompts, "--out", out, env={}, address=address)
        full_env.update(env)
        result = subprocess.run(command, env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"error: no Ray cluster reachable at 127.0.0.1:{port} {source}"), lines[0]
        assert not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--ray-workers", "2"], "--ray-workers and --cpus-per-worker need --ray"),
    (["--ray", "--ray-workers", "0"], "--ray-workers must be ≥ 1"),
    (["--ray", "--cpus-per-worker", "0"], "--cpus-per-worker must be > 0"),
    (["--ray", "not an address"], "is not host:port"),
])
def test_bad_ray_options_are_one_line_and_exit_2(tmp_path, prompts, capsys, args, fragment):
    from restoration.cli import main

    out = tmp_path / "study"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ray.is_initialized", lambda: False)  # as in a fresh process, whatever this one holds
        status = main(["batch", "--prompts", str(prompts), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("resources, settings, clips, expected", [
    ({"CPU": 16.0, "GPU": 4.0}, cluster.ClusterSettings(), 100, (4, {"num_cpus": 1.0, "num_gpus": 1})),
    ({"CPU": 16.0}, cluster.ClusterSettings(), 100, (16, {"num_cpus": 1.0})),
    ({"CPU": 16.0}, cluster.ClusterSettings(cpus_per_worker=4), 100, (4, {"num_cpus": 4.0})),
    ({"CPU": 16.0}, cluster.ClusterSettings(), 3, (3, {"num_cpus": 1.0})),
    ({"CPU": 2.0}, cluster.ClusterSettings(workers=5), 100, (5, {"num_cpus": 1.0})),
    ({"CPU": 1.0}, cluster.ClusterSettings(cpus_per_worker=2), 10, (1, {"num_cpus": 2.0})),
])
def test_worker_plan_one_per_gpu_else_per_cpus(resources, settings, clips, expected):
    assert cluster.worker_plan(resources, settings, clips=clips) == expected


# --------------------------------------------------------------------------- groundtruth --ray


def test_groundtruth_on_ray_equals_the_local_study(ray_cluster, models, tmp_path):
    """``groundtruth --ray ADDRESS`` as a user runs it, against the local study in this process."""
    from restoration import groundtruth
    from restoration.reference_metrics import ReferenceMetricSettings

    address, _ = ray_cluster
    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(3 * 44100) / 44100
    for name, root_hz in (("organ", 220.0), ("bells", 330.0)):
        chord = sum(np.sin(2 * np.pi * root_hz * ratio * t) for ratio in (1.0, 1.25, 1.5, 2.0))
        music = 0.1 * chord * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.01 * rng.standard_normal(t.size)
        sf.write(clean / f"{name}.wav", np.stack([music, music[::-1]], axis=1).astype(np.float32), 44100)
    settings = groundtruth.StudySettings(reference=ReferenceMetricSettings(perceptual=False))
    local = tmp_path / "local"
    counts = groundtruth.run_study(clean, local, seconds=2.0, degradations="lowpass-4,noise-20", settings=settings,
                                   show_progress=False)
    assert counts["ran"] == 4

    out = tmp_path / "ray"
    command, env = _command("groundtruth", "--clean", clean, "--degrade", "lowpass-4,noise-20", "--seconds", "2",
                            "--no-perceptual", "--out", out, "--ray-workers", "1", "--cpus-per-worker",
                            _torch_threads(), env=models, address=address)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "4 clip × degradation runs (4 run on 1 Ray workers, 0 already done)" in result.stdout
    assert "4/4" in result.stderr
    local_audio, remote_audio = _audio(local), _audio(out)
    assert len(local_audio) == 4 * 8 and local_audio.keys() == remote_audio.keys()
    for name in local_audio:
        assert np.array_equal(local_audio[name], remote_audio[name]), name
    for path in sorted(local.glob("clips/*/*/metrics.json")):
        assert json.loads(path.read_text()) == json.loads((out / path.relative_to(local)).read_text()), path
    for table in ("clips.csv", "summary.csv", "proxies.csv"):
        assert (out / table).read_text() == (local / table).read_text(), table
    assert (out / "proxies.png").stat().st_size > 1000

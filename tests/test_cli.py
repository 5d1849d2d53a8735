"""The command line, end to end, as a user runs it: a subprocess with env variables."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from restoration.audio import write_wav
from signals import tone_then_noise_bed

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "restoration", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


@pytest.fixture
def models_env(tiny_musicgen_dir):
    return {"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_MODEL": "demucs_unittest"}


def assert_clean_failure(result, status, fragment, out: Path):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment.lower() in lines[0].lower()
    assert not out.exists(), "a failed command left files behind"
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def test_run_writes_every_output(tmp_path, models_env):
    out = tmp_path / "out"
    result = cli("run", "--prompt", "lofi hip hop", "--duration", "2", "--seed", "3", "--out", out, env=models_env)
    assert result.returncode == 0, result.stderr
    for name in ("input", "demucs", "spectral_gating", "demucs_residual"):
        info = sf.info(out / f"{name}.wav")
        assert info.subtype == "FLOAT" and info.samplerate == 32000
        assert abs(info.frames - 64000) <= 0.02 * 64000
    for name in ("input", "demucs", "spectral_gating"):
        assert sf.info(out / "listening" / f"{name}.wav").subtype == "PCM_16"
        assert (out / f"mel_{name}.png").stat().st_size > 1000
    assert (out / "spectrum.png").exists() and (out / "mel_diff_demucs.png").exists()
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = json.loads(text)
    assert set(metrics) >= {"input", "demucs", "spectral_gating"}
    assert {values["generation_mode"] for values in metrics.values()} == {"exact"}  # the mode is on record
    for version, values in metrics.items():
        for key in ("spectral_flatness", "hber_delta_db", "noise_floor_dbfs", "noise_floor_p10_dbfs", "lufs",
                    "peak_dbfs", "bandwidth_hz", "residual_db", "silent_frames", "hber_bands_db"):
            assert key in values, (version, key)
            if values[key] is None:
                assert key in values["notes"]
    assert metrics["input"]["hber_delta_db"] is None
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["seed"] == 3 and report["timings_s"]["generating"] > 0
    assert {"demucs", "gating", "metrics", "generation"} <= set(report["settings"])
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("version,") and len(rows) == 4


def test_restore_keeps_rate_and_layout(tmp_path, models_env):
    src = tmp_path / "in.flac"
    stereo = np.concatenate([tone_then_noise_bed(sr=22050), tone_then_noise_bed(sr=22050, seed=7)])
    sf.write(src, stereo.T, 22050, subtype="PCM_24")
    out = tmp_path / "restored"
    result = cli("restore", src, "--out", out, env=models_env)
    assert result.returncode == 0, result.stderr
    info = sf.info(out / "demucs.wav")
    assert (info.samplerate, info.channels, info.frames) == (22050, 2, stereo.shape[1])


def _write_nan(path):
    x = tone_then_noise_bed()
    x[0, 100] = np.nan
    sf.write(path, x.T, 32000, subtype="FLOAT")


BAD_FILES = {
    "missing": (None, "not found"),
    "not_audio": (lambda p: p.write_text("definitely not audio"), "cannot read"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "zero_samples": (lambda p: sf.write(p, np.zeros((0, 1)), 32000, format="WAV"), "zero samples"),
    "nan": (_write_nan, "NaN"),
    "nine_channels": (lambda p: sf.write(p, np.zeros((1000, 9)), 32000, format="WAV"), "channels"),
    "silent": (lambda p: sf.write(p, np.zeros((32000, 1)), 32000, format="WAV"), "silent"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_restore_bad_files_exit_2(tmp_path, case):
    make, fragment = BAD_FILES[case]
    src = tmp_path / "input.wav"
    if make is not None:
        make(src)
    out = tmp_path / "out"
    assert_clean_failure(cli("restore", src, "--out", out), 2, fragment, out)


def test_restore_too_long_exit_2(tmp_path):
    src = write_wav(tmp_path / "long.wav", tone_then_noise_bed(), 32000)  # 4 s
    out = tmp_path / "out"
    result = cli("restore", src, "--out", out, env={"RESTORATION_MAX_SECONDS": "2"})
    assert_clean_failure(result, 2, "RESTORATION_MAX_SECONDS", out)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--prompt", "jazz", "--duration", "0.5"], "between 1 and 30"),
        (["--prompt", "jazz", "--duration", "31"], "between 1 and 30"),
        (["--prompt", "jazz", "--duration", "abc"], "number"),
        (["--prompt", "", "--duration", "2"], "prompt is empty"),
        (["--prompt", "   ", "--duration", "2"], "prompt is empty"),
        (["--prompt", "x" * 501, "--duration", "2"], "500"),
    ],
)
def test_run_bad_arguments_exit_2(tmp_path, args, fragment):
    out = tmp_path / "out"
    assert_clean_failure(cli("run", *args, "--out", out), 2, fragment, out)


def test_run_out_under_a_file_exits_2_before_any_work(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    out = blocker / "run"
    result = cli("run", "--prompt", "jazz", "--duration", "2", "--out", out)
    assert result.returncode == 2 and "notes.txt is not a folder" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and blocker.read_text() == "not a folder"


def test_unloadable_musicgen_exits_3_with_the_fix(tmp_path):
    out = tmp_path / "out"
    result = cli("run", "--prompt", "jazz", "--duration", "2", "--out", out,
                 env={"MUSICGEN_MODEL": str(tmp_path / "no-such-model"), "DEMUCS_MODEL": "demucs_unittest"})
    assert_clean_failure(result, 3, "MUSICGEN_MODEL", out)


def test_unloadable_demucs_exits_3_with_the_fix(tmp_path):
    src = write_wav(tmp_path / "in.wav", tone_then_noise_bed(), 32000)
    out = tmp_path / "out"
    result = cli("restore", src, "--out", out, env={"DEMUCS_MODEL": "no_such_demucs_model"})
    assert_clean_failure(result, 3, "DEMUCS_MODEL", out)


def test_batch_is_resumable_and_writes_tables(tmp_path, models_env):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("jazz | smooth jazz trio\nrock | loud rock song\nplain prompt\n", encoding="utf-8")
    out = tmp_path / "batch"
    result = cli("batch", "--prompts", prompts, "--seeds", "2", "--duration", "1", "--out", out, env=models_env)
    assert result.returncode == 0, result.stderr
    assert "6 clips (6 run, 0 already done)" in result.stdout
    clips = (out / "clips.csv").read_text().splitlines()
    assert len(clips) == 1 + 6 * 3  # header + clips × versions
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == "version,genre,metric,mean,ci95_low,ci95_high,n_prompts,n_clips,method"
    assert any(line.startswith("demucs,all,hber_delta_db,") and line.endswith(",3,6,cluster-t") for line in summary)
    with open(out / "paired.csv", newline="", encoding="utf-8") as handle:
        paired = list(csv.DictReader(handle))
    row = next(r for r in paired if (r["genre"], r["metric"], r["comparison"])
               == ("all", "spectral_flatness", "demucs − spectral_gating"))
    assert (row["n_prompts"], row["n_clips"], row["method"]) == ("3", "6", "cluster-t")
    assert any(line.startswith("demucs,unlabelled,") for line in summary)
    assert (out / "summary.png").stat().st_size > 1000
    # Interrupted night: drop one clip's report, rerun, only that clip runs again.
    victim = sorted(out.glob("clips/*/*/*/report.json"))[0]
    victim.unlink()
    again = cli("batch", "--prompts", prompts, "--seeds", "2", "--duration", "1", "--out", out, env=models_env)
    assert again.returncode == 0, again.stderr
    assert "6 clips (1 run, 5 already done)" in again.stdout


def test_doctor_reports_models(models_env):
    result = cli("doctor", "--json", env=models_env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["device"] in ("cpu", "cuda")
    assert info["models"]["musicgen"]["available"] is True
    assert info["models"]["demucs"]["available"] is True
    missing = json.loads(cli("doctor", "--json", env={"MUSICGEN_MODEL": "/nonexistent/model"}).stdout)
    assert missing["models"]["musicgen"]["available"] is False and missing["models"]["musicgen"]["fix"]


# --------------------------------------------------------------------------- the forked restoration process


def test_run_warms_the_restoration_side_in_a_second_process(tmp_path, models_env):
    out = tmp_path / "out"
    result = cli("run", "--prompt", "ambient pads", "--duration", "1", "--out", out, env=models_env)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    # The child warmed up while MusicGen loaded, compared, and reported its own memory.
    assert report["timings_s"]["restoration process warm-up (in parallel with MusicGen)"] > 0
    assert report["resources"]["restoration_process_peak_rss_mb"] > 50
    assert report["timings_s"]["total"] >= report["timings_s"]["generating"] + report["timings_s"]["demucs"]
    # Its stage lines reach the same stdout, in order, once each.
    stages = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert stages == ["[loading models] MusicGen", "[generating]", "[loading models] Demucs", "[demucs]", "[gating]",
                      "[metrics]", "[loudness matching]"]


def test_run_error_in_the_restoration_process_keeps_its_exit_status(tmp_path, tiny_musicgen_dir):
    out = tmp_path / "out"
    result = cli("run", "--prompt", "jazz", "--duration", "1", "--out", out,
                 env={"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_MODEL": "no_such_demucs_model"})
    assert_clean_failure(result, 3, "DEMUCS_MODEL", out)


def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the restoration process is forked on Linux only")
def test_ctrl_c_during_generation_stops_both_processes_and_writes_nothing(tmp_path, models_env):
    import signal
    import time

    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **models_env}
    # A background job of a non-interactive shell (how CI may run us) ignores SIGINT, and the
    # command would inherit that; Ctrl-C in a terminal has its default action, so give it that.
    proc = subprocess.Popen([sys.executable, "-m", "restoration", "run", "--prompt", "drone", "--duration", "30",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:  # wait until MusicGen is sampling
            if line.startswith("[generating]"):
                break
        children = _children(proc.pid)
        assert children, "no restoration process was started"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "error: interrupted"
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in children), "the restoration process outlived the command"


def test_finisher_runs_in_this_process_once_torch_is_loaded(tmp_path, musicgen_env, demucs_unittest_env):
    import torch  # noqa: F401  (forking now could hang the child: the finisher must not fork)

    from restoration import sidecar
    from restoration.pipeline import run_prompt
    from restoration.settings import GenerationSettings

    out = tmp_path / "out"
    assert not sidecar.can_fork() and sidecar.RestorationProcess.start(out=out) is None
    before = _children(os.getpid())
    with sidecar.finisher(out=out) as finish:
        report = run_prompt("jazz", generation=GenerationSettings(duration_s=1.0), finish=finish)
    assert _children(os.getpid()) == before
    assert json.loads((out / "report.json").read_text())["timings_s"]["total"] == report.timings_s["total"]
    assert "resources" not in json.loads((out / "report.json").read_text())
    assert set(report.versions) == {"input", "demucs", "spectral_gating"}

"""``python -m restoration bench`` runs end to end on tiny models and reports what it promises.

A benchmark, not a timed test: these tests check that every measurement is made and
reported with a sane structure and positive numbers, never how fast anything is.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(args, *, env, timeout=1800):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env}
    full_env.pop("MUSICGEN_QUANTIZE", None)
    full_env.pop("DEMUCS_REPO", None)
    return subprocess.run([sys.executable, "-m", "restoration", "bench", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT)


def test_bench_on_tiny_models_reports_every_measurement(tmp_path, tiny_musicgen_dir):
    out = tmp_path / "bench.json"
    env = {"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_MODEL": "demucs_unittest",
           "RESTORATION_DATA_DIR": str(tmp_path / "data")}
    result = run_bench(["--models", "configured", "--duration", "1", "--study-steps", "10", "--json", "--out", out],
                       env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout)
    assert json.loads(out.read_text()) == printed
    bench = printed

    assert bench["duration_s"] == 1.0 and bench["new_tokens"] == 53 and bench["repeats"] == 1
    machine = bench["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1 and machine["device"] in ("cpu", "cuda")
    assert machine["cpu_model"] and len(machine["load_avg_start"]) == 3
    assert bench["models"]["musicgen"]["id"] == str(tiny_musicgen_dir)
    assert bench["models"]["demucs"]["model"] == "demucs_unittest"

    # Whole processes: stock, exact, fast without and with its prepared weights on disk — wall, CPU,
    # peak RSS and stage timings, all positive.
    assert set(bench["runs"]) == {"stock", "exact", "fast_cold", "fast"}
    for kind, summary in bench["summary"].items():
        assert summary["wall_s"] > 0 and summary["cpu_s"] > 0 and summary["peak_rss_mb"] > 50, kind
        assert summary["stages_s"] and all(v >= 0 for v in summary["stages_s"].values()), kind
    assert {"imports", "model loading", "generate", "demucs apply_model", "noisereduce",
            "librosa metrics + 3 Mel plots"} <= set(bench["summary"]["stock"]["stages_s"])
    for mode in ("exact", "fast_cold", "fast"):
        run = bench["runs"][mode][0]
        assert run["generation_mode"] == mode.split("_")[0]
        assert {"generating", "demucs", "metrics", "plots", "total"} <= set(run["stages_s"])
        assert run["stages_s"]["total"] <= run["wall_s"]
        assert bench["speedup_vs_stock"][mode] > 0
        # The forked restoration process warmed up in parallel and reported its own peak memory.
        assert run["stages_s"]["restoration process warm-up (in parallel with MusicGen)"] > 0
        assert run["restoration_process_peak_rss_mb"] > 50
        assert bench["summary"][mode]["restoration_process_peak_rss_mb"] > 50
    assert {"exact_speedup", "fast_speedup", "fast_wall", "metrics_plots_warm", "app_fast_results",
            "app_first_sound", "fast_agreement", "fast_total_variation", "fast_ms_per_token", "batch_speedup_exact",
            "batch_speedup_fast"} == set(bench["targets"])
    assert all(isinstance(check["met"], bool) for check in bench["targets"].values())

    # Fast against exact on the same tokens.
    fidelity = bench["fidelity"]
    assert 0.0 <= fidelity["top1_agreement"] <= 1.0 and len(fidelity["top1_agreement_per_codebook"]) == 4
    assert -1.0 <= fidelity["mean_cosine"] <= 1.0 and fidelity["positions"] > 0
    assert 0.0 <= fidelity["mean_total_variation"] <= 1.0
    assert fidelity["drifts"] == (fidelity["top1_agreement"] < fidelity["threshold"])
    # Every int8 scheme on the same tokens: the trade-off curve, fast's own scheme first.
    from restoration.decoding import DEFAULT_INT8_SCHEME, INT8_SCHEMES

    assert [point["scheme"] for point in fidelity["schemes"]][0] == DEFAULT_INT8_SCHEME
    assert {point["scheme"] for point in fidelity["schemes"]} == set(INT8_SCHEMES)
    for point in fidelity["schemes"]:
        assert 0.0 <= point["top1_agreement"] <= 1.0 and 0.0 <= point["mean_total_variation"] <= 1.0
        assert point["teacher_forced_ms_per_token"] > 0
    assert fidelity["top1_agreement"] == fidelity["schemes"][0]["top1_agreement"]

    # Study throughput: clips per hour one at a time and in a batch, per mode, from timed parts.
    study = bench["study"]
    assert study["batch_size"] >= 2 and study["tokens_per_clip"] == 53 and study["finish_s"] > 0
    for mode in ("exact", "fast"):
        entry = study["modes"][mode]
        assert set(entry["by_batch"]) == {"1", str(study["batch_size"])}
        for row in entry["by_batch"].values():
            assert row["step_ms"] > 0 and abs(row["clips_per_hour"] * row["clip_s"] / 3600 - 1) < 0.01
        assert entry["batch_speedup"] == round(entry["by_batch"][str(study["batch_size"])]["clips_per_hour"]
                                               / entry["by_batch"]["1"]["clips_per_hour"], 2)
    demucs_batch = study["demucs_batch"]
    assert demucs_batch["one_at_a_time_s"] > 0 and demucs_batch["together_s"] > 0 and demucs_batch["verdict"]

    # Demucs: the model's own segment and shorter ones, timed, with their difference.
    rows = bench["demucs_segment"]["rows"]
    assert rows[0]["max_abs_diff"] == 0.0 and len(rows) >= 2
    assert all(row["warm_s"] > 0 and row["max_abs_diff"] >= 0 for row in rows)
    assert bench["demucs_segment"]["verdict"]

    figures = bench["metrics_plots"]
    assert figures["versions"] == ["input", "demucs", "spectral_gating"]
    assert figures["warm_s"] > 0 and figures["metrics_s"] > 0 and figures["figures_s"] > 0
    assert bench["startup"]["cli_help_s"] > 0

    # A small study as whole `batch` commands: the local loop and a local Ray with 2 workers.
    study = bench["study_ray"]
    assert set(study["runs"]) == {"local", "ray_2_workers"} and study["clips"] == 4
    for name, run in study["runs"].items():
        assert abs(run["clips_per_hour"] * run["wall_s"] / 3600 - 4) < 0.05, name  # 4 clips in the wall time
        assert 0 < run["median_clip_s"] < run["wall_s"], name

    # The app, warm: its own warm-up loaded both models, then two Generate clicks streamed first sound.
    app = bench["app_warm"]
    assert app["mode"] == "fast" and set(app["warm_up_steps_s"]) == {"figures", "metrics", "MusicGen", "Demucs"}
    assert [click["click"] for click in app["clicks"]] == [1, 2]
    for click in app["clicks"]:
        assert 0 < click["first_sound_s"] <= click["results_s"]
    assert bench["targets"]["app_first_sound"]["measured"] == max(c["first_sound_s"] for c in app["clicks"])


def test_bench_table_says_whether_fast_drifts(tmp_path):
    from restoration.bench import format_table

    result = _sample_result()
    for agreement, drifts in ((0.97, False), (0.62, True)):
        result["fidelity"].update(top1_agreement=agreement, drifts=drifts)
        text = format_table(result)
        assert ("DRIFTS" in text) == drifts
        assert ("within the 0.9 agreement threshold" in text) == (not drifts)
    assert "stock / this" in text and "3.1×" in text and "NOT met" in text


def _sample_result() -> dict:
    stages = {"generating": 10.0, "total": 20.0}
    summary = {"wall_s": 30.0, "cpu_s": 40.0, "peak_rss_mb": 3000.0, "stages_s": stages}
    return {
        "duration_s": 5.0, "new_tokens": 253, "repeats": 1,
        "machine": {"cpu_count": 2, "cpu_model": "AMD EPYC", "device": "cpu", "load_avg_start": [1.0, 1.0, 1.0],
                    "load_avg_end": [1.2, 1.0, 1.0]},
        "models": {"musicgen": {"source": "random"}, "demucs": {"source": "random"}},
        "summary": {"stock": {**summary, "wall_s": 93.0}, "fast": summary},
        "speedup_vs_stock": {"fast": 3.1},
        "targets": {"fast_wall": {"target": "≤ 25 s", "measured": 30.0, "met": False}},
        "fidelity": {"positions": 1000, "top1_agreement": 0.97, "top1_agreement_per_codebook": [0.97] * 4,
                     "mean_cosine": 0.999, "threshold": 0.9, "drifts": False},
        "demucs_segment": {"model": "htdemucs", "clip_s": 5.0, "verdict": "keep",
                           "rows": [{"segment_s": 7.8, "label": "the model's own", "first_s": 4.0, "warm_s": 3.0,
                                     "max_abs_diff": 0.0, "relative_rms_diff": 0.0}]},
        "metrics_plots": {"warm_s": 0.3, "metrics_s": 0.07, "figures_s": 0.23, "warm_up_s": 2.0},
        "startup": {"cli_help_s": 0.1, "bare_python_s": 0.02},
    }


def test_bench_rejects_unknown_modes(tmp_path):
    result = run_bench(["--modes", "exact,turbo"], env={"RESTORATION_DATA_DIR": str(tmp_path / "data")}, timeout=60)
    assert result.returncode == 2 and "--modes" in result.stderr and "Traceback" not in result.stderr


def test_a_process_that_fails_after_printing_is_returned_when_not_checked():
    from restoration.bench import run_process

    command = [sys.executable, "-c", "import sys; print('RESULT 42'); sys.stderr.write('boom on exit\\n'); sys.exit(3)"]
    record = run_process(command, env=dict(os.environ), check=False)
    assert record["exit_code"] == 3 and record["stderr_tail"] == "boom on exit"
    assert "RESULT 42" in record["stdout"] and record["wall_s"] > 0
    import pytest

    with pytest.raises(RuntimeError, match="exited with 3: boom on exit"):
        run_process(command, env=dict(os.environ))
    assert "exit_code" not in run_process([sys.executable, "-c", "pass"], env=dict(os.environ))


def test_a_failed_late_section_is_reported_and_the_rest_kept():
    from restoration.bench import _measured_or_error, format_table

    logged = []

    def app_timing():
        raise RuntimeError("the app timing process printed no result (exit status -6: terminate called)\nmore")

    app = _measured_or_error(app_timing, log=logged.append)
    assert app == {"error": "the app timing process printed no result (exit status -6: terminate called)"}
    assert logged == ["[bench]   failed: the app timing process printed no result (exit status -6: terminate called)"]
    assert _measured_or_error(lambda: {"cli_help_s": 0.1}) == {"cli_help_s": 0.1}

    result = {**_sample_result(), "app_warm": app, "study_ray": {"error": "no Ray"}}
    text = format_table(result)
    assert "app, warm: failed: the app timing process printed no result" in text
    assert "study on Ray: failed: no Ray" in text and "start-up: `python -m restoration --help` 0.10 s" in text

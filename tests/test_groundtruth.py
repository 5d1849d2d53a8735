"""The ground-truth study end to end: the command line as a user runs it, resume, bad input, the tables."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=900):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "restoration", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """Three short pieces of the built-in set (rock, funk, jazz), rendered by FluidSynth, about 5 s each."""
    from restoration import cleanset

    folder = tmp_path_factory.mktemp("clean")
    for piece in cleanset.PIECES[:3]:
        cleanset.render(cleanset.compose(piece, seconds=3.0), folder / f"{piece.name}.wav")
    return folder


@pytest.fixture
def models(tiny_musicgen_dir):
    return {"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_MODEL": "demucs_unittest"}


@pytest.fixture(scope="module")
def study(tmp_path_factory, clean_folder, tiny_musicgen_dir):
    """One run of ``groundtruth`` on the three pieces with MusicGen's codec (tiny stand-in) and demucs_unittest."""
    out = tmp_path_factory.mktemp("study") / "out"
    env = {"MUSICGEN_MODEL": str(tiny_musicgen_dir), "DEMUCS_MODEL": "demucs_unittest"}
    result = cli("groundtruth", "--clean", clean_folder, "--degrade", "musicgen-codec", "--seconds", "2", "--out", out,
                 env=env)
    assert result.returncode == 0, result.stderr
    return out, result, env


def test_every_clip_folder_holds_the_four_versions_figures_and_metrics(study):
    out, result, _ = study
    assert "3 clip × degradation runs (3 run, 0 already done)" in result.stdout
    assert "%|" in result.stderr  # the progress bar
    folders = sorted(p for p in (out / "clips").glob("*/*") if p.is_dir())
    assert [f"{p.parent.name}/{p.name}" for p in folders] == [
        "funk/musicgen-codec", "jazz/musicgen-codec", "rock/musicgen-codec"]
    for folder in folders:
        for name in ("clean", "degraded", "demucs", "spectral_gating"):
            info = sf.info(folder / f"{name}.wav")
            assert info.samplerate == 32000 and info.channels == 1 and info.frames == 64000 and info.subtype == "FLOAT"
            assert sf.info(folder / "listening" / f"{name}.wav").subtype == "PCM_16"
            assert (folder / f"mel_{name}.png").stat().st_size > 1000
        text = (folder / "metrics.json").read_text()
        assert "NaN" not in text and "Infinity" not in text
        metrics = json.loads(text)
        assert metrics["clean"]["full_reference"] is None
        for version in ("degraded", "demucs", "spectral_gating"):
            full = metrics[version]["full_reference"]
            assert set(full) >= {"si_sdr_db", "lsd_db", "mel_distance_db", "zimtohrli_mos"}
            assert all(full[k] is not None for k in ("si_sdr_db", "lsd_db", "mel_distance_db", "zimtohrli_mos"))
        for version in ("demucs", "spectral_gating"):
            gains = metrics[version]["improvement"]
            full, base = metrics[version]["full_reference"], metrics["degraded"]["full_reference"]
            assert gains["si_sdr_db"] == pytest.approx(full["si_sdr_db"] - base["si_sdr_db"])
            assert gains["lsd_db"] == pytest.approx(base["lsd_db"] - full["lsd_db"])
        clip = json.loads((folder / "clip.json").read_text())
        assert clip["degradation"]["name"] == "musicgen-codec" and clip["degradation"]["codebooks"] == 4
        assert clip["source"]["seconds"] == 2.0 and clip["timings_s"]["total"] > 0


def test_the_degraded_clip_is_the_pipelines_input_and_the_clean_one_the_reference(study, clean_folder):
    """degraded.wav went through the pipeline unchanged; clean.wav is the cut at the recorded offset, at 32 kHz mono."""
    from restoration.audio import convert_audio

    out, _, _ = study
    rows = read_csv(out / "clips.csv")
    row = next(r for r in rows if r["clip"] == "funk" and r["version"] == "clean")
    source, rate = sf.read(clean_folder / "funk.wav", dtype="float32", always_2d=True)
    start = int(round(float(row["offset_s"]) * rate))
    expected = convert_audio(source.T[:, start:start + 2 * rate], orig_rate=rate, target_rate=32000, channels=1)
    clean, _ = sf.read(out / "clips/funk/musicgen-codec/clean.wav", dtype="float32", always_2d=True)
    np.testing.assert_allclose(clean.T, expected, atol=1e-6)
    duration = sf.info(clean_folder / "funk.wav").duration
    assert float(row["offset_s"]) == pytest.approx((duration - 2.0) / 2, abs=0.011)


def test_clips_summary_and_proxy_tables(study):
    out, _, _ = study
    rows = read_csv(out / "clips.csv")
    assert len(rows) == 3 * 4
    assert {r["version"] for r in rows} == {"clean", "degraded", "demucs", "spectral_gating"}
    summary = read_csv(out / "summary.csv")
    assert {r["degradation"] for r in summary} == {"musicgen-codec"}  # no "all" row with one degradation
    assert {r["comparison"] for r in summary} == {"demucs − degraded", "spectral_gating − degraded",
                                                  "demucs − spectral_gating"}
    assert {r["metric"] for r in summary} == {"si_sdr_db", "lsd_db", "mel_distance_db", "zimtohrli_mos"}
    by_clip = {(r["clip"], r["version"]): r for r in rows}
    for entry in summary:
        a, b = entry["comparison"].split(" − ")
        sign = 1.0 if entry["metric"] in ("si_sdr_db", "zimtohrli_mos") else -1.0
        diffs = [sign * (float(by_clip[(c, a)][entry["metric"]]) - float(by_clip[(c, b)][entry["metric"]]))
                 for c in ("funk", "jazz", "rock")]
        assert float(entry["mean"]) == pytest.approx(np.mean(diffs), rel=1e-9, abs=1e-9)
        assert float(entry["ci95_low"]) <= float(entry["mean"]) <= float(entry["ci95_high"])
        assert entry["n_sources"] == "3" and entry["method"] == "cluster-t"
    proxies = read_csv(out / "proxies.csv")
    both = [r for r in proxies if r["restorations"] == "both"]
    assert {r["proxy"] for r in both} >= {"hber_delta_db", "flatness_change", "bandwidth_change_hz",
                                         "noise_floor_p10_change_db"}
    hber = next(r for r in both if r["proxy"] == "hber_delta_db" and r["metric"] == "si_sdr_db")
    assert hber["n"] == "6" and hber["n_sources"] == "3" and -1.0 <= float(hber["rho"]) <= 1.0
    assert (out / "summary.png").stat().st_size > 5000 and (out / "proxies.png").stat().st_size > 5000


def test_a_second_run_resumes_without_redoing_finished_clips(study, clean_folder):
    out, _, env = study
    before = {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.wav")}
    result = cli("groundtruth", "--clean", clean_folder, "--degrade", "musicgen-codec", "--seconds", "2", "--out", out,
                 env=env)
    assert result.returncode == 0, result.stderr
    assert "(0 run, 3 already done)" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.wav")} == before
    assert len(read_csv(out / "clips.csv")) == 12


def assert_refused(result, status: int, fragment: str, out: Path):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert not out.exists(), "a refused command wrote files"


def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path, clean_folder, models):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "blip.wav", np.zeros((22050, 2), np.float32) + 0.1, 44100)
    cases = [
        (["--clean", tmp_path / "missing", "--degrade", "mp3-32"], "not found"),
        (["--clean", empty, "--degrade", "mp3-32"], "no audio files"),
        (["--clean", short, "--degrade", "mp3-32"], "shorter than --seconds"),
        (["--clean", clean_folder, "--degrade", "mp3-32,vinyl"], "unknown degradation 'vinyl'"),
        (["--clean", clean_folder, "--degrade", "mp3-32", "--seconds", "0"], "duration"),
    ]
    for args, fragment in cases:
        assert_refused(cli("groundtruth", *args, "--seconds", "2", "--out", out, env=models) if "--seconds" not in args
                       else cli("groundtruth", *args, "--out", out, env=models), 2, fragment, out)


def test_an_unavailable_model_exits_3_before_writing(tmp_path, clean_folder):
    out = tmp_path / "out"
    env = {"MUSICGEN_MODEL": str(tmp_path / "no-model"), "DEMUCS_MODEL": "demucs_unittest"}
    result = cli("groundtruth", "--clean", clean_folder, "--degrade", "musicgen-codec", "--seconds", "2", "--out", out,
                 env=env)
    assert_refused(result, 3, "MUSICGEN_MODEL", out)


def test_a_clip_that_fails_midway_leaves_no_folder(tmp_path, clean_folder, demucs_unittest_env, monkeypatch):
    from restoration import groundtruth, plots

    jobs = groundtruth.plan(clean_folder, seconds=2.0, degradations="noise-20")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "average_spectra", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        groundtruth.run_clip(jobs[0], tmp_path, groundtruth.StudySettings())
    assert not jobs[0].folder(tmp_path).exists()
    assert not list((tmp_path / "clips").rglob(".*partial*"))
    assert groundtruth.collect_rows(tmp_path) == []


def test_the_built_in_set_renders_ten_genres_cut_from_the_middle(tmp_path, monkeypatch):
    from restoration import cleanset
    from restoration.audio import integrated_lufs

    monkeypatch.setenv("RESTORATION_DATA_DIR", str(tmp_path))
    clips = cleanset.plan_clips(cleanset.BUILTIN, seconds=10.0)
    assert len(clips) == 10 and len({c.genre for c in clips}) == 10
    fingerprints = set()
    for clip in clips:
        assert clip.path.parent == tmp_path / "cleanset" / cleanset.SET_VERSION
        assert clip.duration_s >= cleanset.PIECE_SECONDS
        assert clip.offset_s == pytest.approx((clip.duration_s - 10.0) / 2, abs=0.011)
        audio, rate = clip.load()
        assert rate == 44100 and audio.shape == (2, 441000)
        assert integrated_lufs(sf.read(clip.path, always_2d=True)[0].T, rate) == pytest.approx(-20.0, abs=0.6)
        fingerprints.add(round(float(np.sqrt(np.mean(audio[:, :44100] ** 2))), 6))
    assert len(fingerprints) == 10  # ten different pieces
    with pytest.raises(Exception, match="shorter than --seconds"):
        cleanset.plan_clips(cleanset.BUILTIN, seconds=25.0)


def test_spearman_bootstrap_recovers_known_correlations():
    from restoration.stats import spearman_cluster_bootstrap

    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    clusters = [i // 2 for i in range(40)]
    perfect = spearman_cluster_bootstrap(x, 3 * x + 1, clusters)
    assert perfect["rho"] == pytest.approx(1.0) and perfect["ci95_low"] == pytest.approx(1.0)
    reversed_ = spearman_cluster_bootstrap(x, -np.exp(x), clusters)
    assert reversed_["rho"] == pytest.approx(-1.0) and reversed_["ci95_high"] == pytest.approx(-1.0)
    independent = spearman_cluster_bootstrap(x, rng.standard_normal(40), clusters)
    assert independent["ci95_low"] < 0.0 < independent["ci95_high"]
    assert independent["n"] == 40 and independent["n_sources"] == 20


def test_summary_recovers_a_known_paired_improvement():
    """Demucs is 2 dB SI-SDR better than the degraded clip on every source (± noise); gating 1 dB worse."""
    from restoration.groundtruth_tables import summary_rows

    rng = np.random.default_rng(1)
    rows = []
    for k in range(12):
        base = rng.normal(5.0, 3.0)
        for version, shift in (("degraded", 0.0), ("demucs", 2.0), ("spectral_gating", -1.0)):
            rows.append({"source": f"s{k}.wav", "clip": f"s{k}", "degradation": "mp3-32", "version": version,
                         "si_sdr_db": base + shift + rng.normal(0, 0.1), "lsd_db": 10.0 - shift,
                         "mel_distance_db": 5.0 - shift, "zimtohrli_mos": 3.0})
    table = {(r["metric"], r["comparison"]): r for r in summary_rows(rows)}
    demucs = table[("si_sdr_db", "demucs − degraded")]
    assert demucs["mean"] == pytest.approx(2.0, abs=0.1) and demucs["excludes_zero"] is True
    assert table[("si_sdr_db", "spectral_gating − degraded")]["mean"] == pytest.approx(-1.0, abs=0.1)
    assert table[("si_sdr_db", "demucs − spectral_gating")]["mean"] == pytest.approx(3.0, abs=0.1)
    # LSD: lower is better, so Demucs's 2 dB lower distance is a +2 improvement.
    assert table[("lsd_db", "demucs − degraded")]["mean"] == pytest.approx(2.0)
    assert table[("zimtohrli_mos", "demucs − degraded")]["mean"] == pytest.approx(0.0)
    assert demucs["n_sources"] == 12

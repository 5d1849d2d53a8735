"""Known-answer tests of the confidence intervals and the paired, clustered study summary."""

import math

import numpy as np
import pytest

from restoration import stats


def test_t_interval_matches_the_textbook_formula():
    data = [1.0, 2.0, 3.0, 4.0, 10.0]
    got = stats.t_interval(data)
    # mean 4, s = sqrt(50/4) = 3.5355, t(0.975, 4) = 2.776445 (printed tables)
    half = 2.776445 * math.sqrt(12.5) / math.sqrt(5)
    assert got.mean == pytest.approx(4.0)
    assert got.low == pytest.approx(4.0 - half, abs=1e-5)
    assert got.high == pytest.approx(4.0 + half, abs=1e-5)
    assert got.n == 5 and got.excludes_zero is False  # low ≈ −0.39


def test_t_interval_undefined_cases():
    assert stats.t_interval([None, 2.0, ""]) == stats.Interval(2.0, None, None, 1)
    assert stats.t_interval([]).mean is None
    assert stats.t_interval([3.0, 3.0]).low == 3.0  # zero spread: zero width
    assert stats.t_interval([-1.0, 1.0]).excludes_zero is False


def test_clustered_t_counts_prompts_not_clips():
    # two prompts, three seeds each: the unit is the prompt (n = 2, 1 df)
    values = [1.0, 1.2, 0.8, 3.0, 3.1, 2.9]
    clusters = ["p1"] * 3 + ["p2"] * 3
    got = stats.clustered_t_interval(values, clusters)
    assert got.n == 2 and got.mean == pytest.approx(2.0)
    # cluster means 1 and 3: s = sqrt(2), t(0.975, 1) = 12.7062
    assert got.high - got.mean == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)


def _study(rng, *, prompts, seeds, effect, prompt_sd, seed_sd, correlated):
    """Long-format rows of a synthetic study: demucs = gating + effect + prompt effect + seed noise."""
    rows = []
    for p in range(prompts):
        prompt_shift = rng.normal(0.0, prompt_sd)
        shared = rng.normal(0.0, seed_sd)
        for s in range(seeds):
            noise = shared if correlated else rng.normal(0.0, seed_sd)
            base = rng.normal(0.0, 5.0)  # the clip's level, common to both versions
            key = dict(genre="g", prompt=f"p{p}", seed=s)
            rows.append({**key, "version": "spectral_gating", "x": base})
            rows.append({**key, "version": "demucs", "x": base + effect + prompt_shift + noise})
    return rows


@pytest.mark.parametrize("method", [stats.CLUSTER_T, stats.CLUSTER_BOOTSTRAP])
def test_paired_study_recovers_a_known_effect(method):
    rng = np.random.default_rng(1)
    rows = _study(rng, prompts=40, seeds=3, effect=2.0, prompt_sd=0.5, seed_sd=0.5, correlated=False)
    (row,) = stats.paired_summary(rows, metrics=["x"], pairs=[("demucs", "spectral_gating")],
                                  unit_keys=["prompt", "seed"], cluster_key="prompt", method=method,
                                  cluster_name="prompt", unit_name="clip")
    assert row["ci95_low"] < 2.0 < row["ci95_high"]
    assert row["mean"] == pytest.approx(2.0, abs=0.3)
    assert row["excludes_zero"] is True
    assert row["n_prompts"] == 40 and row["n_clips"] == 120
    assert row["comparison"] == "demucs − spectral_gating" and row["method"] == method


def test_interval_widens_when_seeds_of_a_prompt_are_perfectly_correlated():
    """Same per-clip spread; when the seeds of a prompt agree, the prompt carries less information."""
    widths = {}
    naive = {}
    for correlated in (False, True):
        rng = np.random.default_rng(7)
        rows = _study(rng, prompts=30, seeds=4, effect=1.0, prompt_sd=0.0, seed_sd=1.0, correlated=correlated)
        (row,) = stats.paired_summary(rows, metrics=["x"], pairs=[("demucs", "spectral_gating")],
                                      unit_keys=["prompt", "seed"], cluster_key="prompt")
        widths[correlated] = row["ci95_high"] - row["ci95_low"]
        diffs = [d for _, d in stats.paired_differences(rows, metric="x", a="demucs", b="spectral_gating",
                                                         unit_keys=["prompt", "seed"])]
        clip_level = stats.t_interval(diffs)
        naive[correlated] = clip_level.high - clip_level.low
    # independent seeds: averaging 4 seeds shrinks the prompt mean's sd by 2; correlated: not at all
    assert widths[True] / widths[False] == pytest.approx(2.0, rel=0.35)
    # treating correlated clips as independent understates the width by about √4 = 2
    assert widths[True] / naive[True] == pytest.approx(2.0, rel=0.25)


def test_paired_summary_strata_and_missing_values():
    rows = [
        {"genre": "jazz", "prompt": "a", "seed": 0, "version": "input", "x": 1.0},
        {"genre": "jazz", "prompt": "a", "seed": 0, "version": "demucs", "x": 3.0},
        {"genre": "jazz", "prompt": "b", "seed": 0, "version": "input", "x": 2.0},
        {"genre": "jazz", "prompt": "b", "seed": 0, "version": "demucs", "x": None},
        {"genre": "rock", "prompt": "c", "seed": 0, "version": "input", "x": 0.0},
        {"genre": "rock", "prompt": "c", "seed": 0, "version": "demucs", "x": 4.0},
    ]
    table = stats.paired_summary(rows, metrics=["x"], pairs=[("demucs", "input")], unit_keys=["prompt", "seed"],
                                 cluster_key="prompt", stratum_key="genre", cluster_name="prompt",
                                 unit_name="clip")
    by = {r["genre"]: r for r in table}
    assert [r["genre"] for r in table] == ["all", "jazz", "rock"]
    assert by["all"]["mean"] == pytest.approx(3.0) and by["all"]["n_clips"] == 2
    assert by["jazz"]["mean"] == pytest.approx(2.0) and by["jazz"]["ci95_low"] is None
    assert by["jazz"]["excludes_zero"] is None

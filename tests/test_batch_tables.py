"""Batch prompt parsing and the study tables' statistics (no models needed)."""

import csv

import numpy as np
import pytest
from scipy import stats

from restoration.batch import COMPARISONS, aggregate, paired_table, plan, read_prompts, write_tables
from restoration.errors import BadInputError


def test_prompts_file_genres_and_unlabelled(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# comment\njazz | smooth jazz trio\n\nbare prompt line\n | empty genre\n", encoding="utf-8")
    assert read_prompts(path) == [("jazz", "smooth jazz trio"), ("unlabelled", "bare prompt line"),
                                  ("unlabelled", "empty genre")]


def test_prompts_file_errors(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_prompts(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n# only a comment\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no prompts"):
        read_prompts(tmp_path / "blank.txt")
    (tmp_path / "bad.txt").write_text("jazz | " + "x" * 600 + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="line 1"):
        read_prompts(tmp_path / "bad.txt")


def test_examples_prompts_cover_ten_genres():
    genres = {g for g, _ in read_prompts("examples/prompts.txt")}
    assert len(genres) >= 10 and "unlabelled" not in genres


def test_plan_runs_seeds_zero_to_n_minus_one():
    jobs = plan([("a", "x"), ("b", "y")], 3)
    assert [(j.genre, j.seed) for j in jobs] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]


def test_aggregate_groups_by_version_and_genre_with_all_and_the_prompt_as_unit():
    rows = [{"genre": g, "prompt": p, "seed": s, "version": v, "hber_delta_db": val, "folder": "f"}
            for g, p, s, v, val in [("a", "p1", 0, "demucs", 1.0), ("a", "p1", 1, "demucs", 3.0),
                                    ("a", "p2", 0, "demucs", 6.0), ("b", "p3", 0, "demucs", 5.0),
                                    ("a", "p1", 0, "input", None)]]
    table = {(r["version"], r["genre"]): r for r in aggregate(rows)}
    overall = table[("demucs", "all")]
    # prompt means 2, 6, 5: mean 13/3, t interval over the three prompts (2 df)
    low, high = stats.t.interval(0.95, 2, loc=13 / 3, scale=stats.sem([2.0, 6.0, 5.0]))
    assert overall["mean"] == pytest.approx(13 / 3)
    assert (overall["ci95_low"], overall["ci95_high"]) == pytest.approx((low, high))
    assert overall["n_prompts"] == 3 and overall["n_clips"] == 4 and overall["method"] == "cluster-t"
    assert table[("demucs", "a")]["mean"] == pytest.approx(4.0)  # prompts p1 (2) and p2 (6)
    assert table[("input", "all")]["n_clips"] == 0 and table[("input", "all")]["mean"] is None
    assert [k[0] for k in table][:1] == ["input"]  # versions in versions.VERSIONS order


def _study_rows(*, prompts=8, seeds=3, effect=0.2, seed=0):
    """Clip rows as clips.csv holds them: Demucs' flatness is gating's minus ``effect``, input 0.5 above gating."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(prompts):
        genre = "jazz" if p % 2 else "rock"
        for s in range(seeds):
            gating = rng.normal(0.3, 0.05)
            for version, value in (("input", gating + 0.5), ("spectral_gating", gating),
                                   ("demucs", gating - effect + rng.normal(0, 0.01))):
                rows.append({"genre": genre, "prompt": f"prompt {p}", "seed": s, "version": version,
                             "spectral_flatness": value, "residual_db": None if version == "input" else -10.0,
                             "folder": f"clips/{genre}/{p}/seed{s}"})
    return rows


def test_paired_table_recovers_the_known_differences_per_genre_and_overall():
    table = paired_table(_study_rows())
    by = {(r["genre"], r["metric"], r["comparison"]): r for r in table}
    assert {g for g, _, _ in by} == {"all", "jazz", "rock"}
    assert {c for _, _, c in by} == {f"{a} − {b}" for a, b in COMPARISONS}
    dg = by[("all", "spectral_flatness", "demucs − spectral_gating")]
    assert dg["ci95_low"] < -0.2 < dg["ci95_high"] and dg["mean"] == pytest.approx(-0.2, abs=0.01)
    assert dg["excludes_zero"] is True and dg["n_prompts"] == 8 and dg["n_clips"] == 24
    assert dg["method"] == "cluster-t" and dg["label"] == "Mean spectral flatness"
    gi = by[("all", "spectral_flatness", "spectral_gating − input")]
    assert gi["mean"] == pytest.approx(-0.5) and gi["excludes_zero"] is True
    assert by[("jazz", "spectral_flatness", "demucs − spectral_gating")]["n_prompts"] == 4
    assert by[("all", "residual_db", "demucs − input")]["n_clips"] == 0  # undefined for the input


def test_write_tables_writes_the_paired_table_and_its_plot(tmp_path):
    rows = _study_rows()
    write_tables(rows, tmp_path)
    with open(tmp_path / "paired.csv", newline="", encoding="utf-8") as handle:
        paired = list(csv.DictReader(handle))
    assert list(paired[0])[:6] == ["genre", "metric", "label", "unit", "comparison", "mean"]
    assert {"ci95_low", "ci95_high", "excludes_zero", "n_prompts", "n_clips", "method"} <= set(paired[0])
    row = next(r for r in paired if r["genre"] == "all" and r["metric"] == "spectral_flatness"
               and r["comparison"] == "demucs − spectral_gating")
    assert row["excludes_zero"] == "True" and row["method"] == "cluster-t"
    assert (tmp_path / "summary.png").stat().st_size > 1000
    with open(tmp_path / "summary.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle))[0]["method"] == "cluster-t"

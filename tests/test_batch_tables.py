"""Batch prompt parsing and the aggregate table's statistics (no models needed)."""

import numpy as np
import pytest
from scipy import stats

from restoration.batch import aggregate, mean_ci95, plan, read_prompts
from restoration.errors import BadInputError


def test_mean_ci95_matches_scipy_t_interval():
    data = [1.0, 2.5, 3.0, 4.5, 2.0, 7.0]
    got = mean_ci95(data)
    low, high = stats.t.interval(0.95, len(data) - 1, loc=np.mean(data), scale=stats.sem(data))
    assert got["n"] == 6 and got["mean"] == pytest.approx(np.mean(data))
    assert (got["ci95_low"], got["ci95_high"]) == pytest.approx((low, high))


def test_mean_ci95_skips_nulls_and_has_no_ci_for_one_value():
    assert mean_ci95([None, 2.0, ""]) == {"mean": 2.0, "ci95_low": None, "ci95_high": None, "n": 1}
    assert mean_ci95([None]) == {"mean": None, "ci95_low": None, "ci95_high": None, "n": 0}


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


def test_aggregate_groups_by_version_and_genre_with_all():
    rows = [{"genre": g, "prompt": "p", "seed": s, "version": v, "hber_delta_db": val, "folder": "f"}
            for g, s, v, val in [("a", 0, "demucs", 1.0), ("a", 1, "demucs", 3.0), ("b", 0, "demucs", 5.0),
                                 ("a", 0, "input", None)]]
    table = {(r["version"], r["genre"]): r for r in aggregate(rows)}
    assert table[("demucs", "all")]["mean"] == pytest.approx(3.0) and table[("demucs", "all")]["n"] == 3
    assert table[("demucs", "a")]["mean"] == pytest.approx(2.0)
    assert table[("input", "all")]["n"] == 0 and table[("input", "all")]["mean"] is None

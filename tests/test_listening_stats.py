"""Statistics and screening of the listening test, checked against scipy on fixed data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from restoration.listening import stats
from restoration.listening.stats import Rating
from restoration.versions import CONDITIONS, REAL_CONDITIONS

TRUE_QUALITY = {"original": 55.0, "demucs": 70.0, "spectral_gating": 45.0, "anchor": 20.0}


def _panel(n_listeners=8, n_clips=5, noise=8.0, seed=1):
    rng = np.random.default_rng(seed)
    clip_offset = rng.normal(0, 6, n_clips)
    listener_offset = rng.normal(0, 5, n_listeners)
    out = []
    for i in range(n_listeners):
        for j in range(n_clips):
            for c in CONDITIONS:
                value = TRUE_QUALITY[c] + clip_offset[j] + listener_offset[i] + rng.normal(0, noise)
                out.append(Rating(f"L{i:02d}", f"clip{j}", c, float(np.clip(round(value), 0, 100))))
    return out


def _array(ratings, n_listeners, n_clips):
    """listeners × clips × conditions, the plain way."""
    a = np.zeros((n_listeners, n_clips, len(CONDITIONS)))
    for r in ratings:
        a[int(r.listener[1:]), int(r.clip[4:]), CONDITIONS.index(r.condition)] = r.rating
    return a


def test_statistics_match_scipy_on_a_fixed_data_set():
    ratings = _panel()
    a = _array(ratings, 8, 5)
    per_listener = a.mean(axis=1)  # listener first: mean over clips
    res = stats.analyze(ratings, n_trials=5, include_everyone=True)

    for k, s in enumerate(res.summary):
        x = per_listener[:, k]
        lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
        assert s.condition == CONDITIONS[k] and s.n == 8
        assert s.mean == pytest.approx(x.mean(), abs=1e-12)
        assert s.sd == pytest.approx(x.std(ddof=1), abs=1e-12)
        assert (s.ci_low, s.ci_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))

    real = per_listener[:, :3]
    f = sps.friedmanchisquare(*real.T)
    assert res.friedman.n == 8
    assert res.friedman.statistic == pytest.approx(f.statistic)
    assert res.friedman.p == pytest.approx(f.pvalue)

    raw = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        w = sps.wilcoxon(real[:, i], real[:, j])
        raw.append((w.statistic, w.pvalue, np.median(real[:, i] - real[:, j])))
    order = np.argsort([p for _, p, _ in raw])
    holm = np.empty(3)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[idx][1]))
        holm[idx] = running
    for k, pw in enumerate(res.pairwise):
        assert (pw.first, pw.second) == [("original", "demucs"), ("original", "spectral_gating"),
                                         ("demucs", "spectral_gating")][k]
        assert pw.statistic == pytest.approx(raw[k][0])
        assert pw.p == pytest.approx(raw[k][1])
        assert pw.p_holm == pytest.approx(holm[k])
        assert pw.median_difference == pytest.approx(raw[k][2])
    # Demucs is truly 15 points above the original: the effect has the right sign and size.
    assert res.pairwise[0].median_difference == pytest.approx(-15, abs=6)


def test_listener_is_the_unit_not_the_rating():
    # One listener with 10 clips and one with 1 clip weigh the same in the mean.
    ratings = [Rating("busy", f"c{j}", c, 80.0) for j in range(10) for c in CONDITIONS]
    ratings += [Rating("brief", "c0", c, 20.0) for c in CONDITIONS]
    means = stats.listener_means(ratings)
    summary = stats.summarize(means)
    assert all(s.mean == pytest.approx(50.0) and s.n == 2 for s in summary)


def test_holm_known_answer():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_agreement_is_spearman_with_the_leave_one_out_panel_mean():
    ratings = _panel(n_listeners=5, n_clips=4)
    table = stats._table(ratings)
    listeners = sorted(table)
    me = listeners[0]
    mine, panel = [], []
    for clip in sorted(table[me]):
        for c in CONDITIONS:
            mine.append(table[me][clip][c])
            panel.append(np.mean([table[o][clip][c] for o in listeners[1:]]))
    expected = sps.spearmanr(mine, panel).statistic
    assert stats.agreement(table, me, listeners) == pytest.approx(expected)


def _screening_panel():
    rng = np.random.default_rng(7)
    ratings = _panel(n_listeners=14, n_clips=10, seed=3)  # > 13 listeners: scipy's Wilcoxon stays asymptotic (fast)
    # A random clicker: uniform ratings, nothing to do with the sound.
    ratings += [Rating("random", f"clip{j}", c, float(rng.integers(0, 101))) for j in range(10) for c in CONDITIONS]
    # Rates the anchor "Excellent" in every trial, the rest like everyone.
    ratings += [Rating("anchorfan", f"clip{j}", c, 95.0 if c == "anchor" else TRUE_QUALITY[c])
                for j in range(10) for c in CONDITIONS]
    # Gave up after 5 of 10 trials.
    ratings += [Rating("quitter", f"clip{j}", c, TRUE_QUALITY[c]) for j in range(5) for c in CONDITIONS]
    # Attentive, one slip: anchor above everything once (1 failure ≤ max(1, 1.5)).
    for j in range(10):
        for c in CONDITIONS:
            v = TRUE_QUALITY[c] + j
            if j == 3 and c == "anchor":
                v = 85.0
            ratings.append(Rating("oneslip", f"clip{j}", c, v))
    return ratings


def test_screening_removes_a_random_clicker_and_keeps_consistent_raters():
    ratings = _screening_panel()
    res = stats.analyze(ratings, n_trials=10, listeners=[*{r.listener for r in ratings}, "nothing"])
    reasons = {s.listener: s.reasons for s in res.screened}
    assert "agreement" in reasons["random"]
    assert "anchor" in reasons["anchorfan"]
    assert reasons["quitter"] == ["incomplete"]
    assert reasons["nothing"] == ["incomplete"]  # recruited, never rated
    assert reasons["oneslip"] == []
    consistent = [f"L{i:02d}" for i in range(14)]
    assert all(reasons[l] == [] for l in consistent)
    assert sorted(res.included) == sorted(consistent + ["oneslip"])
    assert res.recruited == 19
    counts = res.excluded_counts()
    assert counts["incomplete"] == 2 and counts["any"] == 4
    for rule in ("anchor", "agreement"):
        assert counts[rule] == sum(rule in r for r in reasons.values())
    rho = {s.listener: s.agreement for s in res.screened}
    assert rho["random"] < 0.5 < min(rho[l] for l in consistent)


def test_include_everyone_ignores_the_screening_but_still_reports_it():
    ratings = _screening_panel()
    res = stats.analyze(ratings, n_trials=10, include_everyone=True)
    assert len(res.included) == 18
    assert res.excluded_counts()["any"] == 3
    assert res.summary[0].n == 18


def test_anchor_rule_threshold_is_max_one_or_fifteen_percent():
    def listener(fails, n_trials):
        return [Rating("x", f"c{j}", c, (95.0 if j < fails else 10.0) if c == "anchor" else 50.0)
                for j in range(n_trials) for c in CONDITIONS]

    def excluded(fails, n_trials):
        s = stats.screen(listener(fails, n_trials), n_trials=n_trials)[0]
        return "anchor" in s.reasons

    assert not excluded(1, 4)  # one slip in a short test is allowed
    assert excluded(2, 4)
    assert not excluded(3, 20)  # 3 = 15 % of 20 is not "more than"
    assert excluded(4, 20)


def test_degenerate_inputs_give_none_not_errors():
    assert stats.friedman({}).statistic is None
    same = {f"L{i}": {c: 50.0 for c in CONDITIONS} for i in range(4)}
    assert stats.friedman(same).statistic is None
    assert all(p.p is None and p.median_difference == 0 for p in stats.pairwise_wilcoxon(same))
    one = stats.summarize({"L0": {c: 42.0 for c in CONDITIONS}})
    assert all((s.n, s.mean, s.sd, s.ci_low, s.ci_high) == (1, 42.0, None, None, None) for s in one)
    assert set(REAL_CONDITIONS) < set(CONDITIONS)

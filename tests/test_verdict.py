"""The verdict's sentences, number formatting and better-value marks, on metric dicts whose answer is known."""

from __future__ import annotations

import pytest

from restoration.verdict import PROXY_NOTE, best_versions, direction, format_value, signed_db, verdict


def run_metrics(**overrides) -> dict:
    """Metrics of a run as ``metrics.measure_versions`` returns them; ``overrides`` = version → {key: value}."""
    base = {
        "input": {"lufs": -18.0, "peak_dbfs": -1.5, "spectral_flatness": 0.0021, "hber_delta_db": None,
                  "residual_db": None, "bandwidth_hz": 9000.0, "noise_floor_dbfs": None,
                  "notes": {"hber_delta_db": "reference", "residual_db": "reference",
                            "noise_floor_dbfs": "no silent frames"}},
        "demucs": {"lufs": -18.5, "peak_dbfs": 2.3, "spectral_flatness": 0.0004, "hber_delta_db": 1.26,
                   "residual_db": -8.0, "bandwidth_hz": 9500.0, "noise_floor_dbfs": None,
                   "notes": {"noise_floor_dbfs": "no silent frames"}},
        "spectral_gating": {"lufs": -24.0, "peak_dbfs": -3.0, "spectral_flatness": 0.0009, "hber_delta_db": -3.5,
                            "residual_db": -20.0, "bandwidth_hz": 7000.0, "noise_floor_dbfs": -60.0, "notes": {}},
    }
    for version, values in overrides.items():
        base[version] = {**base[version], **values}
    return base


LABELS = {"noise_floor_dbfs": "Silence noise floor", "spectral_flatness": "Mean spectral flatness"}


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.000412, "0–1", "0.000412"), (0.0021, "0–1", "0.00210"), (0.5123, "0–1", "0.512"), (0.002, "0–1", "0.00200"),
    (-23.04, "LUFS", "-23.0"), (-0.04, "dB", "-0.0400"), (1.0, "dB", "1.0"), (0.0, "dB", "0"), (11250.4, "Hz", "11250"),
    (7, "count", "7"), (None, "dB", "undefined"), (-0.00001, "dB", "-0.0000100"), (float("nan"), "dB", "undefined"),
])
def test_format_value_never_reads_zero_for_a_nonzero_value(value, unit, text):
    assert format_value(value, unit) == text


def test_no_small_value_formats_as_zero():
    for exponent in range(-9, 1):
        for mantissa in (1.0, 4.99, 9.99):
            text = format_value(mantissa * 10.0 ** exponent, "0–1")
            assert float(text) != 0.0 and text.strip("0.") != "", text


def test_signed_db_uses_a_sign_either_way():
    assert signed_db(1.26) == "+1.3 dB"
    assert signed_db(-3.5) == "−3.5 dB"
    assert signed_db(0.5) == "+0.500 dB"


@pytest.mark.parametrize(("values", "better", "best"), [
    ({"input": 0.3, "demucs": 0.1, "spectral_gating": 0.2}, "lower", {"demucs"}),
    ({"input": 0.3, "demucs": 0.1, "spectral_gating": 0.2}, "higher", {"input"}),
    ({"input": None, "demucs": 1.0, "spectral_gating": -2.0}, "higher", {"demucs"}),  # the reference is not compared
    ({"input": None, "demucs": 1.0, "spectral_gating": None}, "higher", set()),  # nothing to compare with
    ({"input": -18.0, "demucs": -18.5, "spectral_gating": -24.0}, None, set()),  # context-only row
    ({"input": 5.0, "demucs": 5.0, "spectral_gating": 4.0}, "higher", {"input", "demucs"}),  # a tie: both win
    ({"input": 5.0, "demucs": 5.0, "spectral_gating": 5.0}, "lower", set()),  # all equal: none is better
])
def test_best_versions_follow_the_stated_direction(values, better, best):
    assert best_versions(values, better) == best


def test_verdict_names_the_winners_with_their_numbers():
    result = verdict(run_metrics(), labels=LABELS)
    high, noise, changed = result.findings
    assert high.startswith("Demucs has the most high-band energy relative to the input")
    assert "ΔHBER +1.3 dB" in high
    assert "4.8 dB more than Spectral gating" in high and "−3.5 dB" in high
    assert noise.startswith("Demucs is the least noise-like") and "0.000400" in noise
    assert "Spectral gating 0.000900" in noise and "Input 0.00210" in noise
    assert changed.startswith("Demucs changed the clip most") and "-8.0 dB" in changed and "-20.0 dB" in changed
    assert result.proxy_note == PROXY_NOTE


def test_verdict_when_gating_wins_and_no_restoration_adds_highs():
    metrics = run_metrics(demucs={"hber_delta_db": -2.0, "spectral_flatness": 0.01, "residual_db": -30.0},
                          spectral_gating={"hber_delta_db": -0.5})
    high, noise, changed = verdict(metrics).findings
    assert high.startswith("Neither restoration added high-band energy. Spectral gating lost the least")
    assert noise.startswith("Spectral gating is the least noise-like")
    assert changed.startswith("Spectral gating changed the clip most")


def test_verdict_says_when_two_restorations_tie():
    metrics = run_metrics(spectral_gating={"hber_delta_db": 1.27})
    assert "the same high-band energy" in verdict(metrics).findings[0]


def test_verdict_warns_of_clipping_and_undefined_metrics():
    result = verdict(run_metrics(), labels=LABELS)
    clipping = [w for w in result.warnings if "clips" in w]
    assert len(clipping) == 1 and clipping[0].startswith("Demucs clips") and "+2.3 dBFS" in clipping[0]
    undefined = [w for w in result.warnings if "undefined" in w]
    assert undefined == ["Silence noise floor is undefined for Input and Demucs (the table's notes say why)."]
    assert "**Warning:** Demucs clips" in result.markdown()


def test_no_clipping_warning_at_or_below_full_scale():
    result = verdict(run_metrics(demucs={"peak_dbfs": 0.0}))
    assert not [w for w in result.warnings if "clips" in w]


def test_verdict_without_demucs_says_why_and_compares_what_is_left():
    metrics = run_metrics()
    del metrics["demucs"]
    result = verdict(metrics, unavailable={"demucs": "the Demucs weights are not installed"})
    assert result.findings[0].startswith("Only Spectral gating could be compared on high-band energy")
    assert "Demucs was not run: the Demucs weights are not installed" in result.warnings
    assert result.findings[1].startswith("Spectral gating is the least noise-like")


def test_titles_and_ground_truth_link():
    result = verdict(run_metrics(), titles={"input": "Input (MusicGen)"}, ground_truth_link="the **Ground truth** tab")
    assert "Input (MusicGen) 0.00210" in result.findings[1]
    assert "the **Ground truth** tab" in result.proxy_note and result.proxy_note != PROXY_NOTE


@pytest.mark.parametrize(("better", "expected"), [
    ("lower = more tonal, less noise-like", "lower"), ("higher = wider band kept", "higher"),
    ("> 0 = more high-band energy than the input", "higher"), ("context only; versions are matched", None),
    ("share of energy above the cutoff; higher = brighter", None), ("≤ 0 means no clipping; context only", None),
])
def test_direction_is_read_from_the_better_text(better, expected):
    assert direction(better) == expected


def test_registry_rows_have_the_directions_the_verdict_needs():
    """The comparable rows of the metric registry, read through :func:`direction`."""
    from restoration.metrics import METRICS_BY_NAME

    def of(name):
        return direction(METRICS_BY_NAME[name].better)

    assert of("spectral_flatness") == "lower" and of("hber_delta_db") == "higher"
    assert of("bandwidth_hz") == "higher" and of("noise_floor_p10_dbfs") == "lower"
    assert of("lufs") is None and of("peak_dbfs") is None and of("silent_frames") is None

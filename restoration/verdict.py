"""The verdict of one comparison: a few plain sentences derived from its metrics.

A reader should be able to answer "Demucs or gating?" in a minute. The verdict says, from the
numbers of this run only:

- which restoration has the most high-band energy relative to the input (ΔHBER), and by how much;
- which version is the least noise-like (lowest mean spectral flatness);
- which restoration changed the clip most (removed energy, closest to 0 dB);
- warnings: clipping (a sample peak above 0 dBFS) and metrics that are undefined;
- the reminder that these are proxies, not a judgement of quality against a clean original.

It also formats numbers (:func:`format_value`, enough significant digits that no value reads
0.000) and picks the better value of a comparable row (:func:`best_versions`), given the
direction ("higher" or "lower") that the metric registry states for that row.

Inputs are the run's metrics: version → the dict :func:`restoration.metrics.measure` returns
(``None`` for an undefined value, its reason in ``notes``). Versions missing from the dict were
not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .versions import INPUT, RESTORATIONS, TITLES, VERSIONS

#: Differences smaller than this (in the metric's own unit) count as a tie in the sentences.
TIE_DB = 0.05
#: Significant digits shown for values below 1 in magnitude.
SIGNIFICANT_DIGITS = 3
#: The proxy reminder, shown under every verdict.
PROXY_NOTE = (
    "These numbers are proxies: they describe the signals, not how good they sound. None of them "
    "compares a version with a clean original; listen, and trust a blind listening test over them."
)
#: The proxy reminder once a ground-truth study can be pointed at (``{link}`` is the place to look).
PROXY_NOTE_WITH_GROUND_TRUTH = (
    "These numbers are proxies: they describe the signals, not how good they sound. To see whether "
    "they track real restoration, where the clean original is known, open {link}."
)


def format_value(value, unit: str = "") -> str:
    """A metric value as text: ``undefined`` for ``None``; never ``0.000`` for a value that is not 0.

    Hz are whole numbers, counts integers, values of magnitude ≥ 1 have one decimal, smaller
    ones three significant digits (0.000412, 0.0213, 0.512). No "-0.0".
    """
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return str(value)
    if unit == "count":
        return f"{value:g}" if isinstance(value, float) else str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return "undefined"
    if value == 0.0:
        return "0"
    if unit == "Hz" and abs(value) >= 1.0:
        text = f"{value:.0f}"
    elif abs(value) >= 1.0:
        text = f"{value:.1f}"
    else:
        decimals = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))
        text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def signed_db(value: float) -> str:
    """A dB difference with its sign: ``+1.2 dB``, ``−3.4 dB`` (a real minus sign)."""
    text = format_value(abs(value), "dB")
    return f"{'+' if value >= 0 else '−'}{text} dB"


def direction(better: str) -> str | None:
    """The direction a registry entry's "better means" text states: ``"higher"``, ``"lower"`` or ``None``.

    The text leads with it: "lower = more tonal …", "higher = wider band kept", "> 0 = more
    high-band energy …" (higher). Anything else ("context only", "share of energy …; higher =
    brighter", "frames below the gate …") states no better direction, and its row is context.
    """
    head = better.strip().lower()
    if head.startswith(("lower =", "lower is", "< 0 =")):
        return "lower"
    if head.startswith(("higher =", "higher is", "> 0 =")):
        return "higher"
    return None


def best_versions(values: dict[str, float | None], better: str | None) -> set[str]:
    """The versions holding the better value of one row.

    ``values`` maps version → value (``None`` when undefined or not comparable, e.g. the input's
    ΔHBER, which is the reference); ``better`` is the registry's direction, ``"higher"`` or
    ``"lower"``; anything else (a context-only row) marks nothing. Ties all win. Fewer than two
    comparable values mark nothing: there is nothing to compare.
    """
    if better not in ("higher", "lower"):
        return set()
    defined = {v: float(x) for v, x in values.items() if x is not None and math.isfinite(float(x))}
    if len(defined) < 2:
        return set()
    target = max(defined.values()) if better == "higher" else min(defined.values())
    if all(math.isclose(x, target, rel_tol=1e-9, abs_tol=1e-12) for x in defined.values()):
        return set()  # all equal: no value is better
    return {v for v, x in defined.items() if math.isclose(x, target, rel_tol=1e-9, abs_tol=1e-12)}


@dataclass(frozen=True)
class Verdict:
    """The sentences of one comparison's verdict, in reading order."""

    findings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    proxy_note: str = PROXY_NOTE

    def markdown(self) -> str:
        """The verdict as Markdown: the findings as a list, then warnings in bold, then the proxy note."""
        lines = [f"- {line}" for line in self.findings]
        lines += [f"- **Warning:** {line}" for line in self.warnings]
        lines.append(f"\n*{self.proxy_note}*")
        return "\n".join(lines)


def _title(version: str, titles: dict | None) -> str:
    return (titles or {}).get(version) or TITLES[version]


def _value(metrics: dict, version: str, key: str) -> float | None:
    value = (metrics.get(version) or {}).get(key)
    return None if value is None else float(value)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _high_band(metrics: dict, titles: dict | None) -> str | None:
    deltas = {v: _value(metrics, v, "hber_delta_db") for v in RESTORATIONS}
    deltas = {v: d for v, d in deltas.items() if d is not None}
    if not deltas:
        return None
    ranked = sorted(deltas, key=lambda v: deltas[v], reverse=True)
    top = ranked[0]
    if len(ranked) == 1:
        return (f"Only {_title(top, titles)} could be compared on high-band energy: {signed_db(deltas[top])} "
                "relative to the input (ΔHBER).")
    other = ranked[1]
    gap = deltas[top] - deltas[other]
    if gap < TIE_DB:
        return (f"{_title(top, titles)} and {_title(other, titles)} have the same high-band energy relative to the "
                f"input (ΔHBER {signed_db(deltas[top])} and {signed_db(deltas[other])}).")
    if deltas[top] <= 0.0:
        return (f"Neither restoration added high-band energy. {_title(top, titles)} lost the least: "
                f"ΔHBER {signed_db(deltas[top])} against {signed_db(deltas[other])} for {_title(other, titles)}.")
    return (f"{_title(top, titles)} has the most high-band energy relative to the input: ΔHBER "
            f"{signed_db(deltas[top])}, {format_value(gap, 'dB')} dB more than {_title(other, titles)} "
            f"({signed_db(deltas[other])}).")


def _least_noise_like(metrics: dict, titles: dict | None) -> str | None:
    flat = {v: _value(metrics, v, "spectral_flatness") for v in VERSIONS}
    flat = {v: f for v, f in flat.items() if f is not None}
    if len(flat) < 2:
        return None
    ranked = sorted(flat, key=lambda v: flat[v])
    others = ", ".join(f"{_title(v, titles)} {format_value(flat[v], '0–1')}" for v in ranked[1:])
    top = ranked[0]
    if math.isclose(flat[top], flat[ranked[1]], rel_tol=0.01):
        return (f"{_title(top, titles)} and {_title(ranked[1], titles)} are about equally noise-like (mean spectral "
                f"flatness {format_value(flat[top], '0–1')}; {others}).")
    return (f"{_title(top, titles)} is the least noise-like: mean spectral flatness "
            f"{format_value(flat[top], '0–1')} ({others}; lower is more tonal).")


def _changed_most(metrics: dict, titles: dict | None) -> str | None:
    removed = {v: _value(metrics, v, "residual_db") for v in RESTORATIONS}
    removed = {v: r for v, r in removed.items() if r is not None}
    if not removed:
        return None
    ranked = sorted(removed, key=lambda v: removed[v], reverse=True)
    top = ranked[0]
    text = (f"{_title(top, titles)} changed the clip most: input − output carries "
            f"{format_value(removed[top], 'dB')} dB of the input's energy")
    if len(ranked) > 1:
        text += f" ({_title(ranked[1], titles)}: {format_value(removed[ranked[1]], 'dB')} dB)"
    return text + "; 0 dB would be a change as large as the clip itself."


def _warnings(metrics: dict, titles: dict | None, unavailable: dict | None, labels: dict | None) -> list[str]:
    warnings = []
    for version in VERSIONS:
        peak = _value(metrics, version, "peak_dbfs")
        if peak is not None and peak > 0.0:
            warnings.append(f"{_title(version, titles)} clips: its sample peak is {signed_db(peak)}FS, above "
                            "0 dBFS. The players play a loudness-matched copy under the peak ceiling, but the file "
                            "as measured would distort when played at full level.")
    for version, reason in (unavailable or {}).items():
        warnings.append(f"{_title(version, titles)} was not run: {reason}")
    undefined: dict[str, list[str]] = {}
    for version in VERSIONS:
        values = metrics.get(version)
        if values is None or version in (unavailable or {}):
            continue
        for key in (values.get("notes") or {}):
            if version == INPUT and key in ("hber_delta_db", "residual_db", "hber_bands_db"):
                continue  # the input is the reference: nothing to say
            if labels is not None and key not in labels:
                continue
            undefined.setdefault(key, []).append(_title(version, titles))
    for key, names in undefined.items():
        label = (labels or {}).get(key, key)
        warnings.append(f"{label} is undefined for {_join(names)} (the table's notes say why).")
    return warnings


def verdict(metrics: dict[str, dict], *, titles: dict | None = None, unavailable: dict | None = None,
            labels: dict | None = None, ground_truth_link: str | None = None) -> Verdict:
    """The verdict of one comparison, from its metrics only.

    ``titles`` overrides version titles (e.g. "Input (MusicGen)"); ``unavailable`` maps a version
    that was not run to the reason; ``labels`` maps metric name → label for the undefined-value
    warnings (only those metrics are reported); ``ground_truth_link`` (Markdown) is where the
    proxy note points once a ground-truth study exists.
    """
    findings = [s for s in (_high_band(metrics, titles), _least_noise_like(metrics, titles),
                            _changed_most(metrics, titles)) if s]
    note = PROXY_NOTE_WITH_GROUND_TRUTH.format(link=ground_truth_link) if ground_truth_link else PROXY_NOTE
    return Verdict(findings, _warnings(metrics, titles, unavailable, labels), note)



"""How a finished run is shown on the page: the metrics table, its notes, provenance, model status.

Every function takes a :class:`~restoration.app.run_cache.RunResult` (or a status dict) and
returns text: cells, HTML or Markdown. Nothing here computes a number; the values come from
``metrics.json`` (:func:`restoration.metrics.measure_versions`) and ``report.json``.
"""

from __future__ import annotations

import logging

from ..pipeline import public_model_name
from ..versions import DEMUCS, INPUT, VERSIONS, version_title
from .run_cache import RunResult

__all__ = ["metrics_html", "metrics_table", "model_status", "model_status_markdown", "notes_markdown", "provenance"]

logger = logging.getLogger(__name__)


def _fmt(value, unit: str) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return str(value)
    if unit == "count":
        return f"{value:g}" if isinstance(value, float) else str(int(value))
    value = float(value)
    text = f"{value:.0f}" if unit == "Hz" else f"{value:.3f}" if unit == "0–1" else f"{value:.1f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.0"


def metrics_table(result: RunResult) -> dict:
    """The metrics as a table: a row per metric (label, unit, a column per version, what better means).

    Per-band ΔHBER rows follow ΔHBER, and a last row says how each version was made
    (seed and model of the input; why a version is missing). Cells are text; ``undefined``
    marks a value that cannot be computed (its reason is in :func:`notes_markdown`).
    Returns ``{"headers": [...], "data": [[...], ...]}`` for ``gr.Dataframe``.
    """
    from ..metrics import METRIC_INFO

    kind = (result.summary.get("source") or {}).get("kind", "prompt")
    headers = ["Metric", "Unit", *(version_title(v, kind=kind) for v in VERSIONS), "Better means"]
    unavailable = result.unavailable

    def cells(key: str, unit: str, band: str | None = None) -> list[str]:
        row = []
        for version in VERSIONS:
            if version in unavailable or version not in result.metrics:
                row.append("not run")
                continue
            values = result.metrics[version]
            value = (values.get("hber_bands_db") or {}).get(band) if band else values.get(key)
            if version == INPUT and key in ("hber_delta_db", "residual_db"):
                row.append("reference")
            else:
                row.append(_fmt(value, unit))
        return row

    bands = list((result.metrics.get(INPUT) or {}).get("hber_bands_db") or {})
    data = []
    for key, (label, unit, better) in METRIC_INFO.items():
        data.append([label, unit, *cells(key, unit), better])
        if key == "hber_delta_db":
            for band in bands:
                data.append([f"ΔHBER {band.replace('-', '–').replace('kHz', ' kHz')}", "dB",
                             *cells(key, "dB", band), "> 0 = more energy in this band than the input"])
    data.append(["How it was made", "", *(provenance(result, v) for v in VERSIONS), "settings of this run"])
    return {"headers": headers, "data": data}


def metrics_html(result: RunResult) -> str:
    """:func:`metrics_table` as an HTML table for the page (cells carry ``data-label`` for narrow screens)."""
    from html import escape

    table = metrics_table(result)
    headers, rows = table["headers"], table["data"]
    head = "".join(f"<th scope='col'>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = [f"<th scope='row'>{escape(str(row[0]))}</th>"]
        for header, cell in zip(headers[1:], row[1:]):
            text = str(cell)
            css = " class='undefined'" if text in ("undefined", "not run", "reference") else ""
            cells.append(f"<td data-label='{escape(header)}'{css}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<div class='metrics-wrap'><table class='metrics'><caption>Metrics: every version measured at the "
        "input's sample rate, in one band</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def provenance(result: RunResult, version: str) -> str:
    """One line on how ``version`` was made (or why it is missing)."""
    settings = result.summary.get("settings") or {}
    source = result.summary.get("source") or {}
    if version in result.unavailable:
        return f"not run: {result.unavailable[version]}"
    if version == INPUT:
        if source.get("kind") == "prompt":
            gen = settings.get("generation") or {}
            return (f"MusicGen {source.get('model')}, seed {source.get('seed')}, {gen.get('mode', 'exact')} mode, "
                    f"guidance {gen.get('guidance_scale')}, temperature {gen.get('temperature')}, "
                    f"top-k {gen.get('top_k')}")
        return f"your file {source.get('file', '')}".strip()
    if version == DEMUCS:
        dm = settings.get("demucs") or {}
        gains = ", ".join(f"{stem}×{gain:g}" for stem, gain in dm.get("stem_gains") or [])
        return f"{dm.get('model')}, shifts {dm.get('shifts')}" + (f", gains {gains}" if gains else "")
    gate = settings.get("gating") or {}
    mode = "stationary" if gate.get("stationary") else "non-stationary"
    return f"noisereduce, {mode}, strength {gate.get('prop_decrease')}, threshold {gate.get('threshold_std_used')} σ"


def notes_markdown(result: RunResult) -> str:
    """Why some cells are undefined (one line per metric and reason), plus a line on loudness matching."""
    from ..metrics import METRIC_INFO

    kind = (result.summary.get("source") or {}).get("kind", "prompt")
    reasons: dict[tuple[str, str], list[str]] = {}
    for version in VERSIONS:
        for key, note in ((result.metrics.get(version) or {}).get("notes") or {}).items():
            if key not in METRIC_INFO or (version == INPUT and key in ("hber_delta_db", "residual_db")):
                continue
            reasons.setdefault((key, note), []).append(version_title(version, kind=kind))
    lines = [f"- **{METRIC_INFO[key][0]}** is undefined for {', '.join(names)}: {note}"
             for (key, note), names in reasons.items()]
    loud = result.summary.get("loudness_matching") or {}
    if loud:
        target = next(iter(loud.values())).get("target_lufs")
        gains = ", ".join(f"{version_title(v, kind=kind)} {loud[v]['gain_db']:+.1f} dB" for v in VERSIONS if v in loud)
        lines.append(f"- The players play copies matched to {target:.1f} LUFS ({gains}); "
                     "untick *loudness-matched* for the raw levels.")
    return "\n".join(lines)


def model_status() -> dict:
    """Each model's availability, checked on disk without loading or downloading anything."""
    from .. import generation as gen
    from .. import separation

    out = {}
    for role, fn in (("musicgen", gen.model_status), ("demucs", separation.model_status)):
        try:
            out[role] = fn()
        except Exception as exc:  # a status check must never take the page down
            logger.exception("model status of %s failed", role)
            out[role] = {"available": False, "detail": f"status check failed: {type(exc).__name__}"}
    return out


def model_status_markdown(status: dict) -> str:
    """One line per model: available or not, and the fix when not."""
    mg, dm = status.get("musicgen") or {}, status.get("demucs") or {}
    lines = []
    name = public_model_name(str(mg.get("model_id", "MusicGen")))
    if mg.get("available"):
        lines.append(f"**MusicGen** `{name}`: available ({mg.get('source')}, {mg.get('device', 'cpu')}).")
    else:
        lines.append(f"**MusicGen** `{name}`: **not available**, so *Generate* cannot work. "
                     f"Fix: {_fix_sentence(mg.get('fix') or mg.get('detail', ''))}")
    dname = dm.get("model", "Demucs")
    if dm.get("available"):
        lines.append(f"**Demucs** `{dname}`: available ({dm.get('source')}).")
    else:
        lines.append(f"**Demucs** `{dname}`: **not available**, so only spectral gating runs. "
                     f"{_fix_sentence(dm.get('detail') or '')} Fix: {_fix_sentence(dm.get('fix') or '')}")
    return "  \n".join(lines)


def _fix_sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        return ""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

"""How a run is shown on the page: verdict, metrics table, details, alt text, progress, errors, model status.

Every function takes a :class:`~restoration.app.run_cache.RunResult` (or a status dict, a
stage, an exception) and returns text: cells, HTML or Markdown. Nothing here computes a
number; the values come from ``metrics.json`` (:func:`restoration.metrics.measure_versions`)
and ``report.json``. The verdict's sentences and the number format are
:mod:`restoration.verdict`'s; which value of a row is better comes from the metric registry
(:data:`restoration.metrics.METRICS`, read by :func:`restoration.verdict.direction`).
"""

from __future__ import annotations

import logging
import re
from html import escape

from ..pipeline import public_model_name
from ..verdict import best_versions, direction, format_value
from ..versions import DEMUCS, INPUT, RESTORATIONS, VERSIONS, version_title
from .run_cache import RunResult

__all__ = ["alt_texts", "details_html", "metrics_html", "metrics_table", "model_status", "model_status_markdown",
           "musicgen_known_missing", "notes_markdown", "progress_html", "provenance", "user_message",
           "verdict_markdown"]

logger = logging.getLogger(__name__)


_fmt = format_value


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


def _kind(result: RunResult) -> str:
    return (result.summary.get("source") or {}).get("kind", "prompt")


def _row_values(result: RunResult, key: str, band: str | None = None) -> dict:
    """version → the row's value, ``None`` where undefined, not run, or the input's reference cell."""
    values = {}
    for version in VERSIONS:
        metrics = result.metrics.get(version)
        if version in result.unavailable or metrics is None:
            values[version] = None
        elif version == INPUT and key in ("hber_delta_db", "residual_db"):
            values[version] = None
        else:
            values[version] = (metrics.get("hber_bands_db") or {}).get(band) if band else metrics.get(key)
    return values


def _rows(result: RunResult) -> list[dict]:
    """The table's rows in registry order: key, label, unit, better text, direction, values, cells."""
    from ..metrics import METRICS

    bands = list((result.metrics.get(INPUT) or {}).get("hber_bands_db") or {})
    rows = []
    for metric in METRICS:
        if not metric.in_table:
            continue
        specs = [(metric.label, None, metric.better)]
        if metric.name == "hber_delta_db":
            specs += [(f"ΔHBER {b.replace('-', '–').replace('kHz', ' kHz')}", b,
                       "> 0 = more energy in this band than the input") for b in bands]
        for label, band, better in specs:
            values = _row_values(result, metric.name, band)
            cells = {}
            for version in VERSIONS:
                if version in result.unavailable or version not in result.metrics:
                    cells[version] = "not run"
                elif version == INPUT and metric.name in ("hber_delta_db", "residual_db"):
                    cells[version] = "reference"
                else:
                    cells[version] = format_value(values[version], metric.unit)
            rows.append({"key": metric.name, "label": label, "unit": metric.unit, "better": better,
                         "direction": direction(better), "values": values, "cells": cells})
    return rows


def _head(result: RunResult) -> str:
    kind = _kind(result)
    heads = "".join(f"<th scope='col'>{escape(version_title(v, kind=kind))}</th>" for v in VERSIONS)
    return f"<thead><tr><th scope='col'>Metric</th>{heads}</tr></thead>"


def _body_row(row: dict, *, marks: set) -> str:
    unit = f" <span class='unit'>({escape(row['unit'])})</span>" if row["unit"] else ""
    label = (f"<th scope='row'>{escape(row['label'])}{unit}"
             f"<span class='better-means'>{escape(row['better'])}</span></th>")
    cells = []
    for version in VERSIONS:
        text = escape(row["cells"][version])
        if version in marks:
            cells.append(f"<td class='better'><span aria-hidden='true'>✔ </span>{text}"
                         "<span class='sr-only'> (better)</span></td>")
        elif row["cells"][version] in ("undefined", "not run", "reference"):
            cells.append(f"<td class='undefined'>{text}</td>")
        else:
            cells.append(f"<td>{text}</td>")
    return f"<tr>{label}{''.join(cells)}</tr>"


def metrics_html(result: RunResult) -> str:
    """The comparable rows as an HTML table, the better value of each row marked (✔, and "(better)" for readers).

    A row is comparable when the registry's "better means" states a direction (:func:`direction`);
    the others are context and go to :func:`details_html`.
    """
    rows = [r for r in _rows(result) if r["direction"]]
    body = "".join(_body_row(r, marks=best_versions(r["values"], r["direction"])) for r in rows)
    return (
        "<div class='metrics-wrap'><table class='metrics'><caption>Comparable metrics, every version measured at "
        "the input's rate in one band. ✔ marks the better value of a row.</caption>"
        f"{_head(result)}<tbody>{body}</tbody></table></div>"
    )


def details_html(result: RunResult) -> str:
    """A closed ``<details>``: the context rows, how each version was made, and why cells are undefined."""
    kind = _kind(result)
    rows = [r for r in _rows(result) if not r["direction"]]
    body = "".join(_body_row(r, marks=set()) for r in rows)
    made = "".join(f"<td>{escape(provenance(result, v))}</td>" for v in VERSIONS)
    body += f"<tr><th scope='row'>How it was made</th>{made}</tr>"
    notes = _notes_lines(result)
    notes_html = ("<ul class='notes'>" + "".join(f"<li>{escape(line)}</li>" for line in notes) + "</ul>") if notes else ""
    return (
        "<details class='run-details'><summary>Context rows, how each version was made, and notes</summary>"
        "<div class='metrics-wrap'><table class='metrics'><caption>Context: these rows describe the versions "
        f"but say nothing about which is better</caption>{_head(result)}<tbody>{body}</tbody></table></div>"
        f"{notes_html}</details>"
    )


#: Where the page's proxy note points: the tab that scores restorations against a clean original.
GROUND_TRUTH_LINK = "the **Ground truth** tab (clean music through MusicGen's own codec, restored and scored against the original)"


def verdict_markdown(result: RunResult, *, ground_truth_link: str | None = GROUND_TRUTH_LINK) -> str:
    """The verdict of ``result`` (:func:`restoration.verdict.verdict`) as Markdown, with the page's titles."""
    from ..metrics import METRIC_INFO
    from ..verdict import verdict

    kind = _kind(result)
    titles = {v: version_title(v, kind=kind) for v in VERSIONS}
    labels = {key: label for key, (label, _, _) in METRIC_INFO.items()}
    metrics = {v: m for v, m in result.metrics.items() if v not in result.unavailable}
    return "### Verdict\n" + verdict(metrics, titles=titles, unavailable=result.unavailable, labels=labels,
                                    ground_truth_link=ground_truth_link).markdown()


def alt_texts(result: RunResult) -> dict:
    """Alt text of every figure of ``result``: ``mel`` and ``diff`` (version → text) and ``spectrum``."""
    from .. import plots

    metrics = result.metrics.get(INPUT) or {}
    rate = int(metrics.get("sample_rate") or 32000)
    duration_s = _duration_s(result)
    kind = _kind(result)
    mel = {v: plots.mel_alt_text(v, duration_s=duration_s, sample_rate=rate, title=version_title(v, kind=kind),
                                 bandwidth_hz=(result.metrics.get(v) or {}).get("bandwidth_hz"))
           for v in VERSIONS}
    diff = {v: plots.mel_difference_alt_text(v, duration_s=duration_s, sample_rate=rate,
                                             hber_delta_db=(result.metrics.get(v) or {}).get("hber_delta_db"))
            for v in RESTORATIONS}
    spectrum = plots.spectrum_alt_text(
        {v: (result.metrics.get(v) or {}).get("bandwidth_hz") for v in VERSIONS if v in result.metrics},
        cutoff_hz=float(metrics.get("hber_cutoff_hz") or 8000.0),
        band_hz=float(metrics.get("analysis_band_hz") or rate * 0.47))
    return {"mel": mel, "diff": diff, "spectrum": spectrum}


def _duration_s(result: RunResult) -> float:
    import soundfile as sf

    path = result.audio(INPUT, raw=True)
    try:
        info = sf.info(path)
        return info.frames / info.samplerate
    except Exception:  # a figure's alt text must never fail a run
        return 0.0


def progress_html(stage: str, percent: float | None = None) -> str:
    """The one place that shows a run's progress: the stage in words, a bar and its percentage."""
    if percent is None:
        return f"<div class='run-progress' role='status'><span class='stage'>{escape(stage)}</span></div>"
    value = int(round(max(0.0, min(100.0, percent))))
    return (f"<div class='run-progress' role='status'><span class='stage'>{escape(stage)} · {value} %</span>"
            f"<progress max='100' value='{value}' aria-label='Progress of the run'>{value} %</progress></div>")


def done_html(result: RunResult) -> str:
    """The progress place once a run is complete: how long it took, the seed, the run's id."""
    verb = "Served from the cache" if result.cached else "Done"
    seed = f" · seed {result.seed}" if result.seed is not None else ""
    return (f"<div class='run-progress' role='status'><span class='stage'><strong>{verb}</strong> in "
            f"{result.elapsed_s:.1f} s{seed} · run <code>{escape(result.key[:10])}</code></span></div>")


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s/:'\"]+)+/([^\s/:'\"]+)")


def user_message(text: str) -> str:
    """An error message fit for the page: no server paths (a file is named by its name), no library internals.

    "cannot read /tmp/gradio/ab12/fake.mp3 as audio (wav, flac, ogg or mp3 expected): Error opening
    …: File does not exist or is not a regular file (possibly a pipe?)" becomes "Cannot read fake.mp3
    as audio (wav, flac, ogg or mp3 expected)."
    """
    text = " ".join(str(text).split())
    text = _PATH.sub(lambda m: m.group(1), text)
    cut = text.find("expected):")
    if cut >= 0:
        text = text[: cut + len("expected)")]
    text = text.strip() or "The request could not be run."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def musicgen_known_missing(status: dict) -> str | None:
    """The message for a MusicGen model known to be missing (no hub retries to wait for), else ``None``.

    Known missing: a local folder that does not exist or lacks files, or weights not cached while
    ``HF_HUB_OFFLINE`` says not to download. A model that is merely not cached while online may
    still download, so it is left to the loader.
    """
    if status.get("available"):
        return None
    if status.get("source") not in ("missing-folder", "local-folder") and not status.get("offline"):
        return None
    name = public_model_name(str(status.get("model_id", "MusicGen")))
    missing = ", ".join(status.get("missing") or []) or "its files"
    return (f"MusicGen model {name!r} cannot be loaded: {missing} missing, so Generate cannot run. "
            f"Fix: {_fix_sentence(status.get('fix') or '')}")


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


def _notes_lines(result: RunResult) -> list[str]:
    """Why some cells are undefined (one line per metric and reason), plus a line on loudness matching."""
    from ..metrics import METRIC_INFO

    kind = _kind(result)
    reasons: dict[tuple[str, str], list[str]] = {}
    for version in VERSIONS:
        for key, note in ((result.metrics.get(version) or {}).get("notes") or {}).items():
            if key not in METRIC_INFO or (version == INPUT and key in ("hber_delta_db", "residual_db")):
                continue
            reasons.setdefault((key, note), []).append(version_title(version, kind=kind))
    lines = [f"{METRIC_INFO[key][0]} is undefined for {', '.join(names)}: {note}"
             for (key, note), names in reasons.items()]
    loud = result.summary.get("loudness_matching") or {}
    if loud:
        target = next(iter(loud.values())).get("target_lufs")
        gains = ", ".join(f"{version_title(v, kind=kind)} {loud[v]['gain_db']:+.1f} dB" for v in VERSIONS if v in loud)
        lines.append(f"The players play copies matched to {target:.1f} LUFS ({gains}); "
                     "untick loudness-matched for the raw levels.")
    return lines


def notes_markdown(result: RunResult) -> str:
    """:func:`_notes_lines` as a Markdown list."""
    return "\n".join(f"- {line}" for line in _notes_lines(result))


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

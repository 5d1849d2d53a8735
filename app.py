"""MusicGen Restoration Lab — the Gradio demo and Hugging Face Space.

Type a genre, hear MusicGen's clip beside its two zero-shot restorations (Demucs and
spectral gating), see their Mel spectrograms and the metrics, and decide for yourself.

This file only lays out widgets and translates between them and the ``restoration``
package (requests, the run cache, jobs and the table's text live in ``restoration.app``).

API for scripts (``gradio_client``): ``/generate`` (prompt, duration, seed, advanced
settings) and ``/restore`` (audio, restoration settings) both return the three audios,
the three Mel spectrograms and the metrics table. See README.md.

Run: ``python app.py`` (honours ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``). A Space with
``sdk: gradio`` and ``app_file: app.py`` runs the same file as ``__main__``, so both start the
same way: the app is launched with the listening test's participant page among its routes at
``/listening/``, then that page's start-up is run (a mounted Gradio app gets none of its own).
"""

from __future__ import annotations

try:  # ZeroGPU wants `spaces` imported before anything touches CUDA; elsewhere GPU() returns the function unchanged
    import spaces
except ImportError:  # pragma: no cover - spaces is in requirements.txt
    spaces = None

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from restoration.app import examples, jobs, presentation
from restoration.app.requests import MAX_SEED, RunRequest, max_upload_mb, prompt_request, restore_request
from restoration.app.run_cache import RunResult, mark_keep, runs_root
from restoration.errors import RestorationError
from restoration.groundtruth_ui import groundtruth_tab
from restoration.listening.admin_ui import admin_tab
from restoration.listening.auth import private_paths
from restoration.listening.pool import add_run_to_pool
from restoration.listening.ui import participant_routes, start_participant_page
from restoration.listening.web import PAGE_PATH
from restoration.metrics import METRIC_INFO
from restoration.settings import MAX_DURATION_S, MAX_PROMPT_CHARS, MIN_DURATION_S, STEMS
from restoration.versions import DEMUCS, GATING, INPUT, VERSIONS, version_title
from restoration.warmup import warm_up

logger = logging.getLogger("restoration.app")

ROOT = Path(__file__).resolve().parent
PROMPTS_FILE = ROOT / "examples" / "prompts.txt"
CLIPS_DIR = ROOT / "examples" / "audio"
CLIPS_SCRIPT = ROOT / "scripts" / "make_example_clips.py"
PARTICIPANT_PATH = PAGE_PATH
LISTENING_LINK = f"""
### Blind listening test

Participants rate the versions without knowing which is which, on a page of their own:
**[open the participant page]({PARTICIPANT_PATH}/)** and share its link with your class.
This page is not for participants: it names the versions.

The organiser creates a test from saved runs ("Add to listening test" under a comparison, or a
`batch` folder) and follows the results in the **Listening results** tab (admin token required).
The README explains a class test end to end: create, share the link, collect, export.
"""
RUN_LIMIT = 3  # concurrent runs admitted by the queue; model work inside is serialized (jobs.RUN_LOCK)

CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto; }
.version-col { min-width: min(300px, 100%) !important; }
.version-col img { width: 100%; height: auto; }
#gen-status, #restore-status { min-height: 1.5em; }
.metrics-wrap { width: 100%; }
table.metrics { width: 100%; border-collapse: collapse; table-layout: fixed; font-size: var(--text-md);
  border: none !important; }
table.metrics tr { border: none !important; }
table.metrics caption { text-align: left; font-weight: 600; padding: 0 0 6px; color: var(--body-text-color); }
table.metrics th, table.metrics td { padding: 6px 8px; border-bottom: 1px solid var(--border-color-primary);
  border-left: none !important; border-right: none !important; border-top: none !important;
  text-align: left; vertical-align: top; overflow-wrap: break-word; }
table.metrics thead th { background: var(--table-odd-background-fill, var(--background-fill-secondary)); }
table.metrics td { font-variant-numeric: tabular-nums; }
table.metrics td.undefined { color: var(--body-text-color-subdued); font-style: italic; }
table.metrics th:nth-child(1) { width: 19%; } table.metrics th:nth-child(2) { width: 7%; }
table.metrics th:nth-child(3), table.metrics th:nth-child(4), table.metrics th:nth-child(5) { width: 16%; }
table.metrics th:nth-child(6) { width: 26%; }
@media (max-width: 700px) {
  table.metrics, table.metrics tbody, table.metrics tr, table.metrics td, table.metrics th {
    display: block; width: auto !important; }
  table.metrics thead { display: none; }
  table.metrics caption { display: block; width: auto; }
  table.metrics tr { border: 1px solid var(--border-color-primary); border-radius: 6px; margin-bottom: 8px; }
  table.metrics tbody th { border-bottom: 1px solid var(--border-color-primary); }
  table.metrics td { display: flex; gap: 12px; justify-content: space-between; border: none; padding: 3px 8px; }
  table.metrics td::before { content: attr(data-label); font-weight: 600; font-style: normal;
    color: var(--body-text-color); flex: 0 0 40%; }
}
@media (max-width: 640px) { .gradio-container { padding: 4px !important; } }
"""


# --------------------------------------------------------------------------- translation helpers


def _gr_error(exc: BaseException) -> gr.Error:
    """The message the browser shows: the package's own for its errors, a short id otherwise."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, RestorationError):
        text = str(exc).strip() or type(exc).__name__
        return gr.Error(text[:1].upper() + text[1:], title="Cannot run this")
    error_id = uuid.uuid4().hex[:8]
    logger.error("unexpected error %s", error_id, exc_info=(type(exc), exc, exc.__traceback__))
    return gr.Error(
        f"Something went wrong on the server (error id {error_id}). The app is still running: "
        "please try again, and quote the id if it keeps happening.",
        title="Server error",
    )


def _gpu_seconds(request: RunRequest, session: str) -> int:
    """ZeroGPU time to reserve: generation grows with the duration; a restoration is short."""
    if request.kind == "prompt":
        return int(60 + 6 * request.generation.duration_s)
    return 90


def _gpu(fn):
    return spaces.GPU(duration=_gpu_seconds)(fn) if spaces is not None else fn


@_gpu
def _stream_on_device(request: RunRequest, session: str):
    """Where the models run: on ZeroGPU this generator runs in the GPU worker."""
    yield from jobs.stream_run(request, stop_event=jobs.running_stop_event(session))


def _run_to_end(request: RunRequest, session: str) -> RunResult:
    for event in _stream_on_device(request, session):
        if event.kind == "done":
            return event.result
        if event.kind == "error":
            raise event.error
    raise RuntimeError("the run ended without a result")


def _restoration_args(shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz, overlap=0.25,
                      threshold=0.0) -> dict:
    return dict(
        demucs_shifts=shifts, gains={"drums": drums, "bass": bass, "other": other, "vocals": vocals},
        gating=gating, gating_strength=strength, hber_cutoff_hz=hber_cutoff_hz, demucs_overlap=overlap,
        gating_threshold=threshold,
    )


def _player_paths(result: RunResult) -> dict:
    return {v: {"matched": result.audio(v), "raw": result.audio(v, raw=True)} for v in VERSIONS}


def _api_outputs(result: RunResult) -> tuple:
    """What /generate and /restore return: three audios (float32 analysis wavs), three Mel PNGs, the table."""
    return (
        *(result.audio(v, raw=True) for v in VERSIONS),
        *(result.mel(v) for v in VERSIONS),
        presentation.metrics_table(result),
    )


# --------------------------------------------------------------------------- layout pieces


@dataclass
class Controls:
    """The restoration settings of one tab's Advanced section (Demucs, gating, metrics)."""

    shifts: gr.Slider
    drums: gr.Slider
    bass: gr.Slider
    other: gr.Slider
    vocals: gr.Slider
    gating: gr.Radio
    strength: gr.Slider
    hber: gr.Slider
    overlap: gr.Slider
    threshold: gr.Slider

    def inputs(self) -> list:
        return [self.shifts, self.drums, self.bass, self.other, self.vocals, self.gating, self.strength, self.hber,
                self.overlap, self.threshold]


def restoration_controls() -> Controls:
    with gr.Row():
        shifts = gr.Slider(0, 5, value=0, step=1, label="Demucs shifts",
                           info="random-shift passes averaged (0 = off); each costs one more pass")
        gating = gr.Radio([("non-stationary (paper's baseline)", "nonstationary"), ("stationary", "stationary")],
                          value="nonstationary", label="Spectral gating mode")
        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Gating strength",
                             info="fraction of the gated noise removed")
        hber = gr.Slider(2000, 14000, value=8000, step=500, label="HBER cutoff (Hz)",
                         info="edge of the high band in ΔHBER")
    with gr.Row():
        overlap = gr.Slider(0.0, 0.9, value=0.25, step=0.05, label="Demucs overlap",
                            info="fraction by which Demucs's chunks overlap")
        threshold = gr.Slider(0.0, 5.0, value=0.0, step=0.1, label="Gating threshold (σ)",
                              info="noise std devs above the noise mean; 0 = noisereduce's default for the mode")
    gr.Markdown("Demucs stem gains: each separated stem is scaled before the stems are summed back "
                "(1 = as separated).")
    with gr.Row():
        gains = [gr.Slider(0.0, 2.0, value=1.0, step=0.05, label=f"{stem} gain", min_width=120)
                 for stem in STEMS]
    return Controls(shifts, *gains, gating, strength, hber, overlap, threshold)


@dataclass
class Panel:
    """The outputs of one comparison: three columns, then spectrum, table, residual, downloads."""

    status: gr.Markdown
    audio: dict
    mel: dict
    missing: gr.Markdown
    matched: gr.Checkbox
    spectrum: gr.Image
    table: gr.HTML
    table_data: gr.Dataframe
    notes: gr.Markdown
    residual: gr.Audio
    diffs: dict
    zip: gr.File
    state: gr.State

    def outputs(self) -> list:
        return [self.status, *self.audio.values(), *self.mel.values(), self.missing, self.spectrum, self.table,
                self.notes, self.residual, *self.diffs.values(), self.zip, self.state]

    def cleared(self, status: str) -> dict:
        empty = {c: None for c in [*self.audio.values(), *self.mel.values(), self.spectrum, self.table,
                                    self.residual, *self.diffs.values(), self.zip, self.state]}
        return {**empty, self.status: status, self.notes: "", self.missing: gr.update(value="", visible=False)}

    def filled(self, result: RunResult, *, matched: bool) -> dict:
        level = "matched" if matched else "raw"
        paths = _player_paths(result)
        missing = result.unavailable.get(DEMUCS)
        verb = "Served from the cache" if result.cached else "Done"
        seed = f" · seed {result.seed}" if result.seed is not None else ""
        return {
            self.status: f"**{verb}** in {result.elapsed_s:.1f} s{seed} · run `{result.key[:10]}`",
            **{self.audio[v]: paths[v][level] for v in VERSIONS},
            **{self.mel[v]: result.mel(v) for v in VERSIONS},
            self.missing: gr.update(value=f"**No Demucs version:** {missing}" if missing else "",
                                    visible=bool(missing)),
            self.spectrum: result.spectrum,
            self.table: presentation.metrics_html(result),
            self.notes: presentation.notes_markdown(result),
            self.residual: result.residual,
            **{self.diffs[v]: result.mel_diff(v) for v in self.diffs},
            self.zip: result.zip_path,
            self.state: {"run_dir": str(result.run_dir), "paths": paths},
        }


def comparison_panel(input_title: str, prefix: str) -> Panel:
    """The output widgets; CSS classes ``<prefix>-player-<version>``, ``<prefix>-mel-<version>`` … name them."""
    status = gr.Markdown("", elem_id=f"{prefix}-status")
    titles = {v: version_title(v) for v in VERSIONS} | {INPUT: input_title}
    audio, mel = {}, {}
    missing = None
    with gr.Row(equal_height=False):
        for version in VERSIONS:
            with gr.Column(min_width=300, elem_classes=["version-col"]):
                gr.Markdown(f"### {titles[version]}")
                audio[version] = gr.Audio(label=titles[version], type="filepath", interactive=False,
                                          buttons=["download"], elem_classes=[f"{prefix}-player-{version}"])
                if version == DEMUCS:
                    missing = gr.Markdown("", visible=False)
                mel[version] = gr.Image(label=f"Mel spectrogram — {titles[version]}", show_label=False,
                                        type="filepath", interactive=False, buttons=["download", "fullscreen"],
                                        elem_classes=[f"{prefix}-mel-{version}"])
    matched = gr.Checkbox(value=True, label="Loudness-matched playback (untick for the raw levels)",
                          elem_classes=[f"{prefix}-matched"],
                          info="All three are played at one loudness (BS.1770), so louder never passes for better.")
    spectrum = gr.Image(label="Were the highs restored? Long-term average spectrum", show_label=False, type="filepath",
                        interactive=False, buttons=["download", "fullscreen"], elem_classes=[f"{prefix}-spectrum"])
    table = gr.HTML("", elem_classes=["metrics-table", f"{prefix}-metrics"])
    # The same table as data, for the script API only (the page shows the HTML table above).
    table_data = gr.Dataframe(label="Metrics", headers=["Metric", "Unit", *titles.values(), "Better means"],
                              interactive=False, visible=False)
    notes = gr.Markdown("")
    with gr.Row():
        with gr.Column(min_width=300):
            residual = gr.Audio(label="What Demucs removed (input − Demucs, raw level)", type="filepath",
                                interactive=False, buttons=["download"])
        with gr.Column(min_width=300):
            zip_file = gr.File(label="Download everything (wavs, PNGs, metrics.json, metrics.csv)", interactive=False)
    with gr.Accordion("Difference spectrograms (output − input)", open=False):
        with gr.Row():
            diffs = {v: gr.Image(label=f"{version_title(v)} − input", show_label=False, type="filepath",
                                 interactive=False, min_width=300)
                     for v in (DEMUCS, GATING)}
    state = gr.State(None)
    return Panel(status, audio, mel, missing, matched, spectrum, table, table_data, notes, residual, diffs, zip_file,
                 state)


# --------------------------------------------------------------------------- event handlers


def _stream_to_panel(make_request, panel: Panel, matched: bool, request: gr.Request, progress, extra=None):
    """Run a request, showing progress and the audio generated so far; the last yield fills the panel."""
    try:
        run = make_request()
    except Exception as exc:
        raise _gr_error(exc) from None
    session = getattr(request, "session_hash", None) or uuid.uuid4().hex
    stop_event = jobs.stop_event_for(session)
    seed_update = {extra: str(run.generation.seed)} if extra is not None and run.generation is not None else {}
    yield {**panel.cleared("Starting…"), **seed_update}
    stream = _stream_on_device(run, session)
    finished = False
    status_shown = False
    try:
        for event in stream:
            if event.kind == "progress":
                progress(jobs.overall_fraction(run.kind, event.stage, event.fraction, event.detail),
                         desc=jobs.stage_text(event.stage, event.detail))
            elif event.kind == "chunk":
                # The status is written with the first chunk only (the progress bar counts tokens):
                # a later chunk yielded as Stop is pressed could arrive after Stop's "Stopped."
                # (another channel) and overwrite it.
                update = {panel.audio[INPUT]: event.path}
                if not status_shown:
                    update[panel.status] = "Generating… the Input player plays the audio so far."
                    status_shown = True
                yield update
            elif event.kind == "done":
                finished = True
                yield panel.filled(event.result, matched=matched)
                return
            elif event.kind == "error":
                finished = True
                if jobs.is_cancellation(event.error, stop_event):
                    yield {panel.status: "**Stopped.** Nothing was saved."}
                    return
                raise _gr_error(event.error)
    finally:
        if not finished:  # Stop cancelled this event, or the page went away: stop the work as well
            stop_event.set()
        stream.close()
        jobs.release_stop_event(session, stop_event)


def _generate_handler(panel: Panel, seed_used: gr.Textbox):
    """The "Generate" button's handler, filling ``panel`` and ``seed_used``."""

    def handle(prompt, duration, seed, guidance, temperature, top_k, mode, shifts, drums, bass, other, vocals,
               gating, strength, hber_cutoff_hz, overlap, threshold, matched, request: gr.Request,
               progress=gr.Progress()):
        restoration = _restoration_args(shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz,
                                        overlap, threshold)
        yield from _stream_to_panel(
            lambda: prompt_request(prompt, duration=duration, seed=seed, guidance=guidance, temperature=temperature,
                                   top_k=top_k, mode=mode, **restoration),
            panel, matched, request, progress, extra=seed_used,
        )

    return handle


def _restore_handler(panel: Panel):
    """The "Restore & compare" button's handler, filling ``panel``."""

    def handle(audio, shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz, overlap, threshold,
               matched, request: gr.Request, progress=gr.Progress()):
        restoration = _restoration_args(shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz,
                                        overlap, threshold)
        yield from _stream_to_panel(lambda: restore_request(audio, **restoration), panel, matched, request, progress)

    return handle


def generate(prompt: str, duration: float = 5.0, seed: int = -1, guidance: float = 3.0, temperature: float = 1.0,
             top_k: int = 250, mode: str = "exact", demucs_shifts: int = 0, gain_drums: float = 1.0,
             gain_bass: float = 1.0, gain_other: float = 1.0, gain_vocals: float = 1.0,
             gating: str = "nonstationary", gating_strength: float = 1.0, hber_cutoff_hz: float = 8000.0,
             demucs_overlap: float = 0.25, gating_threshold: float = 0.0, request: gr.Request = None):
    """Generate a clip with MusicGen and restore it with Demucs and spectral gating.

    Returns the input, Demucs and spectral-gating audio (32-bit float wavs at the input's rate
    and level), their Mel spectrograms on one colour scale, and the metrics table. A seed of -1
    draws a random one; the table's last row ("How it was made") names the seed used. A
    ``gating_threshold`` of 0 keeps noisereduce's default for the mode.
    """
    try:
        run = prompt_request(
            prompt, duration=duration, seed=seed, guidance=guidance, temperature=temperature, top_k=top_k, mode=mode,
            **_restoration_args(demucs_shifts, gain_drums, gain_bass, gain_other, gain_vocals, gating,
                                gating_strength, hber_cutoff_hz, demucs_overlap, gating_threshold),
        )
        return _api_outputs(_run_to_end(run, getattr(request, "session_hash", None) or uuid.uuid4().hex))
    except Exception as exc:
        raise _gr_error(exc) from None


def restore(audio: str, demucs_shifts: int = 0, gain_drums: float = 1.0, gain_bass: float = 1.0,
            gain_other: float = 1.0, gain_vocals: float = 1.0, gating: str = "nonstationary",
            gating_strength: float = 1.0, hber_cutoff_hz: float = 8000.0, demucs_overlap: float = 0.25,
            gating_threshold: float = 0.0, request: gr.Request = None):
    """Restore your own audio (wav, flac, ogg, mp3) with Demucs and spectral gating.

    Returns the input, Demucs and spectral-gating audio (32-bit float wavs), their Mel
    spectrograms and the metrics table. When the Demucs weights cannot be loaded, its audio and
    spectrogram are empty and the table says why; gating and the metrics are still returned.
    """
    try:
        run = restore_request(
            audio, **_restoration_args(demucs_shifts, gain_drums, gain_bass, gain_other, gain_vocals, gating,
                                       gating_strength, hber_cutoff_hz, demucs_overlap, gating_threshold),
        )
        return _api_outputs(_run_to_end(run, getattr(request, "session_hash", None) or uuid.uuid4().hex))
    except Exception as exc:
        raise _gr_error(exc) from None


def _stop(request: gr.Request):
    stopped = jobs.request_stop(getattr(request, "session_hash", None))
    logger.info("stop requested (%s)", "a run was stopped" if stopped else "nothing was running")
    return "**Stopped.** Nothing was saved."


def _swap_levels(matched: bool, state):
    if not state:
        return [gr.update() for _ in VERSIONS]
    level = "matched" if matched else "raw"
    return [state["paths"][v][level] for v in VERSIONS]


def _add_to_listening(state):
    if not state:
        raise gr.Error("Generate a clip first, then add it to the listening test.")
    try:
        message = add_run_to_pool(Path(state["run_dir"]))
        mark_keep(state["run_dir"])
    except Exception as exc:
        raise _gr_error(exc) from None
    gr.Info(message)
    return message


_STATUS: dict = {}
_STATUS_LOCK = threading.Lock()


def _model_status_text() -> str:
    """Which models can run, checked on disk (no loading); computed once, then every minute at most."""
    with _STATUS_LOCK:
        if not _STATUS or time.monotonic() - _STATUS["at"] > 60:
            _STATUS.update(text=presentation.model_status_markdown(presentation.model_status()), at=time.monotonic())
        return _STATUS["text"]


# --------------------------------------------------------------------------- the page


ABOUT = f"""
## What this compares

MusicGen's clips often sound a little noisy or dull. Can a model trained for something else repair
them *zero-shot*? This lab runs the same clip through two restorations and shows you the three versions
side by side:

- **Input (MusicGen)** — the clip as generated (or your own file);
- **Demucs** — the four stems that HTDemucs separates (drums, bass, other, vocals), summed back. What the
  stems do not hold is dropped; you can hear it under *What Demucs removed*;
- **Spectral gating** — noisereduce's spectral gate, the classic denoiser, as a baseline.

## The metrics

{chr(10).join(f"- **{label}** ({unit}) — {better}." for label, unit, better in METRIC_INFO.values())}

How they are computed (every spectral metric on an STFT with n_fft = 2048, hop 512, Hann window):

- *Integrated loudness*: ITU-R BS.1770-4 (pyloudnorm). *Sample peak*: 20·log₁₀ max|x|.
- *Spectral flatness*: exp(mean ln P) / mean P per frame, averaged over frames that are not digital
  silence (silent frames would read as "perfectly flat").
- *High-band energy ratio* HBR = 10·log₁₀(E(f ≥ cutoff) / E(all)) inside the analysis band;
  **ΔHBER** = HBR(output) − HBR(input), in total and per band (4–8, 8–12, 12–15 kHz). It is gain-invariant.
- *Bandwidth*: the median over frames of the 99 % spectral roll-off frequency.
- *Silence noise floor*: the RMS of the 50 ms frames between −120 and −45 dBFS (the seed paper's floor;
  dense music has no such frames, so it is then undefined and the table says so). *Noise floor (10th
  pct.)*: the 10th percentile of 50 ms frame RMS, always defined, but it follows the level.
- *Removed energy*: 10·log₁₀(E(input − output) / E(input)) — how much a restoration changed.

## Keeping the comparison fair

- **One rate, one band.** Demucs works at 44.1 kHz; its output is resampled back to the input's rate
  before anything is measured, and spectral metrics stop below min(15 kHz, 0.47 × rate). Otherwise the
  empty band of a resampled 32 kHz clip would pass for "restoration".
- **One loudness.** Gating makes things quieter, and quieter sounds different, not better. The players
  play copies matched to one integrated loudness (BS.1770, with one shared peak ceiling); untick
  *loudness-matched* to hear the raw levels. The level-dependent metrics are context only.
- **One colour scale.** The three Mel spectrograms share one dB scale (80 dB below the loudest bin of all
  three), so darker always means less energy.
- Undefined values are shown as *undefined* with the reason, never as NaN.

## Limits of this page

Prompts are at most {MAX_PROMPT_CHARS} characters; clips last {MIN_DURATION_S:g}–{MAX_DURATION_S:g} s. Uploads up to
{max_upload_mb():g} MB (`RESTORATION_MAX_UPLOAD_MB`) and the length set by `RESTORATION_MAX_SECONDS`.
Identical requests (prompt, duration, seed and every setting) are answered from a cache.

## Credits

- Seed work: zero-shot restoration of MusicGen audio with Demucs, compared with spectral gating.
- **MusicGen-small** (Meta AI, Copet et al. 2023, *Simple and Controllable Music Generation*), through
  Hugging Face `transformers`.
- **HTDemucs** (Meta AI, Rouard, Massa & Défossez 2023, *Hybrid Transformers for Music Source Separation*).
- **noisereduce** (Sainburg et al.), spectral gating.
- librosa, pyloudnorm, soundfile, matplotlib and Gradio.
"""


def build_demo() -> gr.Blocks:
    prompt_examples = examples.read_prompt_examples(PROMPTS_FILE)
    clips = examples.example_clips(CLIPS_DIR, CLIPS_SCRIPT)
    # delete_cache: Gradio's copies of served files older than 6 h are removed every hour (the run folders stay).
    with gr.Blocks(title="MusicGen Restoration Lab", analytics_enabled=False, delete_cache=(3600, 6 * 3600)) as demo:
        gr.Markdown("# MusicGen Restoration Lab\nGenerate a clip, restore it two ways, listen and compare.")
        status = gr.Markdown("Checking which models are available…", elem_id="model-status")
        with gr.Tabs():
            with gr.Tab("Generate & compare", id="generate"):
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        prompt = gr.Textbox(label="Describe the music", lines=2, elem_id="prompt",
                                            placeholder="lofi hip hop beat with mellow piano and vinyl crackle",
                                            info=f"at most {MAX_PROMPT_CHARS} characters")
                        if prompt_examples:
                            gr.Examples([[p] for _, p in prompt_examples], inputs=[prompt], label="Genres",
                                        example_labels=[g for g, _ in prompt_examples], examples_per_page=20,
                                        api_visibility="private")
                    with gr.Column(scale=2, min_width=300):
                        duration = gr.Slider(MIN_DURATION_S, MAX_DURATION_S, value=5, step=1, label="Duration (s)",
                                             elem_id="duration")
                        with gr.Row():
                            seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED,
                                             label="Seed (−1 = random)", min_width=120, elem_id="seed")
                            seed_used = gr.Textbox("", label="Seed used", interactive=False, min_width=120,
                                                   elem_id="seed-used", placeholder="after Generate")
                        with gr.Row():
                            generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn",
                                                     min_width=120)
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", min_width=120)
                with gr.Accordion("Advanced", open=False):
                    with gr.Row():
                        guidance = gr.Slider(1.0, 10.0, value=3.0, step=0.5, label="Guidance",
                                             info="classifier-free guidance (1 = off)")
                        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
                        top_k = gr.Slider(1, 500, value=250, step=1, label="Top-k")
                        mode = gr.Radio([("exact (fp32)", "exact"), ("fast (int8, approximate)", "fast")],
                                        value=_default_mode(), label="Generation mode",
                                        info="fast quantizes MusicGen's decoder to int8: quicker, "
                                             "slightly different audio")
                    gen_controls = restoration_controls()
                gen_panel = comparison_panel(version_title(INPUT, kind="prompt"), "gen")
                listen_btn = gr.Button("Add to listening test", elem_id="listen-btn")
                listen_msg = gr.Markdown("")
            with gr.Tab("Restore your own audio", id="restore"):
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        upload = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="upload",
                                          label="Your audio (wav, flac, ogg or mp3)")
                    with gr.Column(scale=2, min_width=300):
                        if clips:
                            gr.Examples([[path] for path, _ in clips], inputs=[upload], label="Example clips",
                                        example_labels=[label for _, label in clips], api_visibility="private")
                        with gr.Row():
                            restore_btn = gr.Button("Restore & compare", variant="primary", elem_id="restore-btn",
                                                    min_width=120)
                            restore_stop = gr.Button("Stop", variant="stop", min_width=120)
                with gr.Accordion("Advanced", open=False):
                    restore_controls = restoration_controls()
                restore_panel = comparison_panel("Input (your audio)", "restore")
            groundtruth_tab(run_lock=jobs.RUN_LOCK, concurrency_limit=RUN_LIMIT)  # the clean original is known
            with gr.Tab("Listening test", id="listening-link"):
                gr.Markdown(LISTENING_LINK)
            admin_tab()  # the organiser's "Listening results" tab
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        gen_inputs = [prompt, duration, seed, guidance, temperature, top_k, mode, *gen_controls.inputs()]
        gen_event = gr.on([generate_btn.click, prompt.submit], _generate_handler(gen_panel, seed_used),
                          inputs=[*gen_inputs, gen_panel.matched], outputs=[*gen_panel.outputs(), seed_used],
                          api_visibility="private", concurrency_limit=RUN_LIMIT, concurrency_id="runs",
                          show_progress_on=[gen_panel.status, *gen_panel.mel.values(), gen_panel.table])
        stop_btn.click(_stop, None, gen_panel.status, cancels=[gen_event], api_visibility="private", queue=False)
        restore_inputs = [upload, *restore_controls.inputs()]
        restore_event = restore_btn.click(
            _restore_handler(restore_panel), inputs=[*restore_inputs, restore_panel.matched],
            outputs=restore_panel.outputs(), api_visibility="private", concurrency_limit=RUN_LIMIT,
            concurrency_id="runs", show_progress_on=[restore_panel.status, *restore_panel.mel.values(),
                                                     restore_panel.table])
        restore_stop.click(_stop, None, restore_panel.status, cancels=[restore_event], api_visibility="private",
                           queue=False)
        for panel in (gen_panel, restore_panel):
            panel.matched.change(_swap_levels, [panel.matched, panel.state], list(panel.audio.values()),
                                 api_visibility="private", queue=False)
        listen_btn.click(_add_to_listening, gen_panel.state, listen_msg, api_visibility="private")
        demo.load(_model_status_text, None, status, api_visibility="private", queue=False)

        # The script API: hidden triggers whose only outputs are the three audios, three spectrograms, the table.
        api_outputs = [*gen_panel.audio.values(), *gen_panel.mel.values(), gen_panel.table_data]
        gen_api = gr.Button(visible=False)
        gen_api.click(generate, gen_inputs, api_outputs, api_name="generate", concurrency_limit=RUN_LIMIT,
                      concurrency_id="runs")
        restore_api = gr.Button(visible=False)
        restore_api.click(restore, restore_inputs,
                          [*restore_panel.audio.values(), *restore_panel.mel.values(), restore_panel.table_data],
                          api_name="restore", concurrency_limit=RUN_LIMIT, concurrency_id="runs")
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def _default_mode() -> str:
    from restoration import generation

    try:
        return generation.resolve_mode(None)
    except RestorationError:
        return "exact"


def _warm_up() -> None:
    """Pay the first-request costs (models, numba, matplotlib) after the app is serving."""
    start = time.perf_counter()
    _model_status_text()
    steps = warm_up(musicgen=True)
    logger.info("warm-up done in %.1f s (%s)", time.perf_counter() - start,
                ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items()))


demo = build_demo()

LAUNCH_KWARGS = dict(
    css=CSS,
    theme=gr.themes.Soft(),
    show_error=False,  # only gr.Error messages reach the browser; tracebacks stay in the server log
    # Only the run folders are served (Spaces keep them under /data, outside cwd and the temp dir);
    # the rest of data_dir() (the listening-test database) is not.
    allowed_paths=[str(runs_root())],
    blocked_paths=private_paths(),  # the listening-test database and stimulus files are never served by path
    max_file_size=f"{int(2 * max_upload_mb())}mb",  # hard cap; the app's own limit gives the clear message
    ssr_mode=False,
)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Participants get a page of their own: this page's layout names the versions, theirs must not.
    demo.launch(prevent_thread_lock=True, app_kwargs={"routes": participant_routes(PARTICIPANT_PATH)},
                **LAUNCH_KWARGS)
    start_participant_page(demo.local_url, PARTICIPANT_PATH)
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    demo.block_thread()

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
#: The files the Restore tab accepts; the browser refuses others with a plain message.
UPLOAD_TYPES = (".wav", ".flac", ".ogg", ".mp3")

CSS = """
.gradio-container { max-width: 1280px !important; width: 100%; margin: 0 auto; }
.version-col { min-width: min(300px, 100%) !important; }
.version-col img { width: 100%; height: auto; }
#model-status, #model-status * { overflow: visible !important; }
.run-progress { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; min-height: 1.6em;
  color: var(--body-text-color); }
#gen-progress [data-testid=status-tracker], #restore-progress [data-testid=status-tracker],
#seed-used [data-testid=status-tracker], #upload [data-testid=status-tracker] { display: none !important; }
[data-testid^="waveform-"] time, [data-testid^="waveform-"] .playback,
[data-testid^="waveform-"] .playback span { color: var(--neutral-700) !important; }
.run-progress progress { flex: 1 1 180px; max-width: 480px; height: 0.8em; accent-color: var(--color-accent); }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
.advanced-heading h2 { font-size: var(--text-lg); margin: 8px 0 0; }
.metrics-wrap { width: 100%; }
table.metrics { width: 100%; border-collapse: collapse; table-layout: fixed; font-size: var(--text-md);
  border: none !important; margin: 0; }
table.metrics tr { border: none !important; }
table.metrics caption { text-align: left; font-weight: 600; padding: 0 0 6px; color: var(--body-text-color); }
table.metrics th, table.metrics td { padding: 6px 8px; border-bottom: 1px solid var(--border-color-primary);
  border-left: none !important; border-right: none !important; border-top: none !important;
  text-align: left; vertical-align: top; overflow-wrap: anywhere; color: var(--body-text-color); }
table.metrics thead th { background: var(--background-fill-secondary); }
table.metrics th[scope=row] { width: 34%; }
table.metrics .unit { font-weight: 400; }
table.metrics .better-means { display: block; font-weight: 400; font-size: var(--text-sm); }
table.metrics td { font-variant-numeric: tabular-nums; }
table.metrics td.better { font-weight: 700; background: #dcfce7; color: #14532d; }
table.metrics td.undefined { font-style: italic; }
details.run-details { margin-top: 8px; }
details.run-details summary { cursor: pointer; font-weight: 600; padding: 6px 0; color: var(--body-text-color); }
details.run-details ul.notes { margin: 8px 0 0 1.2em; color: var(--body-text-color); }
@media (max-width: 640px) {
  .gradio-container { padding: 4px !important; }
  table.metrics { font-size: var(--text-sm); }
  table.metrics th, table.metrics td { padding: 4px 3px; }
  /* a phone: each metric's name on a line of its own, its three values below it */
  table.metrics, table.metrics thead, table.metrics tbody { display: block; }
  table.metrics caption { display: block; }
  table.metrics tr { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); }
  table.metrics th[scope=row], table.metrics thead th:first-child { grid-column: 1 / -1; width: auto;
    border-bottom: none; padding-bottom: 0; }
}
"""


# --------------------------------------------------------------------------- translation helpers


def _gr_error(exc: BaseException) -> gr.Error:
    """The message the browser shows: the package's own for its errors, a short id otherwise."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, RestorationError):
        return gr.Error(presentation.user_message(str(exc).strip() or type(exc).__name__), title="Cannot run this")
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


def _heading(text: str) -> None:
    gr.Markdown(f"## {text}", elem_classes=["advanced-heading"])


def restoration_controls() -> Controls:
    """The Demucs, spectral-gating and metric settings of an Advanced section, each under its heading."""
    _heading("Demucs")
    with gr.Row():
        shifts = gr.Slider(0, 5, value=0, step=1, label="Demucs shifts",
                           info="extra passes on randomly time-shifted copies, averaged (0 = one pass); "
                                "each costs one more pass")
        overlap = gr.Slider(0.0, 0.9, value=0.25, step=0.05, label="Demucs overlap",
                            info="fraction by which Demucs's chunks overlap")
    gr.Markdown("Stem gains: each separated stem is scaled before the stems are summed back (1 = as separated).")
    with gr.Row():
        gains = [gr.Slider(0.0, 2.0, value=1.0, step=0.05, label=f"{stem} gain", min_width=120)
                 for stem in STEMS]
    _heading("Spectral gating")
    with gr.Row():
        gating = gr.Radio([("non-stationary (paper's baseline)", "nonstationary"), ("stationary", "stationary")],
                          value="nonstationary", label="Spectral gating mode")
        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Gating strength",
                             info="fraction of the gated noise removed")
        threshold = gr.Slider(0.0, 5.0, value=0.0, step=0.1, label="Gating threshold (σ)",
                              info="noise std devs above the noise mean; 0 = noisereduce's default for the mode")
    _heading("Metrics")
    with gr.Row():
        hber = gr.Slider(2000, 14000, value=8000, step=500, label="HBER cutoff (Hz)",
                         info="where the high band starts for ΔHBER, the change in high-band energy share")
    return Controls(shifts, *gains, gating, strength, hber, overlap, threshold)


@dataclass
class Panel:
    """One comparison's outputs: the progress place, then the results (hidden until a run is complete)."""

    progress: gr.HTML
    preview: gr.Audio
    results: gr.Column
    verdict: gr.Markdown
    matched: gr.Checkbox
    audio: dict
    mel: dict
    missing: gr.Markdown
    spectrum: gr.Image
    table: gr.HTML
    table_data: gr.Dataframe
    details: gr.HTML
    residual: gr.Audio
    diffs: dict
    zip: gr.File
    state: gr.State

    def outputs(self) -> list:
        return [self.progress, self.preview, self.results, self.verdict, *self.audio.values(), *self.mel.values(),
                self.missing, self.spectrum, self.table, self.details, self.residual, *self.diffs.values(), self.zip,
                self.state]

    def cleared(self, progress: str) -> dict:
        """The results hidden and forgotten; the progress place says ``progress`` (HTML)."""
        empty = {c: None for c in [*self.audio.values(), *self.mel.values(), self.spectrum, self.residual,
                                    *self.diffs.values(), self.zip, self.state]}
        return {**empty, self.progress: progress, self.preview: gr.update(value=None, visible=False),
                self.results: gr.update(visible=False), self.verdict: "", self.table: "", self.details: "",
                self.missing: gr.update(value="", visible=False)}

    def filled(self, result: RunResult, *, matched: bool) -> dict:
        level = "matched" if matched else "raw"
        paths = _player_paths(result)
        missing = result.unavailable.get(DEMUCS)
        alt = presentation.alt_texts(result)
        return {
            self.progress: presentation.done_html(result),
            self.preview: gr.update(value=None, visible=False),
            self.results: gr.update(visible=True),
            self.verdict: presentation.verdict_markdown(result),
            **{self.audio[v]: gr.update(value=paths[v][level], visible=bool(paths[v][level])) for v in VERSIONS},
            **{self.mel[v]: gr.update(value=result.mel(v), alt_text=alt["mel"][v], visible=bool(result.mel(v)))
               for v in VERSIONS},
            self.missing: gr.update(value=f"**No Demucs version:** {missing}" if missing else "",
                                    visible=bool(missing)),
            self.spectrum: gr.update(value=result.spectrum, alt_text=alt["spectrum"]),
            self.table: presentation.metrics_html(result),
            self.details: presentation.details_html(result),
            self.residual: gr.update(value=result.residual, visible=bool(result.residual)),
            **{self.diffs[v]: gr.update(value=result.mel_diff(v), alt_text=alt["diff"][v],
                                        visible=bool(result.mel_diff(v))) for v in self.diffs},
            self.zip: result.zip_path,
            self.state: {"run_dir": str(result.run_dir), "paths": paths},
        }


def comparison_panel(input_title: str, prefix: str, *, listening: bool = False) -> tuple[Panel, list]:
    """The output widgets of one tab; ids ``<prefix>-progress``, ``-results``, ``-verdict``, ``-details``.

    CSS classes ``<prefix>-player-<version>``, ``<prefix>-mel-<version>``, ``<prefix>-spectrum``,
    ``<prefix>-metrics`` and ``<prefix>-matched`` name the rest. With ``listening``, the results carry an
    "Add to listening test" button; the extra widgets (button, message) are returned beside the panel.
    """
    progress = gr.HTML("", elem_id=f"{prefix}-progress")
    preview = gr.Audio(label="The clip so far (partial, still generating)", type="filepath", interactive=False,
                       visible=False, elem_id=f"{prefix}-preview")
    titles = {v: version_title(v) for v in VERSIONS} | {INPUT: input_title}
    audio, mel = {}, {}
    extra = []
    with gr.Column(visible=False, elem_id=f"{prefix}-results") as results:
        verdict = gr.Markdown("", elem_id=f"{prefix}-verdict")
        with gr.Row(equal_height=True):
            matched = gr.Checkbox(value=True, label="Loudness-matched playback (untick for the raw levels)",
                                  elem_classes=[f"{prefix}-matched"], scale=3, min_width=240,
                                  info="The three players play at one loudness (BS.1770), so louder never "
                                       "passes for better.")
            if listening:
                with gr.Column(scale=2, min_width=200):
                    listen_btn = gr.Button("Add to listening test", elem_id="listen-btn")
                    listen_msg = gr.Markdown("", elem_id="listen-msg")
                extra = [listen_btn, listen_msg]
        with gr.Row(equal_height=False):
            for version in VERSIONS:
                with gr.Column(min_width=300, elem_classes=["version-col"]):
                    audio[version] = gr.Audio(label=titles[version], type="filepath", interactive=False,
                                              buttons=["download"], elem_classes=[f"{prefix}-player-{version}"])
                    if version == DEMUCS:
                        missing = gr.Markdown("", visible=False)
                    mel[version] = gr.Image(label=f"Mel spectrogram of {titles[version]}", show_label=False,
                                            type="filepath", interactive=False, buttons=["download", "fullscreen"],
                                            elem_classes=[f"{prefix}-mel-{version}"])
        spectrum = gr.Image(label="Were the highs restored? Long-term average spectrum", show_label=False,
                            type="filepath", interactive=False, buttons=["download", "fullscreen"],
                            elem_classes=[f"{prefix}-spectrum"])
        table = gr.HTML("", elem_classes=["metrics-table", f"{prefix}-metrics"])
        # The same table as data, for the script API only (the page shows the HTML tables).
        table_data = gr.Dataframe(label="Metrics", headers=["Metric", "Unit", *titles.values(), "Better means"],
                                  interactive=False, visible=False)
        details = gr.HTML("", elem_id=f"{prefix}-details")
        with gr.Accordion("Difference spectrograms (output − input)", open=False):
            with gr.Row():
                diffs = {v: gr.Image(label=f"{version_title(v)} − input", show_label=False, type="filepath",
                                     interactive=False, min_width=300)
                         for v in (DEMUCS, GATING)}
        with gr.Row():
            with gr.Column(min_width=300):
                residual = gr.Audio(label="What Demucs removed (input − Demucs, raw level)", type="filepath",
                                    interactive=False, buttons=["download"])
            with gr.Column(min_width=300):
                zip_file = gr.File(label="Download everything (wavs, PNGs, metrics.json, metrics.csv)",
                                   interactive=False)
    state = gr.State(None)
    panel = Panel(progress, preview, results, verdict, matched, audio, mel, missing, spectrum, table, table_data,
                  details, residual, diffs, zip_file, state)
    return panel, extra


# --------------------------------------------------------------------------- event handlers


def _check_musicgen() -> None:
    """Fail at once, with the fix, when MusicGen is known to be missing (no hub retries to wait for)."""
    from restoration import generation
    from restoration.errors import ModelUnavailableError

    message = presentation.musicgen_known_missing(generation.model_status())
    if message:
        raise ModelUnavailableError(message)


def _stream_to_panel(make_request, panel: Panel, matched: bool, request: gr.Request, extra=None):
    """Run a request: progress and stage in one place, the audio so far as a preview; the last yield fills the panel."""
    try:
        run = make_request()
    except Exception as exc:
        raise _gr_error(exc) from None
    session = getattr(request, "session_hash", None) or uuid.uuid4().hex
    stop_event = jobs.stop_event_for(session)
    seed_update = {extra: str(run.generation.seed)} if extra is not None and run.generation is not None else {}
    yield {**panel.cleared(presentation.progress_html("Starting", 0.0)), **seed_update}
    stream = _stream_on_device(run, session)
    finished = False
    shown = ("Starting", 0)
    best = 0.0
    try:
        for event in stream:
            if event.kind == "progress":
                best = max(best, jobs.overall_fraction(run.kind, event.stage, event.fraction, event.detail))
                stage = jobs.stage_text(event.stage)
                if (stage, int(best * 100)) != shown:  # one update per stage and per percent
                    shown = (stage, int(best * 100))
                    yield {panel.progress: presentation.progress_html(stage, best * 100)}
            elif event.kind == "chunk":
                if not stop_event.is_set():  # after Stop, no partial audio comes back
                    yield {panel.preview: gr.update(value=event.path, visible=True)}
            elif event.kind == "done":
                finished = True
                yield panel.filled(event.result, matched=matched)
                return
            elif event.kind == "error":
                finished = True
                if jobs.is_cancellation(event.error, stop_event):
                    yield panel.cleared(presentation.progress_html("Stopped. Nothing was saved."))
                    return
                yield {panel.progress: "", panel.preview: gr.update(value=None, visible=False)}
                raise _gr_error(event.error)
    finally:
        if not finished:  # Stop cancelled this event, or the page went away: stop the work as well
            stop_event.set()
        stream.close()
        jobs.release_stop_event(session, stop_event)


def _generate_handler(panel: Panel, seed_used: gr.Textbox):
    """The "Generate" button's handler, filling ``panel`` and ``seed_used``."""

    def handle(prompt, duration, seed, guidance, temperature, top_k, mode, shifts, drums, bass, other, vocals,
               gating, strength, hber_cutoff_hz, overlap, threshold, matched, request: gr.Request):
        restoration = _restoration_args(shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz,
                                        overlap, threshold)

        def make_request():
            run = prompt_request(prompt, duration=duration, seed=seed, guidance=guidance, temperature=temperature,
                                 top_k=top_k, mode=mode, **restoration)
            _check_musicgen()
            return run

        yield from _stream_to_panel(make_request, panel, matched, request, extra=seed_used)

    return handle


def _restore_handler(panel: Panel):
    """The "Restore & compare" button's handler, filling ``panel``."""

    def handle(audio, shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz, overlap, threshold,
               matched, request: gr.Request):
        restoration = _restoration_args(shifts, drums, bass, other, vocals, gating, strength, hber_cutoff_hz,
                                        overlap, threshold)
        yield from _stream_to_panel(lambda: restore_request(audio, **restoration), panel, matched, request)

    return handle


def generate(prompt: str, duration: float = 5.0, seed: int = -1, guidance: float = 3.0, temperature: float = 1.0,
             top_k: int = 250, mode: str = "exact", demucs_shifts: int = 0, gain_drums: float = 1.0,
             gain_bass: float = 1.0, gain_other: float = 1.0, gain_vocals: float = 1.0,
             gating: str = "nonstationary", gating_strength: float = 1.0, hber_cutoff_hz: float = 8000.0,
             demucs_overlap: float = 0.25, gating_threshold: float = 0.0, request: gr.Request = None):
    """Generate a music clip with MusicGen from a text prompt, restore it with Demucs and with spectral gating, and compare the three versions.

    Returns the input, Demucs and spectral-gating audio (32-bit float wavs at the input's rate
    and level), their Mel spectrograms on one colour scale, and the metrics table (rows: metric,
    unit, one column per version, what "better" means; the last row, "How it was made", names
    the seed used). The metrics are proxies, not a quality score.

    Args:
        prompt: what the music should sound like, in English, at most 500 characters (e.g. "lofi hip hop beat with mellow piano").
        duration: length of the clip in seconds, 1 to 30.
        seed: random seed of MusicGen's sampling; -1 draws a random one. The same seed and settings give the same clip.
        guidance: classifier-free guidance scale, 1 to 10 (1 = off); higher follows the prompt more closely.
        temperature: sampling temperature, 0.1 to 2; higher is more varied.
        top_k: sample from the k most likely tokens, 1 to 500.
        mode: "exact" (fp32 MusicGen) or "fast" (int8-quantized decoder: quicker, slightly different audio).
        demucs_shifts: extra Demucs passes on randomly time-shifted copies, averaged, 0 to 5 (0 = one pass).
        gain_drums: gain of Demucs's drums stem before the stems are summed back (1 = as separated).
        gain_bass: gain of Demucs's bass stem before the stems are summed back (1 = as separated).
        gain_other: gain of Demucs's "other" stem before the stems are summed back (1 = as separated).
        gain_vocals: gain of Demucs's vocals stem before the stems are summed back (1 = as separated).
        gating: spectral gating mode, "nonstationary" (the seed paper's baseline) or "stationary".
        gating_strength: fraction of the gated noise removed, 0 to 1.
        hber_cutoff_hz: where the high band starts for ΔHBER (change in high-band energy share), in Hz, 2000 to 14000.
        demucs_overlap: fraction by which Demucs's chunks overlap, 0 to 0.9.
        gating_threshold: gating threshold in noise standard deviations, 0 to 5; 0 keeps noisereduce's default for the mode.
    """
    try:
        run = prompt_request(
            prompt, duration=duration, seed=seed, guidance=guidance, temperature=temperature, top_k=top_k, mode=mode,
            **_restoration_args(demucs_shifts, gain_drums, gain_bass, gain_other, gain_vocals, gating,
                                gating_strength, hber_cutoff_hz, demucs_overlap, gating_threshold),
        )
        _check_musicgen()
        return _api_outputs(_run_to_end(run, getattr(request, "session_hash", None) or uuid.uuid4().hex))
    except Exception as exc:
        raise _gr_error(exc) from None


def restore(audio: str, demucs_shifts: int = 0, gain_drums: float = 1.0, gain_bass: float = 1.0,
            gain_other: float = 1.0, gain_vocals: float = 1.0, gating: str = "nonstationary",
            gating_strength: float = 1.0, hber_cutoff_hz: float = 8000.0, demucs_overlap: float = 0.25,
            gating_threshold: float = 0.0, request: gr.Request = None):
    """Restore an audio file (wav, flac, ogg or mp3) with Demucs and with spectral gating, and compare the three versions.

    Returns the input, Demucs and spectral-gating audio (32-bit float wavs), their Mel
    spectrograms and the metrics table. When the Demucs weights cannot be loaded, its audio and
    spectrogram are empty and the table says why; gating and the metrics are still returned.

    Args:
        audio: the audio file to restore (wav, flac, ogg or mp3), as a URL or an uploaded file; at most the app's length and size limits.
        demucs_shifts: extra Demucs passes on randomly time-shifted copies, averaged, 0 to 5 (0 = one pass).
        gain_drums: gain of Demucs's drums stem before the stems are summed back (1 = as separated).
        gain_bass: gain of Demucs's bass stem before the stems are summed back (1 = as separated).
        gain_other: gain of Demucs's "other" stem before the stems are summed back (1 = as separated).
        gain_vocals: gain of Demucs's vocals stem before the stems are summed back (1 = as separated).
        gating: spectral gating mode, "nonstationary" (the seed paper's baseline) or "stationary".
        gating_strength: fraction of the gated noise removed, 0 to 1.
        hber_cutoff_hz: where the high band starts for ΔHBER (change in high-band energy share), in Hz, 2000 to 14000.
        demucs_overlap: fraction by which Demucs's chunks overlap, 0 to 0.9.
        gating_threshold: gating threshold in noise standard deviations, 0 to 5; 0 keeps noisereduce's default for the mode.
    """
    try:
        run = restore_request(
            audio, **_restoration_args(demucs_shifts, gain_drums, gain_bass, gain_other, gain_vocals, gating,
                                       gating_strength, hber_cutoff_hz, demucs_overlap, gating_threshold),
        )
        return _api_outputs(_run_to_end(run, getattr(request, "session_hash", None) or uuid.uuid4().hex))
    except Exception as exc:
        raise _gr_error(exc) from None


def _stop_handler(panel: Panel):
    """Stop's handler: with a run going, stop it and hide its partial output; idle, change nothing."""

    def stop(request: gr.Request):
        stopped = jobs.request_stop(getattr(request, "session_hash", None))
        logger.info("stop requested (%s)", "a run was stopped" if stopped else "nothing was running")
        if not stopped:
            return [gr.update(), gr.update(), gr.update()]
        return [presentation.progress_html("Stopped. Nothing was saved."), gr.update(value=None, visible=False),
                gr.update(visible=False)]

    return stop


def _input_changed(state):
    """A new input makes the shown results stale: hide them and say so (nothing changes before a first run)."""
    if not state:
        return gr.update(), gr.update(), gr.update()
    return (presentation.progress_html("The input changed: run again for a new comparison."),
            gr.update(visible=False), None)


def _prompt_changed(prompt, state):
    """Generate is enabled only with a prompt; a changed prompt makes the shown results stale."""
    return (gr.update(interactive=bool(str(prompt or "").strip())), *_input_changed(state))


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

## Words used on this page

- **ΔHBER** (change in high-band energy ratio): how much the share of a version's energy above the
  cutoff (8 kHz by default) grew or shrank compared with the input, in dB. +3 dB means the high band
  holds twice the share it held in the input; 0 means unchanged.
- **exact (fp32)** and **fast (int8)**: MusicGen computing with 32-bit floating-point numbers, as
  trained, or with its decoder's weights rounded to 8-bit integers, which is about three times quicker
  on a CPU and gives slightly different audio.
- **Shifts** (Demucs): Demucs runs again on copies of the clip shifted by a random fraction of a second
  and averages the results; more shifts cost more time and smooth chunk-edge artefacts.
- **Removed energy, "closer to −∞ = less changed"**: the energy of what a restoration took away (or
  added), relative to the input, in dB. 0 dB would be a change as large as the whole clip; −20 dB is a
  change a hundred times weaker; an untouched clip would read −∞ dB.
- **Proxy**: a number that describes the signal, not how good it sounds. Only listening, or a clean
  original to compare with, says which version is better.

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
                        prompt = gr.Textbox(label="Describe the music", lines=1, max_lines=4, elem_id="prompt",
                                            placeholder="lofi hip hop beat with mellow piano and vinyl crackle",
                                            info=f"at most {MAX_PROMPT_CHARS} characters; Enter generates")
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
                                                     min_width=120, interactive=False)
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", min_width=120)
                with gr.Accordion("Advanced", open=False):
                    _heading("MusicGen")
                    with gr.Row():
                        guidance = gr.Slider(1.0, 10.0, value=3.0, step=0.5, label="Guidance",
                                             info="classifier-free guidance (1 = off); higher follows the prompt "
                                                  "more closely")
                        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature",
                                                info="higher is more varied")
                        top_k = gr.Slider(1, 500, value=250, step=1, label="Top-k",
                                          info="sample from the k most likely tokens")
                        mode = gr.Radio([("exact (fp32)", "exact"), ("fast (int8, approximate)", "fast")],
                                        value=_default_mode(), label="Generation mode",
                                        info="exact: 32-bit floats, as the model was trained; fast quantizes "
                                             "MusicGen's decoder to 8-bit integers: quicker, slightly different audio")
                    gen_controls = restoration_controls()
                gen_panel, (listen_btn, listen_msg) = comparison_panel(version_title(INPUT, kind="prompt"), "gen",
                                                                       listening=True)
            with gr.Tab("Restore your own audio", id="restore"):
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        upload = gr.File(file_types=list(UPLOAD_TYPES), type="filepath", elem_id="upload",
                                         label="Your audio file (wav, flac, ogg or mp3)")
                    with gr.Column(scale=2, min_width=300):
                        if clips:
                            gr.Examples([[path] for path, _ in clips], inputs=[upload], label="Example clips",
                                        example_labels=[label for _, label in clips], api_visibility="private")
                        with gr.Row():
                            restore_btn = gr.Button("Restore & compare", variant="primary", elem_id="restore-btn",
                                                    min_width=120)
                            restore_stop = gr.Button("Stop", variant="stop", elem_id="restore-stop", min_width=120)
                with gr.Accordion("Advanced", open=False):
                    restore_controls = restoration_controls()
                restore_panel, _ = comparison_panel("Input (your audio)", "restore")
            groundtruth_tab(run_lock=jobs.RUN_LOCK, concurrency_limit=RUN_LIMIT)  # the clean original is known
            with gr.Tab("Listening test", id="listening-link"):
                gr.Markdown(LISTENING_LINK)
            admin_tab()  # the organiser's "Listening results" tab
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        gen_inputs = [prompt, duration, seed, guidance, temperature, top_k, mode, *gen_controls.inputs()]
        # Progress has one place (the panel's progress line): no Gradio spinners or overlays anywhere else.
        gen_event = gr.on([generate_btn.click, prompt.submit], _generate_handler(gen_panel, seed_used),
                          inputs=[*gen_inputs, gen_panel.matched], outputs=[*gen_panel.outputs(), seed_used],
                          api_visibility="private", concurrency_limit=RUN_LIMIT, concurrency_id="runs",
                          show_progress="hidden")
        stop_btn.click(_stop_handler(gen_panel), None, [gen_panel.progress, gen_panel.preview, gen_panel.results],
                       cancels=[gen_event], api_visibility="private", queue=False, show_progress="hidden")
        prompt.change(_prompt_changed, [prompt, gen_panel.state],
                      [generate_btn, gen_panel.progress, gen_panel.results, gen_panel.state],
                      api_visibility="private", queue=False, show_progress="hidden")
        for widget in (duration, seed):
            widget.change(_input_changed, gen_panel.state, [gen_panel.progress, gen_panel.results, gen_panel.state],
                          api_visibility="private", queue=False, show_progress="hidden")
        restore_inputs = [upload, *restore_controls.inputs()]
        restore_event = restore_btn.click(
            _restore_handler(restore_panel), inputs=[*restore_inputs, restore_panel.matched],
            outputs=restore_panel.outputs(), api_visibility="private", concurrency_limit=RUN_LIMIT,
            concurrency_id="runs", show_progress="hidden")
        restore_stop.click(_stop_handler(restore_panel), None,
                           [restore_panel.progress, restore_panel.preview, restore_panel.results],
                           cancels=[restore_event], api_visibility="private", queue=False, show_progress="hidden")
        upload.change(_input_changed, restore_panel.state,
                      [restore_panel.progress, restore_panel.results, restore_panel.state],
                      api_visibility="private", queue=False, show_progress="hidden")
        for panel in (gen_panel, restore_panel):
            panel.matched.change(_swap_levels, [panel.matched, panel.state], list(panel.audio.values()),
                                 api_visibility="private", queue=False, show_progress="hidden")
        listen_btn.click(_add_to_listening, gen_panel.state, listen_msg, api_visibility="private",
                         show_progress="hidden")
        demo.load(_model_status_text, None, status, api_visibility="private", queue=False, show_progress="hidden")
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

#: Gradio draws an empty audio or image slot as a <div aria-label="Empty value"> without a role, which
#: ARIA forbids (axe: aria-prohibited-attr). The page gives such placeholders the role of an image.
HEAD = """<script>
new MutationObserver(() => {
  for (const el of document.querySelectorAll('div.empty[aria-label]:not([role])')) el.setAttribute('role', 'img');
}).observe(document.documentElement, {subtree: true, childList: true});
</script>"""

#: Soft, with every text colour at a contrast of at least 4.5:1 on its background (WCAG AA).
THEME = gr.themes.Soft().set(
    color_accent="*primary_600",
    button_primary_background_fill="*primary_600",
    button_primary_background_fill_hover="*primary_700",
    button_primary_background_fill_dark="*primary_600",
    body_text_color_subdued="*neutral_600",
    block_info_text_color="*neutral_600",
    block_label_text_color="*neutral_700",
    block_title_text_color="*neutral_800",
    link_text_color="*primary_700",
    link_text_color_visited="*primary_700",
    link_text_color_hover="*primary_800",
    link_text_color_active="*primary_800",
)

LAUNCH_KWARGS = dict(
    css=CSS,
    theme=THEME,
    show_error=False,  # only gr.Error messages reach the browser; tracebacks stay in the server log
    # Only the run folders are served (Spaces keep them under /data, outside cwd and the temp dir);
    # the rest of data_dir() (the listening-test database) is not.
    allowed_paths=[str(runs_root())],
    blocked_paths=private_paths(),  # the listening-test database and stimulus files are never served by path
    max_file_size=f"{int(2 * max_upload_mb())}mb",  # hard cap; the app's own limit gives the clear message
    ssr_mode=False,
    head=HEAD,
    mcp_server=True,  # /generate and /restore as tools for AI assistants (README: "MCP")
)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Participants get a page of their own: this page's layout names the versions, theirs must not.
    demo.launch(prevent_thread_lock=True, app_kwargs={"routes": participant_routes(PARTICIPANT_PATH)},
                **LAUNCH_KWARGS)
    start_participant_page(demo.local_url, PARTICIPANT_PATH)
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    demo.block_thread()

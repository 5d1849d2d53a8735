"""The app's "Ground truth" tab (Gradio): a clean clip, a degradation, four versions side by side.

:func:`groundtruth_tab` builds the tab inside the app's ``gr.Tabs`` and wires its button, which
is also the script API endpoint ``/groundtruth`` (see :func:`groundtruth`). The work is done by
:mod:`restoration.app.ground_truth`.
"""

from __future__ import annotations

import threading

import gradio as gr

from .app import ground_truth as gt
from .errors import RestorationError
from .versions import GROUND_TRUTH_VERSIONS, TITLES

INTRO = """\
**Restore music whose clean original is known.** MusicGen's audio is the output of its own neural
codec (EnCodec at 32 kHz, 4 codebooks, about 2.2 kbps). Pass clean music through that codec and you get
MusicGen's artefacts *and* the original to compare against. Pick a clean clip (a built-in piece rendered
with FluidSynth, or your own recording) and a degradation; the degraded clip is restored both ways and
every version is measured **against the clean original**. Players are loudness-matched; the
spectrograms share one colour scale. With the random stand-in models of a test machine the numbers mean
nothing: real numbers need the real weights.
"""

_LOCK: threading.Lock | None = None


def groundtruth(clean_file: str | None = None, builtin: str = "jazz", degradation: str = "musicgen-codec",
                seconds: float = gt.DEFAULT_SECONDS, progress=gr.Progress()):
    """Degrade a clean clip, restore it with Demucs and with spectral gating, and compare all four with the original.

    Args:
        clean_file: a clean recording (wav, flac, ogg or mp3); when given it is used instead of ``builtin``.
        builtin: a built-in piece: rock, funk, jazz, bossa, house, reggae, blues, hiphop, country or waltz.
        degradation: musicgen-codec (MusicGen's own EnCodec round trip), mp3-32, mp3-64, noise-30 or lowpass-8.
        seconds: length cut from the middle of the clip, 1–15 s.

    Returns:
        The loudness-matched WAVs of the clean original, the degraded clip, Demucs and spectral gating;
        their four Mel spectrograms (one shared colour scale); the metrics table (full-reference metrics
        first, then proxies; headers and rows); and a one-line verdict.
    """

    def report(stage, fraction, detail=""):
        progress(fraction if fraction is not None else 0.0, desc=f"{stage} {detail}".strip())

    try:
        result = gt.run_comparison(upload=clean_file or None, builtin=builtin, degradation=degradation,
                                   seconds=seconds, progress=report, lock=_LOCK)
    except RestorationError as exc:
        from .app.presentation import user_message

        raise gr.Error(user_message(str(exc)), title="Cannot run this") from None
    headers, rows = gt.metrics_rows(result)
    return (*(str(result.listening(v)) for v in GROUND_TRUTH_VERSIONS),
            *(str(result.mel(v)) for v in GROUND_TRUTH_VERSIONS),
            {"headers": headers, "data": rows}, gt.verdict(result))


def groundtruth_tab(*, run_lock: threading.Lock | None = None, concurrency_limit: int = 1,
                    concurrency_id: str = "runs") -> None:
    """Build the "Ground truth" tab; ``run_lock`` serializes its model work with the app's other runs."""
    global _LOCK
    _LOCK = run_lock
    with gr.Tab("Ground truth", id="groundtruth"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                builtin = gr.Dropdown(gt.builtin_choices(), value="jazz", label="Built-in clean clip",
                                      elem_id="gt-builtin")
                upload = gr.File(file_types=[".wav", ".flac", ".ogg", ".mp3"], type="filepath", elem_id="gt-upload",
                                 label="…or upload a clean recording (used instead of the built-in clip)")
            with gr.Column(scale=2, min_width=300):
                degradation = gr.Dropdown([(label, name) for label, name in gt.DEGRADATION_CHOICES],
                                          value="musicgen-codec", label="Degradation", elem_id="gt-degradation",
                                          allow_custom_value=True, info="or type one: mp3-<kbps>, noise-<dB>, lowpass-<kHz>")
                seconds = gr.Slider(1, gt.MAX_SECONDS, value=gt.DEFAULT_SECONDS, step=1, label="Length (s)",
                                    elem_id="gt-seconds")
                run = gr.Button("Degrade, restore & compare", variant="primary", elem_id="gt-run")
        verdict = gr.Markdown(elem_id="gt-verdict")
        audio, mels = [], []
        with gr.Row(equal_height=True):
            for version in GROUND_TRUTH_VERSIONS:
                with gr.Column(min_width=220):
                    audio.append(gr.Audio(label=TITLES[version], type="filepath", interactive=False,
                                          elem_id=f"gt-audio-{version}"))
                    mels.append(gr.Image(label=f"Mel spectrogram — {TITLES[version]}", type="filepath",
                                         interactive=False, elem_id=f"gt-mel-{version}"))
        table = gr.Dataframe(label="Against the clean original (full-reference), then the proxies",
                             interactive=False, wrap=True, elem_id="gt-table")
        run.click(groundtruth, [upload, builtin, degradation, seconds], [*audio, *mels, table, verdict],
                  api_name="groundtruth", concurrency_limit=concurrency_limit, concurrency_id=concurrency_id)

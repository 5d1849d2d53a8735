"""MusicGen Restoration Lab: can generated music be restored zero-shot, and how would we know?

Public surface (audio is float32 ``(channels, frames)`` plus a sample rate in Hz):

- :func:`run` — the pipeline (a prompt, a file or a clip in memory → a :class:`Report`);
  :func:`run_prompt` / :func:`run_file` / :func:`run_generated` (a :class:`Clip` MusicGen already made)
  call it; :func:`compare` is its second half
- :func:`write_report` — wavs, PNGs, ``metrics.json``, ``metrics.csv``, ``report.json``
- :func:`generate` — MusicGen (``MUSICGEN_MODEL``), :func:`restore` — Demucs (``DEMUCS_MODEL``/``DEMUCS_REPO``),
  :func:`spectral_gate` — noisereduce
- :func:`measure_versions` — the metrics; :func:`loudness_match`, :func:`read_audio`, :func:`write_wav`
- settings: :class:`GenerationSettings`, :class:`DemucsSettings`, :class:`GatingSettings`, :class:`MetricSettings`
- errors: :class:`RestorationError` → :class:`BadInputError`, :class:`ModelUnavailableError`, :class:`CancelledError`

Heavy dependencies (torch, transformers, demucs) load on first use, not on import.
"""

from .errors import BadInputError, CancelledError, ModelUnavailableError, RestorationError
from .settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings

_LAZY = {
    "run": "pipeline",
    "run_prompt": "pipeline",
    "run_generated": "pipeline",
    "Clip": "pipeline",
    "run_file": "pipeline",
    "compare": "pipeline",
    "Report": "report",
    "write_report": "outputs",
    "generate": "generation",
    "restore": "separation",
    "spectral_gate": "gating",
    "measure_versions": "metrics",
    "loudness_match": "audio",
    "read_audio": "audio",
    "write_wav": "audio",
}

__all__ = [
    "BadInputError", "CancelledError", "ModelUnavailableError", "RestorationError",
    "DemucsSettings", "GatingSettings", "GenerationSettings", "MetricSettings", *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'restoration' has no attribute {name!r}")

"""Text-to-music generation with MusicGen (transformers): the public surface.

- :func:`generate` — prompt + :class:`~restoration.settings.GenerationSettings` → mono
  float32 audio ``(1, frames)`` at the model's rate (32 kHz for MusicGen).
- :func:`generate_batch` — several prompts and seeds sampled together (a study), each clip
  the one :func:`generate` gives for its prompt and seed.
- :func:`load_musicgen` — the cached :class:`MusicgenBundle` (model, processor, rates,
  device), so a benchmark can time loading apart from generation.
- :func:`resolve_mode` — ``"exact"`` (fp32) or ``"fast"`` (int8 decoder weights); env
  ``MUSICGEN_QUANTIZE=int8`` forces ``"fast"``.
- :func:`model_status` — where the model would come from, without loading or downloading.
- :func:`clear_model_cache` — forget loaded models (tests, or after changing ``MUSICGEN_MODEL``).
- :func:`tokens_for_duration`, :class:`LoopThreads`, :func:`others_busy_cores`.
- :class:`~restoration.errors.CancelledError` (re-exported) — raised when the caller's
  ``stop_event`` is set.

Where each part lives: loading and status in :mod:`restoration.musicgen.loading` (with the
on-disk cache of prepared weights, :mod:`restoration.musicgen.prepared`); sampling in
:mod:`restoration.musicgen.sampling`, progress and streaming in
:mod:`restoration.musicgen.streaming`; CPU threads in :mod:`restoration.musicgen.threads`;
the token loop in :mod:`restoration.decoding`.
"""

from __future__ import annotations

from .device import pick_device
from .errors import CancelledError
from .musicgen.loading import (
    DEFAULT_MODEL_ID,
    MODEL_ENV,
    QUANTIZE_ENV,
    MusicgenBundle,
    clear_model_cache,
    current_model_id,
    load_musicgen,
    model_status,
    resolve_mode,
)
from .musicgen.sampling import generate, generate_batch, tokens_for_duration
from .musicgen.threads import LoopThreads, others_busy_cores
from .settings import GenerationSettings

__all__ = [
    "DEFAULT_MODEL_ID", "MODEL_ENV", "QUANTIZE_ENV", "CancelledError", "GenerationSettings", "LoopThreads",
    "MusicgenBundle", "clear_model_cache", "current_model_id", "generate", "generate_batch", "load_musicgen",
    "model_status", "others_busy_cores", "pick_device", "resolve_mode", "tokens_for_duration",
]

"""Loading MusicGen: which model, which mode, on which device, and whether it is there.

- :func:`load_musicgen` — the cached :class:`MusicgenBundle` (model, processor, rates,
  device, the lean token loop) for a mode.
- :func:`resolve_mode` — ``"exact"`` (fp32) or ``"fast"`` (int8 decoder); env
  ``MUSICGEN_QUANTIZE=int8`` forces ``"fast"``.
- :func:`model_status` — where the model would come from, without loading or downloading.
- :func:`clear_model_cache` — forget loaded models (tests, or after changing ``MUSICGEN_MODEL``).

The model is env ``MUSICGEN_MODEL`` (default ``facebook/musicgen-small``): a Hub id, or a
local folder written by ``save_pretrained`` (model and processor together). It is loaded
once per process and per (model id, mode, device), and reused. Loading failures become one
:class:`~restoration.errors.ModelUnavailableError` that names the model, the variable and
the fix. The decoder weights a mode prepares (int8 rows and scales for ``fast``) are kept
on disk by :mod:`restoration.musicgen.prepared`, so the next process skips that work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..device import pick_device
from ..errors import BadInputError, ModelUnavailableError
from ..settings import GENERATION_MODES
from .threads import torch_threads

logger = logging.getLogger("restoration.generation")

MODEL_ENV = "MUSICGEN_MODEL"
QUANTIZE_ENV = "MUSICGEN_QUANTIZE"
DEFAULT_MODEL_ID = "facebook/musicgen-small"

_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")

__all__ = [
    "DEFAULT_MODEL_ID", "MODEL_ENV", "MusicgenBundle", "QUANTIZE_ENV", "clear_model_cache", "current_model_id",
    "first_line", "load_musicgen", "model_status", "quiet_transformers", "resolve_mode",
]


@dataclass(frozen=True, eq=False)
class MusicgenBundle:
    """A loaded MusicGen and what is needed to use it.

    ``sample_rate`` is in Hz (32000 for MusicGen), ``frame_rate`` in codec frames (tokens)
    per second of audio (50), ``load_s`` the wall time of loading (and quantizing, packing)
    in seconds. ``decoder`` is the lean token loop of :mod:`restoration.decoding` when it
    supports the model (every transformers MusicGen), else None (transformers' ``generate``).
    """

    model: Any
    processor: Any
    model_id: str
    mode: str
    device: str
    sample_rate: int
    frame_rate: int
    num_codebooks: int
    audio_channels: int
    load_s: float
    decoder: Any = None  # the lean token loop (restoration.decoding.LeanDecoder), or None: transformers' generate
    prepared: str | None = None  # fast on CPU: where its int8 rows came from (see restoration.musicgen.prepared)

    @property
    def delay_frames(self) -> int:
        """Frames the codebook delay pattern costs: new tokens − decoded frames (3 for 4 codebooks)."""
        per_channel = self.num_codebooks // self.audio_channels
        return per_channel - 1


_CACHE: dict[tuple[str, str, str], MusicgenBundle] = {}
_LOAD_LOCK = threading.Lock()


# --------------------------------------------------------------------------- configuration


def current_model_id() -> str:
    """The model to load: env ``MUSICGEN_MODEL`` (stripped), else ``facebook/musicgen-small``."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL_ID


def resolve_mode(requested: str | None = None) -> str:
    """The generation mode to use: ``"exact"`` or ``"fast"``.

    Env ``MUSICGEN_QUANTIZE=int8`` forces ``"fast"`` whatever was requested; an empty,
    ``0``, ``none`` or ``off`` value leaves ``requested`` (default ``"exact"``) as it is.

    Raises
    ------
    BadInputError
        ``requested`` is not a known mode, or ``MUSICGEN_QUANTIZE`` has another value.
    """
    raw = os.environ.get(QUANTIZE_ENV, "").strip().lower()
    if raw == "int8":
        return "fast"
    if raw not in ("", "0", "none", "off", "false", "no"):
        raise BadInputError(f"{QUANTIZE_ENV} must be 'int8' or unset, got {os.environ[QUANTIZE_ENV]!r}")
    mode = "exact" if requested is None else str(requested)
    if mode not in GENERATION_MODES:
        raise BadInputError(f"generation mode must be one of {GENERATION_MODES}, got {mode!r}")
    return mode


# --------------------------------------------------------------------------- loading


def load_musicgen(*, mode: str = "exact", model_id: str | None = None) -> MusicgenBundle:
    """Load (once per process) and return the MusicGen bundle for ``mode``.

    The model comes from ``model_id`` (default: :func:`current_model_id`), through
    ``MusicgenForConditionalGeneration.from_pretrained`` and ``AutoProcessor.from_pretrained``
    exactly as a Hub id would. ``mode`` goes through :func:`resolve_mode`, so
    ``MUSICGEN_QUANTIZE=int8`` gives the instance :func:`generate` will use (unset it to
    time ``"exact"``). ``"exact"`` keeps fp32 weights; ``"fast"`` applies int8 dynamic
    quantization (per-channel weight scales) to the LM decoder's per-token ``nn.Linear``
    layers on CPU (:func:`restoration.decoding.quantize_int8`; EnCodec and T5 stay fp32), or
    makes the LM decoder fp16 on CUDA (untested here: no GPU). The lean token loop is then
    built, with fp32 weights prepacked for MKL (:func:`restoration.decoding.prepare`), so a
    first request pays nothing more. Each mode is its own cached instance.

    Returns
    -------
    MusicgenBundle
        The cached bundle; later calls with the same (model id, mode, device) return it
        without touching the disk.

    Raises
    ------
    BadInputError
        Unknown ``mode`` or ``MUSICGEN_QUANTIZE`` value.
    ModelUnavailableError
        The weights or processor cannot be loaded (offline and not cached, missing
        folder, not a MusicGen checkpoint). The message names the model, ``MUSICGEN_MODEL``
        and the fix.
    """
    mode = resolve_mode(mode)
    model_id = (model_id or current_model_id()).strip()
    device = pick_device()
    key = (model_id, mode, device)
    bundle = _CACHE.get(key)
    if bundle is not None:
        return bundle
    with _LOAD_LOCK:
        bundle = _CACHE.get(key)
        if bundle is None:
            bundle = _load(model_id, mode, device)
            _CACHE[key] = bundle
    return bundle


def clear_model_cache() -> None:
    """Forget every loaded model (the next call loads again, from ``MUSICGEN_MODEL``)."""
    with _LOAD_LOCK:
        _CACHE.clear()


def _load(model_id: str, mode: str, device: str) -> MusicgenBundle:
    source = _local_folder(model_id)
    if source is None and _looks_like_path(model_id):
        raise ModelUnavailableError(_unavailable_message(model_id, "no such folder"))
    start = time.perf_counter()
    # Loading, quantizing and packing copy memory; one thread does it as fast as two, and on a
    # busy 2-core machine far faster (measured: int8 quantization 2.8 s on 1 thread, 10.9 s
    # on 2; MKL packing 1.9 s against 3.3 s; from_pretrained 0.8 s against 1.6 s).
    with torch_threads(1 if device == "cpu" else None):
        try:
            import torch
            from transformers import AutoProcessor, MusicgenForConditionalGeneration

            with quiet_transformers():
                model = MusicgenForConditionalGeneration.from_pretrained(str(source or model_id), dtype=torch.float32)
                processor = AutoProcessor.from_pretrained(str(source or model_id))
            if not (hasattr(processor, "tokenizer") and hasattr(processor, "feature_extractor")):
                raise TypeError(f"its processor is a {type(processor).__name__}, not a MusicgenProcessor")
        except Exception as exc:  # OSError offline/missing files, ValueError/TypeError for other checkpoints
            logger.debug("loading %s failed", model_id, exc_info=True)
            raise ModelUnavailableError(_unavailable_message(model_id, first_line(exc))) from None

        model.eval()
        model.to(device)
        from .. import decoding

        lean = decoding.supports(model)
        fused_int8 = None
        prepared = None
        if mode == "fast" and device == "cpu":
            fused_int8, prepared = _quantize_fast(model, source)
        elif mode == "fast":
            # CUDA: an fp16 LM decoder (T5 and EnCodec stay fp32); the lean loop runs it with its static
            # cache as on CPU. Untested here: no GPU machine.
            model.decoder.half()
        decoder = decoding.prepare(model, fused_int8=fused_int8) if lean else None
    audio_config = model.config.audio_encoder
    bundle = MusicgenBundle(
        model=model,
        processor=processor,
        model_id=model_id,
        mode=mode,
        device=device,
        sample_rate=int(audio_config.sampling_rate),
        frame_rate=int(audio_config.frame_rate),
        num_codebooks=int(model.decoder.num_codebooks),
        audio_channels=int(model.decoder.config.audio_channels),
        load_s=time.perf_counter() - start,
        decoder=decoder,
        prepared=prepared,
    )
    logger.info("loaded %s (%s, %s) in %.1f s", model_id, mode, device, bundle.load_s)
    return bundle


def _quantize_fast(model, source: Path | None) -> tuple[dict, str]:
    """int8 decoder for ``fast`` on CPU, its rows read from the prepared-weights cache when there.

    Returns the fused products (:func:`restoration.decoding.quantize_int8`) and where the int8
    rows came from: ``"cache"``, ``"prepared, cached"``, ``"prepared"`` (cache off, not a
    local folder, or not writable).
    """
    from .. import decoding
    from . import prepared

    scheme = decoding.DEFAULT_INT8_SCHEME
    key = prepared.cache_key(source, scheme=scheme) if (source is not None and prepared.enabled()) else None
    if key is not None:
        expected = _int8_shapes(model)
        weights = prepared.load_int8(key, expected)
        if weights is not None:
            return decoding.quantize_int8(model, scheme=scheme, weights=weights), "cache"
    fused = decoding.quantize_int8(model, scheme=scheme)
    if key is not None and prepared.store_int8(key, decoding.int8_weights(model)) is not None:
        return fused, "prepared, cached"
    return fused, "prepared"


def _int8_shapes(model) -> dict:
    """``{decoder module name: (out, in)}`` of the Linears :func:`restoration.decoding.quantize_int8` rounds."""
    import torch

    skip = set()
    for layer in model.decoder.model.decoder.layers:
        skip.update({id(layer.encoder_attn.k_proj), id(layer.encoder_attn.v_proj)})
    return {name: tuple(module.weight.shape) for name, module in model.decoder.named_modules()
            if type(module) is torch.nn.Linear and id(module) not in skip}


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' warnings and its "Loading weights" bar for the block, then restore them.

    musicgen-small's own config makes transformers 5 warn that ``pad_token_id`` and
    ``bos_token_id`` (2048) lie outside the vocabulary (0–2047) on every load; MusicGen uses
    2048 on purpose, as its start token. That, and a progress bar for a 1 s load, would bury
    the command line's stage lines and its one-line errors. Hub download bars are
    huggingface_hub's and stay on. Errors still raise.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()




def _local_folder(model_id: str) -> Path | None:
    path = Path(model_id).expanduser()
    return path if path.is_dir() else None


def _looks_like_path(model_id: str) -> bool:
    """True for ids that can only be a folder: absolute, ./ ../ ~, backslashes or more than one '/'."""
    return (
        os.path.isabs(model_id)
        or model_id.startswith((".", "~"))
        or "\\" in model_id
        or model_id.count("/") > 1
        or Path(model_id).expanduser().exists()
    )


def _fix_text(model_id: str) -> str:
    if _looks_like_path(model_id):
        return (
            f"set {MODEL_ENV} to an existing folder written by save_pretrained (model and processor), "
            f"or unset it to use {DEFAULT_MODEL_ID}, downloaded beforehand while online with "
            f"`hf download {DEFAULT_MODEL_ID}` (`huggingface-cli download` with older huggingface_hub)"
        )
    return (
        f"while online, run `hf download {model_id}` (`huggingface-cli download {model_id}` with older "
        f"huggingface_hub) or copy a Hugging Face cache that holds it into HF_HOME, "
        f"or set {MODEL_ENV} to a local folder written by save_pretrained (model and processor)"
    )


def _unavailable_message(model_id: str, reason: str) -> str:
    origin = f"set by {MODEL_ENV}" if os.environ.get(MODEL_ENV, "").strip() else f"the default; {MODEL_ENV} is unset"
    return f"MusicGen model {model_id!r} ({origin}) cannot be loaded: {reason}. Fix: {_fix_text(model_id)}."


def first_line(exc: BaseException, limit: int = 240) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = (lines[0] if lines else type(exc).__name__).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- status (doctor)


def model_status() -> dict:
    """Where the MusicGen model would be loaded from, checked without loading or downloading.

    Returns
    -------
    dict
        ``model_id``; ``env_var`` (``"MUSICGEN_MODEL"``); ``source``: ``"local-folder"``,
        ``"missing-folder"``, ``"hf-cache"`` or ``"not-cached"``; ``available`` (bool: the
        config, weights and tokenizer files are present); ``path`` (the folder or cached
        ``config.json``, or None); ``missing`` (file names not found); ``offline``
        (``HF_HUB_OFFLINE`` is set); ``loaded`` (modes already in memory); ``device``;
        ``mode`` (what :func:`resolve_mode` gives with no request, or an error text);
        ``fix`` (what to do, or None when available).
    """
    model_id = current_model_id()
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    folder = _local_folder(model_id)
    missing: list[str] = []
    path: str | None = None
    if folder is not None:
        source, path = "local-folder", str(folder)
        missing = _missing_files(lambda name: (folder / name).is_file())
    elif _looks_like_path(model_id):
        source, missing = "missing-folder", ["the folder itself"]
    else:
        from huggingface_hub import try_to_load_from_cache

        def cached(name: str) -> bool:
            try:
                found = try_to_load_from_cache(model_id, name)
            except Exception:  # an id that is not a valid repo name
                return False
            return isinstance(found, str)

        missing = _missing_files(cached)
        source = "not-cached" if "config.json" in missing else "hf-cache"
        if source == "hf-cache":
            path = str(try_to_load_from_cache(model_id, "config.json"))
    try:
        mode = resolve_mode(None)
    except BadInputError as exc:
        mode = f"invalid: {exc}"
    try:
        device = pick_device()
    except Exception as exc:  # pragma: no cover - a broken torch install
        device = f"unknown: {first_line(exc)}"
    available = not missing
    return {
        "model_id": model_id,
        "env_var": MODEL_ENV,
        "source": source,
        "available": available,
        "path": path,
        "missing": missing,
        "offline": offline,
        "loaded": sorted({key[1] for key in _CACHE if key[0] == model_id}),
        "device": device,
        "mode": mode,
        "fix": None if available else _fix_text(model_id),
    }


def _missing_files(exists: Callable[[str], bool]) -> list[str]:
    missing = [] if exists("config.json") else ["config.json"]
    if not any(exists(name) for name in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if not any(exists(name) for name in _TOKENIZER_FILES):
        missing.append("tokenizer.json")
    return missing


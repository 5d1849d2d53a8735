"""Text-to-music generation with MusicGen (transformers).

Public surface:

- :func:`generate` — prompt + :class:`~restoration.settings.GenerationSettings` → mono
  float32 audio ``(1, frames)`` at the model's rate (32 kHz for MusicGen).
- :func:`load_musicgen` — the cached :class:`MusicgenBundle` (model, processor, rates,
  device), so a benchmark can time loading apart from generation.
- :func:`resolve_mode` — ``"exact"`` (fp32) or ``"fast"`` (int8 dynamic quantization of the
  LM decoder's Linear layers); env ``MUSICGEN_QUANTIZE=int8`` forces ``"fast"``.
- :func:`model_status` — where the model would come from, without loading or downloading.
- :class:`~restoration.errors.CancelledError` (re-exported here) — raised when the caller's
  ``stop_event`` is set.
- :func:`clear_model_cache` — forget loaded models (tests, or after changing ``MUSICGEN_MODEL``).

The model is env ``MUSICGEN_MODEL`` (default ``facebook/musicgen-small``): a Hub id, or a
local folder written by ``save_pretrained`` (model and processor together). It is loaded
once per process and per (model id, mode, device), and reused. Loading failures become one
:class:`~restoration.errors.ModelUnavailableError` that names the model, the variable and
the fix. Generation is serialized by a lock: two generations at once only slow each other
down (a token step streams the decoder's weights from memory).

Sampling runs through the lean token loop of :mod:`restoration.decoding` (the same tokens
transformers' ``generate`` samples for the same seed, without its per-token overhead: a
static cache, the prompt worked on once, the CFG pair batched, fused and prepacked
weights) on one CPU thread, or two for ``fast`` when the machine is idle
(:class:`LoopThreads`). Models the loop does not reproduce fall back to ``generate``.
On CUDA (untested here: no GPU) the same loop runs, with an fp16 LM decoder in ``fast``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .device import pick_device
from .errors import BadInputError, CancelledError, ModelUnavailableError, RestorationError
from .settings import GENERATION_MODES, GenerationSettings, validate_duration, validate_prompt

logger = logging.getLogger(__name__)

MODEL_ENV = "MUSICGEN_MODEL"
QUANTIZE_ENV = "MUSICGEN_QUANTIZE"
DEFAULT_MODEL_ID = "facebook/musicgen-small"
CHUNK_INTERVAL_S = 1.5  # on_chunk is called about every 1.5 s of audio produced
CHUNK_CONTEXT_S = 1.0  # codes decoded before the new ones, so the codec's LSTM and convolutions settle
CHUNK_TAIL_FRAMES = 5  # frames at the end of a streamed chunk that are decoded again next time

_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")

ProgressCallback = Callable[[int, int], Any]
ChunkCallback = Callable[[np.ndarray, int], Any]

__all__ = [
    "CancelledError", "LoopThreads", "MusicgenBundle", "clear_model_cache", "current_model_id", "generate",
    "load_musicgen", "model_status", "others_busy_cores", "pick_device", "resolve_mode", "tokens_for_duration",
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

    @property
    def delay_frames(self) -> int:
        """Frames the codebook delay pattern costs: new tokens − decoded frames (3 for 4 codebooks)."""
        per_channel = self.num_codebooks // self.audio_channels
        return per_channel - 1


_CACHE: dict[tuple[str, str, str], MusicgenBundle] = {}
_LOAD_LOCK = threading.Lock()
_GENERATE_LOCK = threading.Lock()


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
    with _torch_threads(1 if device == "cpu" else None):
        try:
            import torch
            from transformers import AutoProcessor, MusicgenForConditionalGeneration

            with _quiet_transformers():
                model = MusicgenForConditionalGeneration.from_pretrained(str(source or model_id), dtype=torch.float32)
                processor = AutoProcessor.from_pretrained(str(source or model_id))
            if not (hasattr(processor, "tokenizer") and hasattr(processor, "feature_extractor")):
                raise TypeError(f"its processor is a {type(processor).__name__}, not a MusicgenProcessor")
        except Exception as exc:  # OSError offline/missing files, ValueError/TypeError for other checkpoints
            logger.debug("loading %s failed", model_id, exc_info=True)
            raise ModelUnavailableError(_unavailable_message(model_id, _first_line(exc))) from None

        model.eval()
        model.to(device)
        from . import decoding

        lean = decoding.supports(model)
        fused_int8 = None
        if mode == "fast" and device == "cpu":
            fused_int8 = decoding.quantize_int8(model)
        elif mode == "fast":
            model.decoder.half()  # fp16 LM decoder on CUDA; T5 and EnCodec stay fp32 (untested: no GPU here)
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
    )
    logger.info("loaded %s (%s, %s) in %.1f s", model_id, mode, device, bundle.load_s)
    return bundle


@contextlib.contextmanager
def _quiet_transformers():
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


@contextlib.contextmanager
def _torch_threads(count: int | None):
    """Run the block with ``count`` torch CPU threads (None: leave as is), then restore."""
    if count is None:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


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


def _first_line(exc: BaseException, limit: int = 240) -> str:
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
        device = f"unknown: {_first_line(exc)}"
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


# --------------------------------------------------------------------------- generation


def generate(
    prompt: str,
    *,
    settings: GenerationSettings,
    on_progress: ProgressCallback | None = None,
    on_chunk: ChunkCallback | None = None,
    stop_event: threading.Event | None = None,
) -> tuple[np.ndarray, int]:
    """Generate music from a text prompt.

    ``settings.duration_s`` seconds are produced: ``ceil(duration_s × frame_rate)`` codec
    frames (50 per second) plus the frames the codebook delay pattern costs (3 for 4
    codebooks) are sampled, decoded by EnCodec and trimmed to exactly
    ``round(duration_s × sample_rate)`` samples. Sampling is seeded with ``settings.seed``:
    the same prompt, settings and seed give the same audio on the same machine and mode.

    Parameters
    ----------
    prompt : str
        Description of the music (1–500 characters after stripping).
    settings : GenerationSettings
        Duration in seconds (1–30), seed, classifier-free ``guidance_scale`` (1 = off),
        ``temperature``, ``top_k`` and ``mode`` (``"exact"`` fp32 or ``"fast"`` int8
        decoder; env ``MUSICGEN_QUANTIZE=int8`` forces ``"fast"``).
    on_progress : callable, optional
        ``on_progress(tokens_done, tokens_total)``, called with 0 before sampling and after
        every sampled token; the last call has ``tokens_done == tokens_total``.
    on_chunk : callable, optional
        ``on_chunk(audio_so_far, sample_rate)``, called about every 1.5 s of audio produced
        with the audio so far, float32 ``(1, frames)``, growing from call to call. It is for
        listening while the rest is sampled: new frames are decoded in a window with 1 s of
        context, so it differs slightly from the returned audio. Costs nothing when None.
    stop_event : threading.Event, optional
        When set, generation stops at the next token and :class:`CancelledError` is raised.

    Returns
    -------
    audio : np.ndarray
        float32 ``(1, frames)``, mono, ``frames == round(duration_s × sample_rate)``.
    sample_rate : int
        In Hz (32000 for MusicGen).

    Raises
    ------
    BadInputError
        Blank or over-long prompt, duration outside 1–30 s, bad ``MUSICGEN_QUANTIZE``.
    ModelUnavailableError
        The model cannot be loaded (see :func:`load_musicgen`).
    CancelledError
        ``stop_event`` was set before generation finished.
    """
    text = validate_prompt(prompt)
    if not isinstance(settings, GenerationSettings):
        raise BadInputError(f"settings must be a GenerationSettings, got {type(settings).__name__}")
    duration_s = validate_duration(settings.duration_s)
    mode = resolve_mode(settings.mode)
    _check_cancel(stop_event)
    bundle = load_musicgen(mode=mode)

    target_samples = int(round(duration_s * bundle.sample_rate))
    new_tokens = tokens_for_duration(duration_s, frame_rate=bundle.frame_rate, num_codebooks=bundle.delay_frames + 1)

    import torch

    inputs = bundle.processor(text=[text], padding=True, truncation=True, return_tensors="pt").to(bundle.device)
    hook = _StepHook(
        bundle=bundle,
        tokens_total=new_tokens,
        target_samples=target_samples,
        on_progress=on_progress,
        on_chunk=on_chunk,
        stop_event=stop_event,
    )
    if on_progress is not None:
        on_progress(0, new_tokens)

    _acquire(_GENERATE_LOCK, stop_event)
    start = time.perf_counter()
    try:
        sample = _sample_lean if bundle.decoder is not None else _sample_transformers
        values = sample(bundle, inputs, settings, new_tokens, hook)
    except torch.OutOfMemoryError as exc:
        raise RestorationError(
            f"out of memory generating {duration_s:g} s with {bundle.model_id!r}: ask for a shorter duration "
            f"({_first_line(exc)})"
        ) from None
    finally:
        _GENERATE_LOCK.release()
    elapsed = time.perf_counter() - start
    audio = _to_mono(values.float().cpu().numpy())
    if audio.shape[-1] < target_samples:  # cannot happen with an EnCodec decoder; guard the contract anyway
        raise RuntimeError(f"decoder gave {audio.shape[-1]} samples, fewer than the {target_samples} asked for")
    audio = np.ascontiguousarray(audio[:, :target_samples], dtype=np.float32)
    logger.info(
        "generated %.2f s with %s (%s) in %.1f s (%.0f ms/token)",
        duration_s, bundle.model_id, bundle.mode, elapsed, 1000 * elapsed / max(new_tokens, 1),
    )
    return audio, bundle.sample_rate


def tokens_for_duration(duration_s: float, *, frame_rate: int = 50, num_codebooks: int = 4) -> int:
    """New tokens to sample for ``duration_s`` seconds: ceil(duration_s × frame_rate) + num_codebooks − 1.

    MusicGen delays codebook ``k`` by ``k`` frames, so ``n`` new tokens decode to
    ``n − (num_codebooks − 1)`` frames (100 tokens → 97 frames → 1.94 s at 50 Hz).
    ``num_codebooks`` counts the codebooks of one channel.
    """
    return int(math.ceil(round(float(duration_s) * frame_rate, 6))) + int(num_codebooks) - 1


def _check_cancel(stop_event: threading.Event | None) -> None:
    if stop_event is not None and stop_event.is_set():
        raise CancelledError("generation cancelled")


def _acquire(lock: threading.Lock, stop_event: threading.Event | None) -> None:
    """Take ``lock``; while waiting, give up with CancelledError as soon as ``stop_event`` is set."""
    if stop_event is None:
        lock.acquire()
        return
    while not lock.acquire(timeout=0.1):
        _check_cancel(stop_event)
    if stop_event.is_set():
        lock.release()
        _check_cancel(stop_event)


def _sample_lean(bundle: MusicgenBundle, inputs, settings: GenerationSettings, new_tokens: int, hook):
    """Sample with the lean token loop (:mod:`restoration.decoding`) and decode; ``(channels, samples)``.

    The seed drives a private generator, identical in stream to ``torch.manual_seed(seed)``:
    the same seed draws the same random numbers as transformers' ``generate`` would, and the
    global RNG is left alone.
    """
    import torch

    generator = torch.Generator(device=bundle.device).manual_seed(int(settings.seed))
    threads = LoopThreads(bundle)

    def on_step(tokens):
        threads.step()
        hook(tokens)

    with threads:
        codes = bundle.decoder.sample(
            inputs["input_ids"],
            inputs["attention_mask"],
            steps=new_tokens,
            guidance_scale=float(settings.guidance_scale),
            temperature=float(settings.temperature),
            top_k=int(settings.top_k),
            generator=generator,
            on_step=on_step,
        )
    with torch.inference_mode():
        return _decode_codes(bundle, codes)


class LoopThreads:
    """CPU threads of the token loop (a context manager; ``step()`` after every step).

    A step multiplies 1–2 activation rows by every weight matrix: ~300 small operations that
    stream the weights from memory. Measured on this 2-core machine, idle:

    - fp32 (``exact``): 144 ms per step on 1 thread, 142 ms on 2. One core streams the
      weights as fast as two, so ``exact`` always runs on 1 thread.
    - int8 (``fast``): 47 ms on 1 thread, 35 ms on 2: int8 products do more arithmetic per
      byte, and a second thread helps.

    But a second OpenMP thread puts a barrier in every operation, and when another process
    holds the other core each barrier waits for a scheduler tick: on this machine, shared
    with other test runs, int8 steps took 2.5 s on 2 threads instead of 50 ms on 1. So
    ``fast`` encodes the prompt and runs the first steps on 1 thread while it measures how
    many cores *other* processes keep busy (:func:`others_busy_cores`, over at least
    ``MEASURE_S``), widens only if that leaves a core for each thread, and drops to 1
    thread for the rest of the clip as soon as one step takes ``SLOW_FACTOR`` times the
    usual. (The 1-minute load average is no guide: it lags. Right after another run ended it
    still read 1.6 on an idle machine, which kept a fast run on 1 thread, 2.6 s slower.)
    int8 products accumulate in integers and the rest of a step is elementwise, so the
    thread count does not change a token (checked: logits bitwise equal on 1 and 2 threads).
    Threads are a process setting: other work (another request's Demucs) sees the change
    while a clip is sampled.
    """

    SLOW_FACTOR = 2.5
    MEASURE_S = 0.1
    #: Widen when other processes leave at least this much of a core free for each extra thread.
    FREE_MARGIN = 0.5

    def __init__(self, bundle: MusicgenBundle):
        import torch

        self.torch = torch
        self.active = bundle.device == "cpu"
        self.saved = torch.get_num_threads() if self.active else 1
        self.wide = self.saved if (self.active and bundle.mode == "fast" and self.saved > 1) else 1
        self.widened = False
        self.skip_next = False
        self.times: list[float] = []
        self.last = 0.0
        self.started = 0.0
        self.sample = None

    def __enter__(self):
        if self.active:
            self.torch.set_num_threads(1)
            if self.wide > 1:
                self.started = time.perf_counter()
                self.sample = _cpu_times()
                if self.sample is None:  # no /proc/stat: nothing to measure with, stay on 1 thread
                    self.wide = 1
        return self

    def __exit__(self, *exc):
        if self.active:
            self.torch.set_num_threads(self.saved)
        return False

    def step(self) -> None:
        """Call after every step: widen once the machine is measured idle, narrow for good if a step stalls."""
        if self.wide == 1:
            return
        now = time.perf_counter()
        if not self.widened:
            window = now - self.started
            if window < self.MEASURE_S:
                return
            others = others_busy_cores(self.sample, _cpu_times(), window)
            cores = os.cpu_count() or 1
            if others is None or others > cores - self.wide + 1 - self.FREE_MARGIN:
                logger.info("token loop: other processes keep %s cores busy; 1 thread", others)
                self.wide = 1
                return
            self.torch.set_num_threads(self.wide)
            self.widened = True
            self.skip_next = True  # the first step after widening also pays for starting the threads
            self.last = time.perf_counter()
            return
        elapsed = now - self.last
        if self.skip_next:
            self.skip_next = False
        elif len(self.times) >= 3 and elapsed > self.SLOW_FACTOR * _median(self.times):
            logger.info("token loop: a step took %.0f ms on %d threads; 1 thread from now on",
                        1000 * elapsed, self.wide)
            self.wide = 1
            self.torch.set_num_threads(1)
            return
        else:
            self.times.append(elapsed)
        self.last = time.perf_counter()


def _cpu_times() -> tuple[float, float] | None:
    """``(busy CPU seconds of the whole machine, CPU seconds of this process)`` now; None without ``/proc/stat``.

    Busy is every CPU state of ``/proc/stat``'s first line except idle and iowait, in seconds
    (ticks / ``SC_CLK_TCK``); this process's is user + system time of all its threads.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        if fields[0] != "cpu":
            return None
        ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / per_second, own.user + own.system


def others_busy_cores(before, after, wall_s: float) -> float | None:
    """Cores kept busy by other processes between two :func:`_cpu_times` samples ``wall_s`` apart.

    ``(Δ machine busy − Δ this process) / wall_s``, floored at 0 (the two clocks tick
    separately, ±10 ms each). None when either sample is missing.
    """
    if before is None or after is None or wall_s <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return round(max(0.0, others / wall_s), 3)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _decode_codes(bundle: MusicgenBundle, codes):
    """EnCodec-decode codes ``(1, 1, codebooks, frames)`` as transformers does: ``(channels, samples)``."""
    import torch

    codec = bundle.model.audio_encoder
    if bundle.audio_channels == 1:
        values = codec.decode(codes, audio_scales=[None]).audio_values
    else:  # stereo: codebook rows interleave left and right
        left = codec.decode(codes[:, :, 0::2], audio_scales=[None]).audio_values
        right = codec.decode(codes[:, :, 1::2], audio_scales=[None]).audio_values
        values = torch.cat([left, right], dim=1)
    return values[0]


def _sample_transformers(bundle: MusicgenBundle, inputs, settings: GenerationSettings, new_tokens: int, hook):
    """Sample and decode with transformers' ``generate`` (models the lean loop does not support)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Adapter(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            hook(input_ids)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    fork_devices = [torch.cuda.current_device()] if bundle.device == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _autocast(bundle):
        torch.manual_seed(int(settings.seed))
        values = bundle.model.generate(
            **inputs,
            do_sample=True,
            guidance_scale=float(settings.guidance_scale),
            temperature=float(settings.temperature),
            top_k=int(settings.top_k),
            max_new_tokens=new_tokens,
            stopping_criteria=StoppingCriteriaList([Adapter()]),
        )
    return values[0]


def _autocast(bundle: MusicgenBundle):
    """fp16 autocast for ``fast`` on CUDA (transformers path); a no-op context otherwise."""
    import torch

    if bundle.device == "cuda" and bundle.mode == "fast":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _to_mono(values: np.ndarray) -> np.ndarray:
    """``(channels, samples)`` → ``(1, samples)``: a stereo MusicGen is averaged to mono."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[None, :]
    return values if values.shape[0] == 1 else values.mean(axis=0, keepdims=True)


class _StepHook:
    """Called after every sampled token with the token matrix so far: progress, cancellation, streaming.

    ``tokens`` is ``(codebooks, 1 + steps done)``, column 0 the start token (the lean loop's
    matrix, or ``input_ids`` inside transformers' ``generate``). Cancellation raises
    :class:`CancelledError` out of the loop: stopping early would leave codebooks of
    unequal length that cannot be decoded.
    """

    def __init__(self, *, bundle, tokens_total, target_samples, on_progress, on_chunk, stop_event):
        self.bundle = bundle
        self.tokens_total = int(tokens_total)
        self.target_samples = int(target_samples)
        self.on_progress = on_progress
        self.on_chunk = on_chunk
        self.stop_event = stop_event
        self.start_length: int | None = None
        self.chunk_tokens = max(1, int(round(CHUNK_INTERVAL_S * bundle.frame_rate)))
        self.next_chunk_at = self.chunk_tokens + bundle.delay_frames
        self.context_frames = int(round(CHUNK_CONTEXT_S * bundle.frame_rate))
        self.streamed = np.zeros((1, 0), dtype=np.float32)  # audio handed to on_chunk so far
        self.streamed_frames = 0

    def __call__(self, input_ids) -> None:
        if self.start_length is None:
            self.start_length = input_ids.shape[-1] - 1
        done = input_ids.shape[-1] - self.start_length
        _check_cancel(self.stop_event)
        if self.on_progress is not None:
            self.on_progress(min(done, self.tokens_total), self.tokens_total)
        if self.on_chunk is not None and self.next_chunk_at <= done < self.tokens_total:
            self.next_chunk_at += self.chunk_tokens
            audio = self.stream(input_ids)
            if audio is not None:
                self.on_chunk(audio, self.bundle.sample_rate)

    def stream(self, input_ids):
        """The audio so far: the part streamed before, plus the new frames decoded in a window.

        Decoding the whole prefix every time costs O(n²): 95 s extra for a 30 s clip with
        musicgen-small's EnCodec on 2 cores. Instead the new frames are decoded with
        ``CHUNK_CONTEXT_S`` of codes before them; the last ``CHUNK_TAIL_FRAMES`` frames
        streamed before (decoded without their right context) are replaced, with a
        one-frame crossfade. The result differs slightly from the final decode.
        """
        per_channel = self.bundle.num_codebooks // self.bundle.audio_channels
        frames = input_ids.shape[-1] - per_channel  # frames whose every codebook is sampled
        if frames <= self.streamed_frames:
            return None
        first = max(0, self.streamed_frames - self.context_frames)
        window = self.decode(input_ids, first, frames)
        hop = window.shape[-1] // (frames - first)  # samples per frame (640 at 32 kHz, 50 Hz)
        keep = max(0, self.streamed_frames - CHUNK_TAIL_FRAMES)
        new = window[:, (keep - first) * hop :]
        old_tail = self.streamed[:, keep * hop :]
        fade = min(hop, old_tail.shape[-1], new.shape[-1])
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
            new[:, :fade] = old_tail[:, :fade] * (1.0 - ramp) + new[:, :fade] * ramp
        self.streamed = np.concatenate([self.streamed[:, : keep * hop], new], axis=-1)
        self.streamed_frames = frames
        return np.array(self.streamed[:, : self.target_samples], dtype=np.float32)

    def decode(self, input_ids, first: int, last: int) -> np.ndarray:
        """Decode frames ``first``..``last - 1`` to mono float32 ``(1, samples)``, undoing the delay pattern.

        Position 0 holds the start token; codebook row ``k`` (delay ``d = k``, or ``k // 2``
        for stereo, whose rows interleave left and right) holds frame ``j`` at position
        ``j + d + 1``. A frame is complete once the most delayed row has it.
        """
        import torch

        bundle = self.bundle
        rows = []
        for row in range(bundle.num_codebooks):
            begin = 1 + row // bundle.audio_channels
            rows.append(input_ids[row, begin + first : begin + last])
        codes = torch.stack(rows)[None, None]  # (1 chunk, batch 1, codebooks, frames)
        with torch.inference_mode():
            values = _decode_codes(bundle, codes)
        return np.array(_to_mono(values.float().cpu().numpy()), dtype=np.float32)


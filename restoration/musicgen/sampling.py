"""Sampling MusicGen: prompts and settings in, mono float32 audio out.

- :func:`generate` — one prompt → ``(1, frames)`` audio at 32 kHz, with progress,
  cancellation and streaming.
- :func:`generate_batch` — several prompts × seeds sampled together, each row with its own
  seed and generator: the same tokens as :func:`generate` gives each one alone.
- :func:`tokens_for_duration` — how many tokens a duration costs.

Sampling runs through the lean token loop of :mod:`restoration.decoding` (the same tokens
transformers' ``generate`` samples for the same seed, without its per-token overhead) with
the thread policy of :class:`~restoration.musicgen.threads.LoopThreads`. Models the loop
does not reproduce fall back to ``generate``. Generation is serialized by a lock: two
generations at once only slow each other down (a token step streams the decoder's weights
from memory); a batch is how to sample several clips at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import Any, Callable

import numpy as np

from ..errors import BadInputError, CancelledError, RestorationError
from ..settings import GenerationSettings, validate_duration, validate_prompt
from .loading import MusicgenBundle, first_line, load_musicgen, resolve_mode
from .streaming import StepHook, check_cancel, decode_codes, to_mono
from .threads import LoopThreads

logger = logging.getLogger("restoration.generation")

ProgressCallback = Callable[[int, int], Any]
ChunkCallback = Callable[[np.ndarray, int], Any]

__all__ = ["CancelledError", "generate", "generate_batch", "tokens_for_duration"]

_GENERATE_LOCK = threading.Lock()


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
    check_cancel(stop_event)
    bundle = load_musicgen(mode=mode)

    target_samples = int(round(duration_s * bundle.sample_rate))
    new_tokens = tokens_for_duration(duration_s, frame_rate=bundle.frame_rate, num_codebooks=bundle.delay_frames + 1)

    import torch

    inputs = bundle.processor(text=[text], padding=True, truncation=True, return_tensors="pt").to(bundle.device)
    hook = StepHook(
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
            f"({first_line(exc)})"
        ) from None
    finally:
        _GENERATE_LOCK.release()
    elapsed = time.perf_counter() - start
    audio = to_mono(values.float().cpu().numpy())
    if audio.shape[-1] < target_samples:  # cannot happen with an EnCodec decoder; guard the contract anyway
        raise RuntimeError(f"decoder gave {audio.shape[-1]} samples, fewer than the {target_samples} asked for")
    audio = np.ascontiguousarray(audio[:, :target_samples], dtype=np.float32)
    logger.info(
        "generated %.2f s with %s (%s) in %.1f s (%.0f ms/token)",
        duration_s, bundle.model_id, bundle.mode, elapsed, 1000 * elapsed / max(new_tokens, 1),
    )
    return audio, bundle.sample_rate


def generate_batch(
    requests: list[tuple[str, GenerationSettings]],
    *,
    on_progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
) -> list[tuple[np.ndarray, int]]:
    """Generate several clips together: ``(prompt, settings)`` pairs in, ``(audio, sample_rate)`` pairs out.

    The clips are sampled as one batch by the lean token loop
    (:meth:`restoration.decoding.LeanDecoder.sample_batch`): every decoder weight is read once
    per step for all of them, which is what a token costs on a CPU. Each clip keeps its own
    prompt, seed and random generator, and gets the tokens :func:`generate` gives it alone
    (fp32 ``exact``: up to the rounding of a product over more rows, which can flip a
    near-tie; int8 ``fast``: bit for bit). Each clip is decoded on its own, as
    :func:`generate` decodes it.

    Parameters
    ----------
    requests : list of (str, GenerationSettings)
        Prompts and their settings. The settings may differ in ``seed`` only (duration,
        mode, guidance, temperature and top-k are shared by a batch).
    on_progress : callable, optional
        ``on_progress(tokens_done, tokens_total)`` after every step of the batch.
    stop_event : threading.Event, optional
        When set, sampling stops at the next token and :class:`CancelledError` is raised.

    Returns
    -------
    list of (np.ndarray, int)
        For each request, in order: float32 ``(1, frames)`` mono audio and its rate in Hz.

    Raises
    ------
    BadInputError
        No requests, a bad prompt or duration, or settings that differ in more than the seed.
    ModelUnavailableError, CancelledError
        As for :func:`generate`.
    """
    from dataclasses import replace

    if not requests:
        raise BadInputError("a batch needs at least one prompt")
    texts = [validate_prompt(prompt) for prompt, _ in requests]
    all_settings = [settings for _, settings in requests]
    if not all(isinstance(s, GenerationSettings) for s in all_settings):
        raise BadInputError("every batch request needs a GenerationSettings")
    shared = replace(all_settings[0], seed=0)
    if any(replace(s, seed=0) != shared for s in all_settings):
        raise BadInputError("the clips of a batch may differ in seed only (duration, mode and sampling are shared)")
    duration_s = validate_duration(shared.duration_s)
    check_cancel(stop_event)
    bundle = load_musicgen(mode=resolve_mode(shared.mode))
    if bundle.decoder is None or len(requests) == 1:
        return [generate(text, settings=settings, on_progress=on_progress, stop_event=stop_event)
                for text, settings in zip(texts, all_settings)]

    import torch

    target_samples = int(round(duration_s * bundle.sample_rate))
    new_tokens = tokens_for_duration(duration_s, frame_rate=bundle.frame_rate, num_codebooks=bundle.delay_frames + 1)
    prompts = []
    for text in texts:
        inputs = bundle.processor(text=[text], padding=True, truncation=True, return_tensors="pt").to(bundle.device)
        prompts.append((inputs["input_ids"], inputs["attention_mask"]))
    generators = [torch.Generator(device=bundle.device).manual_seed(int(s.seed)) for s in all_settings]
    threads = LoopThreads(bundle)

    def on_step(tokens) -> None:
        threads.step()
        check_cancel(stop_event)
        if on_progress is not None:
            on_progress(tokens.shape[-1] - 1, new_tokens)

    if on_progress is not None:
        on_progress(0, new_tokens)
    _acquire(_GENERATE_LOCK, stop_event)
    start = time.perf_counter()
    try:
        with threads:
            codes = bundle.decoder.sample_batch(
                prompts, steps=new_tokens, guidance_scale=float(shared.guidance_scale),
                temperature=float(shared.temperature), top_k=int(shared.top_k), generators=generators,
                on_step=on_step,
            )
    except torch.OutOfMemoryError as exc:
        raise RestorationError(
            f"out of memory generating {len(requests)} clips of {duration_s:g} s together: use a smaller batch "
            f"({first_line(exc)})"
        ) from None
    finally:
        _GENERATE_LOCK.release()
    elapsed = time.perf_counter() - start
    results = []
    with torch.inference_mode():
        for clip_codes in codes:
            audio = to_mono(decode_codes(bundle, clip_codes).float().cpu().numpy())
            results.append((np.ascontiguousarray(audio[:, :target_samples], dtype=np.float32), bundle.sample_rate))
    logger.info(
        "generated %d × %.2f s with %s (%s) in %.1f s (%.0f ms/token for the batch)",
        len(requests), duration_s, bundle.model_id, bundle.mode, elapsed, 1000 * elapsed / max(new_tokens, 1),
    )
    return results


def tokens_for_duration(duration_s: float, *, frame_rate: int = 50, num_codebooks: int = 4) -> int:
    """New tokens to sample for ``duration_s`` seconds: ceil(duration_s × frame_rate) + num_codebooks − 1.

    MusicGen delays codebook ``k`` by ``k`` frames, so ``n`` new tokens decode to
    ``n − (num_codebooks − 1)`` frames (100 tokens → 97 frames → 1.94 s at 50 Hz).
    ``num_codebooks`` counts the codebooks of one channel.
    """
    return int(math.ceil(round(float(duration_s) * frame_rate, 6))) + int(num_codebooks) - 1


def _acquire(lock: threading.Lock, stop_event: threading.Event | None) -> None:
    """Take ``lock``; while waiting, give up with CancelledError as soon as ``stop_event`` is set."""
    if stop_event is None:
        lock.acquire()
        return
    while not lock.acquire(timeout=0.1):
        check_cancel(stop_event)
    if stop_event.is_set():
        lock.release()
        check_cancel(stop_event)


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
        return decode_codes(bundle, codes)


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


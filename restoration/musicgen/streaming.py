"""What the token loop does after every step: progress, cancellation and streamed audio.

:class:`StepHook` is called with the token matrix so far; it reports progress, raises
:class:`~restoration.errors.CancelledError` when the caller's stop event is set, and about
every ``CHUNK_INTERVAL_S`` of audio decodes the new frames for listening while the rest is
sampled.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import CancelledError

CHUNK_INTERVAL_S = 1.5  # on_chunk is called about every 1.5 s of audio produced
CHUNK_CONTEXT_S = 1.0  # codes decoded before the new ones, so the codec's LSTM and convolutions settle
CHUNK_TAIL_FRAMES = 5  # frames at the end of a streamed chunk that are decoded again next time

__all__ = ["StepHook", "check_cancel", "decode_codes", "to_mono"]


def check_cancel(stop_event: threading.Event | None) -> None:
    if stop_event is not None and stop_event.is_set():
        raise CancelledError("generation cancelled")



def decode_codes(bundle, codes):
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



def to_mono(values: np.ndarray) -> np.ndarray:
    """``(channels, samples)`` → ``(1, samples)``: a stereo MusicGen is averaged to mono."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[None, :]
    return values if values.shape[0] == 1 else values.mean(axis=0, keepdims=True)



class StepHook:
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
        check_cancel(self.stop_event)
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
            values = decode_codes(bundle, codes)
        return np.array(to_mono(values.float().cpu().numpy()), dtype=np.float32)


"""Which device runs the models: one choice for MusicGen, Demucs, the doctor and the benchmark."""

from __future__ import annotations


def pick_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible to torch, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

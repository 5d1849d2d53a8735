"""``doctor``: what is installed, which device runs the models, and whether each model's weights are reachable."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("torch", "transformers", "demucs", "noisereduce", "librosa", "gradio", "pyloudnorm", "soundfile", "numpy", "scipy")


def diagnose() -> dict:
    """A JSON-ready account of the environment; never downloads anything."""
    from . import generation, separation

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    from .device import pick_device

    device = pick_device()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "models": {"musicgen": generation.model_status(), "demucs": separation.model_status()},
    }


def format_text(info: dict) -> str:
    lines = [f"python {info['python']} on {info['platform']}", f"device: {info['device']}"
             + (f" ({info['cuda_device']})" if info["cuda_device"] else f", {info['torch_threads']} torch threads")]
    lines.append("packages: " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in info["packages"].items()))
    for role, status in info["models"].items():
        state = "available" if status.get("available") else "NOT AVAILABLE"
        name = status.get("model_id") or status.get("model")
        lines.append(f"{role}: {name} — {state} ({status.get('source') or status.get('detail') or 'not found'})")
        if not status.get("available") and status.get("fix"):
            lines.append(f"  fix: {status['fix']}")
    return "\n".join(lines)

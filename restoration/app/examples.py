"""The examples of the app's two tabs: genre prompts, and short clips to restore."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

__all__ = ["example_clips", "read_prompt_examples"]

logger = logging.getLogger(__name__)


def read_prompt_examples(path) -> list[tuple[str, str]]:
    """``(genre, prompt)`` pairs from a ``genre | prompt`` file; ``#`` lines are comments."""
    pairs = []
    path = Path(path)
    if not path.is_file():
        return pairs
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        genre, sep, prompt = line.partition("|")
        pairs.append((genre.strip(), prompt.strip()) if sep else ("unlabelled", line))
    return [(g, p) for g, p in pairs if p]


def example_clips(folder, script) -> list[tuple[str, str]]:
    """``(path, label)`` of the example clips, made by ``scripts/make_example_clips.py`` if missing."""
    try:
        spec = importlib.util.spec_from_file_location("make_example_clips", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return [(str(path), label) for path, label in module.make_clips(folder)]
    except Exception:  # examples are a convenience: the app must start without them
        logger.exception("could not make the example clips in %s", folder)
        return []

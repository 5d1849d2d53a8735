"""The examples of the app's two tabs: genre prompts, and short clips to restore."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

__all__ = ["example_clips", "read_prompt_examples"]

logger = logging.getLogger(__name__)


def read_prompt_examples(path) -> list[tuple[str, str]]:
    """``(genre, prompt)`` pairs of a ``genre | prompt`` file (:func:`restoration.batch.read_prompts`).

    Examples are a convenience: a missing or malformed file gives none, and the app starts.
    """
    from ..batch import read_prompts
    from ..errors import BadInputError

    try:
        return read_prompts(path)
    except BadInputError as exc:
        logger.warning("no prompt examples: %s", exc)
        return []


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

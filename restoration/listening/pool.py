"""The listening-test pool: clip folders chosen in the app ("Add to listening test") for the next test."""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError
from . import store
from .stimuli import SOURCE_FILES, is_clip_folder, read_clip_source


def add_run_to_pool(run_dir) -> str:
    """Record an app run folder as a candidate clip for the next listening test; return a short message."""
    run_dir = Path(run_dir)
    if not is_clip_folder(run_dir):
        needed = ", ".join(["report.json", *SOURCE_FILES.values()])
        raise BadInputError(f"{run_dir.name} is not a complete run ({needed} are needed)")
    source = read_clip_source(run_dir)
    added, count = store.add_to_pool(run_dir.resolve(), prompt=source.prompt, genre=source.genre)
    if not added:
        return f"Already in the listening-test pool ({count} clip{'s' if count != 1 else ''})."
    return f"Added to the listening-test pool ({count} clip{'s' if count != 1 else ''}; 8–12 make a test)."

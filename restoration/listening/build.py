"""Building a listening test: pick clips, prepare their stimuli, register them.

``create_test`` is what ``python -m restoration listening create`` and the admin tab call.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import asdict
from pathlib import Path

from ..errors import BadInputError
from ..versions import CONDITIONS
from . import store
from .db import stimuli_root
from .stimuli import (StimulusSettings, find_clip_folders, is_clip_folder, prepare_stimuli, read_clip_source,
                      select_clips)

MAX_NAME_CHARS = 80
RECOMMENDED_CLIPS = (8, 12)


def validate_name(name) -> str:
    name = str(name or "").strip()
    if not name:
        raise BadInputError("give the test a name (--name), e.g. 'class-2026-05'")
    if len(name) > MAX_NAME_CHARS:
        raise BadInputError(f"the test name is longer than {MAX_NAME_CHARS} characters")
    return name


def create_test(name: str, *, from_dir=None, folders=None, n_clips: int = 10, seed: int = 0,
                settings: StimulusSettings | None = None, path=None) -> dict:
    """Create a test from the clip folders under ``from_dir`` (or the given ``folders``).

    Picks ``n_clips`` clips spread over genres plus one practice clip, prepares the stimuli
    (see :mod:`restoration.listening.stimuli`) into ``data_dir()/listening/<random id>/`` and
    registers everything in one transaction; the new test becomes the active one.
    Returns a summary: id, name, trials, practice, genres, skipped, target_lufs, folder, notes.
    """
    name = validate_name(name)
    settings = settings or StimulusSettings()
    if (from_dir is None) == (folders is None):
        raise BadInputError("give either a folder to search (--from) or a list of clip folders")
    if from_dir is not None:
        found = find_clip_folders(from_dir)
        source_desc = str(from_dir)
    else:
        found = sorted({Path(f) for f in folders if is_clip_folder(Path(f))})
        source_desc = f"{len(found)} saved app runs"
    if not found:
        raise BadInputError(f"no clip folders in {source_desc} (each needs report.json, input.wav, demucs.wav "
                            "and spectral_gating.wav)")
    if any(t["name"] == name for t in store.list_tests(path)):
        raise BadInputError(f"a test named {name!r} already exists; choose another --name")
    sources = [read_clip_source(f) for f in found]
    chosen, practice = select_clips(sources, int(n_clips), seed=seed)
    test_id = secrets.token_hex(8)
    folder = stimuli_root() / test_id
    try:
        scored, training, skipped = prepare_stimuli(chosen, practice, folder, settings)
        if not scored:
            raise BadInputError("no usable clips: " + "; ".join(skipped))
        target = scored[0].stimuli[0].target_lufs
        everything = ([training] if training else []) + scored
        log = {
            "clips_found": len(found),
            "skipped": skipped,
            "target_lufs": target,
            "clips": [
                {"trial": c.clip_id, "folder": str(c.source.folder), "genre": c.source.genre,
                 "prompt": c.source.prompt, "seed": c.source.seed, "practice": c is training,
                 "sample_rate": c.sample_rate, "frames": c.frames, "excerpt_start_s": c.excerpt_start_s,
                 "source_seconds": c.source_seconds, "stimuli": [asdict(s) for s in c.stimuli]}
                for c in everything
            ],
        }
        store.register_test(test_id=test_id, name=name, folder=test_id, source=source_desc,
                            settings={**asdict(settings), "conditions": list(CONDITIONS),
                                      "selection_seed": seed, "n_clips": int(n_clips)},
                            log=log, clips=everything, training_clip_id=training.clip_id if training else None,
                            path=path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    notes = []
    lo, hi = RECOMMENDED_CLIPS
    if not lo <= len(scored) <= hi:
        notes.append(f"{len(scored)} scored clips; the protocol recommends {lo}–{hi} per listener")
    if practice is not None and practice in chosen:
        notes.append("too few clips for a separate practice clip: the practice trial reuses a scored clip")
    if target < settings.target_lufs - 1e-9:
        notes.append(f"loudness target lowered to {target:.2f} LUFS to keep every peak under "
                     f"{settings.peak_ceiling_dbfs:g} dBFS")
    return {"id": test_id, "name": name, "trials": len(scored), "practice": training is not None,
            "genres": sorted({c.source.genre for c in scored}), "skipped": skipped, "target_lufs": target,
            "folder": str(folder), "notes": notes}

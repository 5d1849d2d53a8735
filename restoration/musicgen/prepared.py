"""The ``fast`` decoder's prepared weights, kept on disk so that the next process skips preparing them.

Preparing ``fast`` rounds every per-token decoder matrix to int8 rows with per-row scales
(:func:`restoration.decoding.int8_rows`): about 1.6–2.8 s for musicgen-small on this CPU,
paid again by every process. This module stores the result, 0.3 GB for musicgen-small, in
``<data dir>/prepared/`` (:func:`restoration.paths.data_dir`) and hands it back to the next
process, which then only packs it for FBGEMM.

- **Key.** SHA-256 of the model folder's files (config, weights), the torch version, the
  int8 scheme and :data:`FORMAT`. A file's digest is remembered beside the cache with the
  file's size, modification time and inode, and computed again when one of them changes, so a
  2.4 GB checkpoint is hashed once, not at every start. A changed model or torch gives
  another key: the stale entry is never read.
- **Writes are atomic**: a temporary file in the same folder, flushed, then renamed over
  the entry. Two processes that prepare at once both write whole files; the last rename wins.
- **A corrupt or mismatching entry is ignored** (unreadable, wrong format, a module missing,
  a shape or dtype that does not fit the model) and prepared and written again.

Only local model folders are cached (a Hub id's files live in the Hugging Face cache, whose
paths this module does not hash). Env ``MUSICGEN_PREPARED_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger("restoration.generation")

CACHE_ENV = "MUSICGEN_PREPARED_CACHE"
#: Bump when the stored layout or the rounding of :func:`restoration.decoding.int8_rows` changes.
FORMAT = 1
#: Entries kept (other models, scheme or torch versions); older ones are deleted when one is written.
MAX_ENTRIES = 3
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")

__all__ = ["CACHE_ENV", "cache_key", "enabled", "load_int8", "store_int8"]


def enabled() -> bool:
    """False when env ``MUSICGEN_PREPARED_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get(CACHE_ENV, "").strip().lower() not in ("0", "off", "false", "no")


def cache_folder() -> Path:
    """``<data dir>/prepared`` (created when first written)."""
    from ..paths import data_dir

    return data_dir() / "prepared"


def model_files(folder: Path) -> list[Path]:
    """The files that define a saved model: config, generation config, weights (and shards)."""
    files = [folder / name for name in _MODEL_FILES if (folder / name).is_file()]
    files += sorted(p for p in folder.glob("model-*.safetensors") if p.is_file())
    return files


def cache_key(folder, *, scheme: str) -> str | None:
    """The entry's key for a model folder: SHA-256 over its files' digests, torch, the scheme and the format.

    None when ``folder`` is not a folder with a weights file.
    """
    import hashlib

    import torch

    folder = Path(folder)
    files = model_files(folder) if folder.is_dir() else []
    if not any(p.name.endswith((".safetensors", ".bin")) for p in files):
        return None
    memo = _HashMemo(cache_folder() / "file-hashes.json")
    parts = [f"format={FORMAT}", f"torch={torch.__version__}", f"scheme={scheme}"]
    parts += [f"{p.name}={memo.sha256(p)}" for p in files]
    memo.save()
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def entry_path(key: str) -> Path:
    return cache_folder() / f"musicgen-int8-{key[:32]}.pt"


def load_int8(key: str, expected: dict) -> dict | None:
    """The stored ``{module name: (int8 rows, scales)}`` for ``key``, or None (missing, corrupt, mismatching).

    ``expected`` maps each module name to its weight's shape ``(out, in)``: an entry must
    hold exactly those names, int8 rows of those shapes and one float64 scale per row.
    """
    import torch

    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            raise ValueError("another format or key")
        weights = data["weights"]
        if set(weights) != set(expected):
            raise ValueError("modules differ from the model's")
        for name, shape in expected.items():
            ints, scales = weights[name]
            if ints.dtype != torch.int8 or tuple(ints.shape) != tuple(shape):
                raise ValueError(f"{name}: int8 rows of shape {tuple(ints.shape)}, expected {tuple(shape)}")
            if scales.dtype != torch.float64 or tuple(scales.shape) != (shape[0],):
                raise ValueError(f"{name}: scales of shape {tuple(scales.shape)}")
        return {name: (ints, scales) for name, (ints, scales) in weights.items()}
    except Exception as exc:  # a torn, truncated or foreign file: prepare again and overwrite it
        logger.warning("ignoring the prepared MusicGen weights in %s (%s); preparing them again", path.name, exc)
        return None


def store_int8(key: str, weights: dict) -> Path | None:
    """Write ``{module name: (int8 rows, scales)}`` for ``key`` atomically; the path, or None if it failed."""
    import torch

    folder = cache_folder()
    path = entry_path(key)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "key": key,
                   "weights": {name: (ints.contiguous(), scales.contiguous()) for name, (ints, scales) in weights.items()}}
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(handle, "wb") as out:
            torch.save(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
        _prune(folder, keep=path)
        return path
    except OSError as exc:  # a read-only or full disk: the cache is an optimisation, never a failure
        logger.warning("could not keep the prepared MusicGen weights in %s: %s", folder, exc)
        return None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _prune(folder: Path, *, keep: Path) -> None:
    """Delete all but the :data:`MAX_ENTRIES` newest entries (``keep``, just written, always stays)."""
    entries = sorted(folder.glob("musicgen-int8-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in entries if p != keep][MAX_ENTRIES - 1 :]:
        old.unlink(missing_ok=True)


class _HashMemo:
    """File digests remembered by (size, mtime_ns, inode), in a small JSON file written atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.changed = False
        try:
            self.entries = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}

    def sha256(self, file: Path) -> str:
        from ..hashing import file_sha256

        stat = file.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        name = str(file.resolve())
        known = self.entries.get(name)
        if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
            return known["sha256"]
        digest = file_sha256(file)
        self.entries[name] = {"stamp": stamp, "sha256": digest}
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        self.entries = {name: entry for name, entry in self.entries.items() if Path(name).exists()}
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".file-hashes.", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(self.entries, out, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            logger.warning("could not remember model file digests in %s: %s", self.path, exc)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

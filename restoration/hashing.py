"""SHA-256 digests, as lowercase hex: of a file's bytes, and of a text's UTF-8 bytes.

A run's cache key (:meth:`restoration.app.requests.RunRequest.key`), an upload's identity and
a listening stimulus's checksum are all these digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK_BYTES = 1 << 20


def file_sha256(path) -> str:
    """The SHA-256 of the file at ``path``, read in 1 MiB blocks (64 hex digits)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """The SHA-256 of ``text`` encoded as UTF-8 (64 hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""Where writable data lives.

``RESTORATION_DATA_DIR`` if set; else ``/data`` when it exists (Hugging Face Spaces'
persistent storage, the only place that survives a restart); else ``./data``.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The writable data folder (created if missing)."""
    env = os.environ.get("RESTORATION_DATA_DIR")
    if env:
        path = Path(env)
    elif Path("/data").is_dir() and os.access("/data", os.W_OK):
        path = Path("/data/restoration")
    else:
        path = Path.cwd() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path

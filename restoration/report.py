"""The result of one comparison, :class:`Report`: the versions, their metrics and how they were made.

Audio is float32 ``(channels, frames)`` at ``sample_rate``, every version at the input's rate,
channel layout and length. :func:`restoration.outputs.write_report` writes a report to a folder;
:meth:`Report.summary` is its ``report.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import LoudnessMatch
from .versions import INPUT


@dataclass
class Report:
    """Everything one comparison produced. Audio is float32 ``(channels, frames)`` at ``sample_rate``.

    ``source`` says where the input came from: ``{"kind": "prompt", "prompt", "seed", "model"}``
    for a generated clip (``model`` as :func:`restoration.pipeline.public_model_name` gives it) or
    ``{"kind": "file", "file": <file name>}``.
    """

    sample_rate: int
    versions: dict[str, np.ndarray]
    residual: np.ndarray | None
    listening: dict[str, np.ndarray]
    loudness: dict[str, LoudnessMatch]
    metrics: dict[str, dict]
    source: dict
    settings: dict
    timings_s: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)  # e.g. a helper process's peak RSS in MB

    def summary(self) -> dict:
        """The JSON-ready part of the report (no audio)."""
        return {
            "source": self.source,
            "sample_rate": self.sample_rate,
            "channels": int(self.versions[INPUT].shape[0]),
            "frames": int(self.versions[INPUT].shape[-1]),
            "duration_s": self.versions[INPUT].shape[-1] / self.sample_rate,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "unavailable": self.unavailable,
            "loudness_matching": {k: asdict(v) for k, v in self.loudness.items()},
            **({"resources": self.resources} if self.resources else {}),
        }

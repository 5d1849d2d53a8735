"""The app's run requests: widget values → a validated, hashable :class:`RunRequest`.

:func:`prompt_request` ("Generate & compare") and :func:`restore_request` ("Restore your own
audio") raise :class:`~restoration.errors.BadInputError` with the message the user sees.
The Demucs, gating and metric settings come from
:func:`restoration.settings.restoration_settings`, the builder the command line uses too.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..hashing import file_sha256, text_sha256
from ..settings import (STEMS, DemucsSettings, GatingSettings, GenerationSettings, MetricSettings,
                        generation_settings, parse_number, restoration_settings, validate_prompt)

__all__ = ["CACHE_VERSION", "MAX_SEED", "STEMS", "RunRequest", "max_upload_mb", "prompt_request", "resolve_seed",
           "restore_request"]

#: Bump when the layout of a run folder or the meaning of a setting changes: old runs stop matching.
CACHE_VERSION = 1
MAX_SEED = 2**31 - 1
DEFAULT_MAX_UPLOAD_MB = 50.0


def max_upload_mb() -> float:
    """The largest accepted upload in MB: env ``RESTORATION_MAX_UPLOAD_MB``, default 50."""
    raw = os.environ.get("RESTORATION_MAX_UPLOAD_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_UPLOAD_MB
    try:
        value = float(raw)
    except ValueError:
        raise BadInputError(f"RESTORATION_MAX_UPLOAD_MB must be a number of MB, got {raw!r}") from None
    return value



@dataclass(frozen=True)
class RunRequest:
    """One comparison to run: a prompt to generate from, or an uploaded file to restore.

    Everything that changes the result is in :meth:`identity`, and so in :meth:`key`:
    the prompt or the file's SHA-256, every setting, and the models that will be used.
    """

    kind: str  # "prompt" or "file"
    demucs: DemucsSettings
    gating: GatingSettings
    metrics: MetricSettings
    prompt: str | None = None
    generation: GenerationSettings | None = None
    audio_path: str | None = None
    audio_sha256: str | None = None
    audio_name: str | None = None

    def identity(self) -> dict:
        """The JSON-ready description the cache key is the hash of."""
        from .. import generation as gen
        from .. import separation

        ident: dict[str, Any] = {
            "cache_version": CACHE_VERSION,
            "kind": self.kind,
            "demucs": asdict(self.demucs),
            "demucs_model": separation.model_name(),
            "demucs_repo": str(separation.model_repo() or ""),
            "gating": asdict(self.gating),
            "metrics": asdict(self.metrics),
        }
        if self.kind == "prompt":
            ident["prompt"] = self.prompt
            ident["generation"] = asdict(self.generation)
            ident["musicgen_model"] = gen.current_model_id()
        else:
            ident["audio_sha256"] = self.audio_sha256
        return ident

    def key(self) -> str:
        """A 20-hex-digit hash of :meth:`identity`: the name of the run folder."""
        return text_sha256(json.dumps(self.identity(), sort_keys=True, default=str))[:20]


def resolve_seed(seed) -> int:
    """The seed to use: ``seed`` itself when ≥ 0; a fresh random one for ``None`` or a negative value."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return random.SystemRandom().randrange(0, MAX_SEED)
    value = parse_number(seed, "seed", kind=int)
    if value < 0:
        return random.SystemRandom().randrange(0, MAX_SEED)
    if value > MAX_SEED:
        raise BadInputError(f"seed must be at most {MAX_SEED}, got {value}")
    return value


def _restoration(*, demucs_shifts=0, demucs_overlap=0.25, gains=None, gating="nonstationary", gating_strength=1.0,
                 gating_threshold=None, hber_cutoff_hz=8000.0) -> tuple[DemucsSettings, GatingSettings, MetricSettings]:
    """The Advanced widgets' values as settings (``gains``: stem → linear gain; a ``gating_threshold``
    of 0 or None keeps noisereduce's default for the mode)."""
    blank = gating_threshold is None or (isinstance(gating_threshold, str) and not gating_threshold.strip())
    threshold = None if blank else (parse_number(gating_threshold, "gating threshold") or None)
    return restoration_settings(shifts=demucs_shifts, overlap=demucs_overlap, stem_gains=gains, gating=gating,
                                gating_strength=gating_strength, gating_threshold_std=threshold,
                                hber_cutoff_hz=hber_cutoff_hz)


def prompt_request(
    prompt, *, duration, seed, guidance=3.0, temperature=1.0, top_k=250, mode="exact", **restoration
) -> RunRequest:
    """Validate the "Generate & compare" widgets; ``seed`` < 0 or empty draws a random seed."""
    from .. import generation as gen

    text = validate_prompt(prompt)
    settings = generation_settings(duration_s=duration, seed=resolve_seed(seed), guidance_scale=guidance,
                                   temperature=temperature, top_k=top_k, mode=gen.resolve_mode(mode or None))
    demucs, gating, metrics = _restoration(**restoration)
    return RunRequest(kind="prompt", prompt=text, generation=settings, demucs=demucs, gating=gating, metrics=metrics)


def restore_request(audio_path, **restoration) -> RunRequest:
    """Validate an uploaded or recorded file (present, not empty, under the size limit) and the widgets."""
    if audio_path is None or (isinstance(audio_path, str) and not audio_path.strip()):
        raise BadInputError("no audio: upload a file (wav, flac, ogg or mp3) or record one")
    path = Path(audio_path)
    if not path.is_file():
        raise BadInputError("the uploaded audio did not reach the server; please upload it again")
    size_mb = path.stat().st_size / 1e6
    limit = max_upload_mb()
    if size_mb > limit:
        raise BadInputError(
            f"the file is too large: {size_mb:.1f} MB, at most {limit:g} MB are accepted (RESTORATION_MAX_UPLOAD_MB)"
        )
    if size_mb == 0:
        raise BadInputError("the file is empty: it holds no audio")
    demucs, gating, metrics = _restoration(**restoration)
    return RunRequest(
        kind="file", audio_path=str(path), audio_sha256=file_sha256(path), audio_name=path.name,
        demucs=demucs, gating=gating, metrics=metrics,
    )

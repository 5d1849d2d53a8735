"""Zero-shot restoration with Demucs: separate into stems, sum the stems back.

The stems of a source-separation model do not sum exactly to the mixture (demucs #587).
What no stem holds — the *residual* — is what this restoration removes::

    restored = Σ_k gain_k · stem_k          residual = input − restored

Public surface
--------------
:func:`load_demucs`
    The model named by ``DEMUCS_MODEL`` (default ``htdemucs``), from the folder named by
    ``DEMUCS_REPO`` if set, loaded once per process; any failure is one
    :class:`~restoration.errors.ModelUnavailableError` whose message says how to fix it.
:func:`restore`
    Separate one clip and sum its stems back; returns a :class:`DemucsResult` at the
    input's rate, channel layout and length.
:func:`separate`
    The layer below :func:`restore`: demucs's ``apply_model`` on a normalized tensor, with
    shifts drawn from a private seeded generator, progress and cancellation per chunk.
:func:`model_status`
    What a ``doctor`` command prints: which model, where from, whether its weights are on
    this disk — found without downloading anything.

Demucs models run at 44.1 kHz stereo; :func:`restore` converts any input to the model's
rate and layout, and everything it returns back to the input's.
"""

from __future__ import annotations

import os
import random
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import convert_audio, convert_channels, fit_length, resample, validate_audio
from .device import pick_device
from .errors import BadInputError, CancelledError, ModelUnavailableError
from .settings import DemucsSettings

ENV_MODEL = "DEMUCS_MODEL"
ENV_REPO = "DEMUCS_REPO"
DEFAULT_MODEL = "htdemucs"
#: demucs's own random test model: built in code, no weights to load.
UNITTEST_MODEL = "demucs_unittest"
#: The shift trick moves the input by up to half a second (demucs's ``apply_model``).
MAX_SHIFT_S = 0.5
#: Added to the mixture's standard deviation before dividing by it (demucs's ``separate``).
NORM_EPS = 1e-8

_CACHE: dict[tuple[str, str | None, str], object] = {}
_CACHE_LOCK = threading.Lock()
_RUN_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUN_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True, eq=False)
class DemucsResult:
    """The output of :func:`restore`.

    Every array is float32 ``(channels, frames)`` at the input's sample rate, with the
    input's channel count and exact length.

    Attributes
    ----------
    restored : np.ndarray
        Σ_k gain_k · stem_k, the gains from ``DemucsSettings.gain(stem)`` (default 1).
    residual : np.ndarray
        input − restored: what no (gained) stem holds, i.e. what restoration removed.
    stems : dict[str, np.ndarray]
        Each stem as the model separated it, **before** its gain, in the model's order.
    model_name : str
        The model's name (``DEMUCS_MODEL``), or its class name for an injected model.
    model_sample_rate : int
        The rate the model separated at, in Hz (44 100 for every Demucs release).
    sample_rate : int
        The rate of every array above, in Hz: the input's.
    """

    restored: np.ndarray
    residual: np.ndarray
    stems: dict
    model_name: str
    model_sample_rate: int
    sample_rate: int


# ---------------------------------------------------------------------------------------------
# Which model, and loading it
# ---------------------------------------------------------------------------------------------


def model_name() -> str:
    """The model to use: env ``DEMUCS_MODEL``, default ``htdemucs``."""
    return os.environ.get(ENV_MODEL, "").strip() or DEFAULT_MODEL


def model_repo() -> Path | None:
    """The local model folder named by env ``DEMUCS_REPO`` (demucs's ``--repo``), or None."""
    raw = os.environ.get(ENV_REPO, "").strip()
    return Path(raw).expanduser() if raw else None


def fix_text(name: str | None = None) -> str:
    """How to make model ``name`` loadable without a network, in one sentence."""
    name = name or model_name()
    return (
        f"while online, run `python -m demucs -n {name} some.wav` once to fill the model cache; "
        f"or put {name}.th (or {name}.yaml and the .th files it lists) in a folder and set "
        f"{ENV_REPO}=that/folder; {ENV_MODEL} picks the model (default {DEFAULT_MODEL})"
    )


def known_models() -> list[str]:
    """The model names demucs knows without a repo folder (its ``remote/*.yaml`` bags)."""
    from demucs.pretrained import REMOTE_ROOT

    return sorted(path.stem for path in REMOTE_ROOT.glob("*.yaml"))


def _unavailable(name: str, repo: Path | None, reason: str) -> ModelUnavailableError:
    where = f" from {ENV_REPO}={repo}" if repo is not None else ""
    reason = " ".join(str(reason).split())[:300].rstrip(".") or "unknown error"
    if repo is None and name != UNITTEST_MODEL and not name.startswith("hf://"):
        try:
            from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

            names = known_models()
            signatures = set(_parse_remote_files(REMOTE_ROOT / "files.txt"))
        except Exception:  # the hint is optional; the error itself must still be raised
            names, signatures = [], set()
        if names and name not in names and name not in signatures:
            reason += f" ({name!r} is not one of demucs's models: {', '.join(names)}, {UNITTEST_MODEL})"
    return ModelUnavailableError(
        f"Demucs model {name!r} ({ENV_MODEL}){where} cannot be loaded: {reason}. Fix: {fix_text(name)}."
    )


def _resolve(name: str | None, repo) -> tuple[str, Path | None]:
    name = (name or "").strip() or model_name()
    repo = model_repo() if repo is None else Path(repo).expanduser()
    return name, repo


def load_demucs(name: str | None = None, *, repo=None, device: str | None = None):
    """Load a Demucs model once per process and return it in eval mode.

    Parameters
    ----------
    name : str or None
        Model name or signature; None reads env ``DEMUCS_MODEL`` (default ``htdemucs``).
        ``demucs_unittest`` is demucs's random test model and needs no weights.
    repo : str, Path or None
        A local folder of model files in demucs's ``--repo`` layout (``NAME.th``, or
        ``NAME.yaml`` listing ``SIG.th`` files); None reads env ``DEMUCS_REPO``, and when
        that is unset too, demucs looks in its caches (Hugging Face, then torch hub) and
        downloads what is missing. Offline, set ``HF_HUB_OFFLINE=1``: without it the Hub
        client retries for about 25 s before the failure is reported (2 s with it).
    device : str or None
        ``"cpu"``, ``"cuda"``…; None picks CUDA when available.

    Returns
    -------
    torch.nn.Module
        A demucs model or ``BagOfModels`` with ``samplerate`` (Hz), ``audio_channels`` and
        ``sources``. The same object is returned for the same (name, repo, device), from
        any thread.

    Raises
    ------
    ModelUnavailableError
        For any loading failure (no network, unknown name, missing or bad repo folder,
        corrupt file), with one message naming the model, ``DEMUCS_MODEL`` /
        ``DEMUCS_REPO`` and the fix.
    """
    name, repo = _resolve(name, repo)
    device = device or pick_device()
    key = (name, str(repo.resolve()) if repo is not None else None, str(device))
    model = _CACHE.get(key)
    if model is not None:
        return model
    with _CACHE_LOCK:  # one lock for all keys: a second caller waits instead of loading twice
        model = _CACHE.get(key)
        if model is None:
            model = _load(name, repo, device)
            _CACHE[key] = model
    return model


def _load(name: str, repo: Path | None, device: str):
    if repo is not None and not repo.is_dir():
        # demucs's get_model would print a message and call sys.exit (utils.fatal).
        raise _unavailable(name, repo, f"{repo} is not a folder")
    try:
        from demucs.pretrained import get_model

        model = get_model(name, repo=repo)
        model.to(device)
    except (Exception, SystemExit) as exc:
        # demucs raises ModelLoadingError, urllib's URLError/HTTPError, OSError, RuntimeError
        # (hash mismatch), unpickling errors for a corrupt file, and SystemExit (utils.fatal).
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _unavailable(name, repo, f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__) from exc
    model.eval()
    return model


def clear_model_cache() -> None:
    """Forget every loaded model (the next call loads again, from ``DEMUCS_MODEL`` / ``DEMUCS_REPO``)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# ---------------------------------------------------------------------------------------------
# What is on disk (no download)
# ---------------------------------------------------------------------------------------------


def model_status(name: str | None = None, *, repo=None) -> dict:
    """Say whether the configured model can be loaded from this disk, downloading nothing.

    Looks where :func:`load_demucs` would: the ``DEMUCS_REPO`` folder when set; otherwise the
    Hugging Face cache (``adefossez/HTDemucs``-style repos, ``NAME.yaml`` + ``SIG.safetensors``),
    then torch hub's cache (``<torch hub dir>/checkpoints/SIG-CHECKSUM.th``, the files that
    demucs's ``remote/files.txt`` and ``remote/NAME.yaml`` name).

    Returns
    -------
    dict
        ``model``, ``repo`` (str or None), ``env`` (the two variables as set),
        ``available`` (bool: every file found, or nothing to load), ``source`` (where the
        files were found, or None), ``files`` (paths found), ``missing`` (files not found),
        ``detail`` (one sentence), ``loaded`` (already in this process's cache) and ``fix``.
    """
    name, repo = _resolve(name, repo)
    status = {
        "model": name,
        "repo": str(repo) if repo is not None else None,
        "env": {ENV_MODEL: os.environ.get(ENV_MODEL), ENV_REPO: os.environ.get(ENV_REPO)},
        "available": False,
        "source": None,
        "files": [],
        "missing": [],
        "detail": "",
        "loaded": any(key[0] == name and key[1] == (str(repo.resolve()) if repo else None) for key in list(_CACHE)),
        "fix": fix_text(name),
    }
    if name == UNITTEST_MODEL:
        status.update(available=True, source="built in", detail="demucs's random test model: no weights needed")
    elif repo is not None:
        status.update(_local_repo_status(name, repo))
    else:
        hub = _hf_cache_status(name)
        status.update(hub if hub.get("available") or name.startswith("hf://") else _torch_hub_status(name, hub))
    return status


def _local_repo_status(name: str, repo: Path) -> dict:
    if not repo.is_dir():
        return {"detail": f"{ENV_REPO}={repo} is not a folder", "missing": [str(repo)]}
    singles = {}
    for file in repo.iterdir():  # demucs's LocalRepo: 'SIG.th' or 'SIG-CHECKSUM.th'
        if file.suffix == ".th":
            singles.setdefault(file.stem.rsplit("-", 1)[0] if "-" in file.stem else file.stem, file)
    if name in singles:
        return {"available": True, "source": "local repo", "files": [str(singles[name])],
                "detail": f"found {singles[name].name} in {repo}"}
    bag = repo / f"{name}.yaml"
    if not bag.is_file():
        return {"missing": [f"{name}.th or {name}.yaml"], "detail": f"neither {name}.th nor {name}.yaml is in {repo}"}
    sigs = _bag_signatures(bag)
    if sigs is None:
        return {"missing": [], "detail": f"{bag} is not a demucs bag file (a YAML list under 'models')"}
    found = [str(singles[sig]) for sig in sigs if sig in singles]
    missing = [f"{sig}.th" for sig in sigs if sig not in singles]
    return {"available": not missing, "source": "local repo" if not missing else None,
            "files": [str(bag), *found], "missing": missing,
            "detail": f"{bag.name} lists {len(sigs)} model(s), {len(missing)} missing in {repo}"}


def _bag_signatures(path: Path) -> list[str] | None:
    import yaml

    try:
        bag = yaml.safe_load(Path(path).read_text())
        sigs = bag["models"]
    except Exception:  # unreadable, not YAML, or no 'models' key: demucs could not load it either
        return None
    return [str(sig) for sig in sigs] if isinstance(sigs, list) else None


def _hf_cache_status(name: str) -> dict:
    try:
        from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
        from huggingface_hub import try_to_load_from_cache
    except ImportError as exc:
        return {"detail": f"cannot look into the Hugging Face cache: {exc}"}
    bare = name[len("hf://"):] if name.startswith("hf://") else name
    namespace, bare = bare.split("/", 1) if "/" in bare else (DEFAULT_NAMESPACE, bare)
    repo_id = f"{namespace}/{hf_repo_name(bare)}"
    yaml_path = try_to_load_from_cache(repo_id, f"{bare}.yaml")
    if not isinstance(yaml_path, str):
        return {"missing": [f"{repo_id}/{bare}.yaml"], "detail": f"{repo_id} is not in the Hugging Face cache"}
    sigs = _bag_signatures(Path(yaml_path)) or []
    files, missing = [yaml_path], []
    for sig in sigs:
        path = try_to_load_from_cache(repo_id, f"{sig}.safetensors")
        (files.append(path) if isinstance(path, str) else missing.append(f"{repo_id}/{sig}.safetensors"))
    ok = bool(sigs) and not missing
    return {"available": ok, "source": "Hugging Face cache" if ok else None, "files": files, "missing": missing,
            "detail": f"{repo_id}: {len(sigs)} model(s), {len(missing)} missing in the Hugging Face cache"}


def _torch_hub_status(name: str, hub: dict) -> dict:
    import torch
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")
    if name in urls:
        sigs = [name]
    elif (REMOTE_ROOT / f"{name}.yaml").is_file():
        sigs = _bag_signatures(REMOTE_ROOT / f"{name}.yaml") or []
    else:
        return {"missing": hub.get("missing", []),
                "detail": f"{name!r} is not in the Hugging Face cache and not a model demucs knows by name"}
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    files, missing = [], []
    for sig in sigs:
        filename = urls[sig].rsplit("/", 1)[-1] if sig in urls else f"{sig}-*.th"
        path = checkpoints / filename
        (files.append(str(path)) if path.is_file() else missing.append(str(path)))
    ok = bool(sigs) and not missing
    return {"available": ok, "source": "torch hub cache" if ok else None, "files": files,
            "missing": hub.get("missing", []) + missing,
            "detail": f"{len(sigs)} model file(s), {len(missing)} missing in {checkpoints} "
                      "(and not in the Hugging Face cache)" if not ok else f"found in {checkpoints}"}


# ---------------------------------------------------------------------------------------------
# Separation
# ---------------------------------------------------------------------------------------------


def _submodels(model) -> list:
    return list(model.models) if hasattr(model, "models") else [model]


def _max_segment_s(model) -> float:
    """The longest chunk (s) the model accepts: an HT model's training segment, else ∞."""
    from demucs.htdemucs import HTDemucs

    limits = [float(sub.segment) for sub in _submodels(model) if isinstance(sub, HTDemucs)]
    return min(limits) if limits else float("inf")


def _chunk_count(model, length: int, *, overlap: float, segment_s: float | None) -> int:
    """How many chunks demucs's ``apply_model`` runs for ``length`` frames, all sub-models."""
    total = 0
    for sub in _submodels(model):
        segment = segment_s if segment_s is not None else sub.segment
        stride = int((1 - overlap) * int(sub.samplerate * segment))
        total += len(range(0, length, stride))
    return total


def _run_lock(model) -> threading.Lock:
    with _RUN_LOCKS_GUARD:
        lock = _RUN_LOCKS.get(model)
        if lock is None:
            lock = _RUN_LOCKS[model] = threading.Lock()
        return lock


def _check_stop(stop_event) -> None:
    if stop_event is not None and stop_event.is_set():
        raise CancelledError("separation cancelled")


def separate(
    model,
    mix,
    *,
    shifts: int = 0,
    overlap: float = 0.25,
    seed: int = 0,
    segment_s: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    stop_event: threading.Event | None = None,
):
    """Run demucs's ``apply_model`` on a normalized mixture, with seeded shifts.

    Equals ``random.seed(seed); demucs.apply.apply_model(model, mix, shifts=shifts, ...)``
    without touching Python's global random state: the shift trick (pad by 0.5 s, shift by a
    random offset, separate, shift back, average over ``shifts`` passes) is done here with a
    private ``random.Random(seed)``. For a bag of models, as in demucs, every sub-model draws
    its own shifts (in the bag's order) and the sub-models' estimates are averaged with the
    bag's per-source weights.

    Parameters
    ----------
    model : torch.nn.Module
        A demucs model or bag, in eval mode.
    mix : torch.Tensor
        ``(1, channels, frames)`` at ``model.samplerate``, already normalized.
    shifts : int
        Random-shift passes (0: one pass, no shift).
    overlap : float
        Overlap between chunks, as a fraction of the segment (0–1).
    seed : int
        Seed of the shift offsets.
    segment_s : float or None
        Chunk length in seconds; None uses the model's own ``segment``.
    on_progress : callable or None
        Called with the fraction (0–1) of chunks done.
    stop_event : threading.Event or None
        Checked before every chunk; when set, :class:`~restoration.errors.CancelledError` is raised.

    Returns
    -------
    torch.Tensor
        ``(1, sources, channels, frames)``, still normalized.
    """
    import torch
    from demucs.apply import BagOfModels, TensorChunk, apply_model

    device = next(iter(model.parameters())).device
    length = mix.shape[-1]
    rng = random.Random(int(seed))
    # (sub-model, its per-source weights or None, [(tensor or chunk, frames to drop at its start)]).
    # Like demucs, a bag runs each sub-model with its own shift draws, in the bag's order.
    members = list(zip(model.models, model.weights)) if isinstance(model, BagOfModels) else [(model, None)]
    plans = []
    for sub, weights in members:
        passes = []
        if shifts:
            max_shift = int(MAX_SHIFT_S * sub.samplerate)
            padded = TensorChunk(mix).padded(length + 2 * max_shift)
            for _ in range(int(shifts)):
                offset = rng.randint(0, max_shift)  # the same draw as demucs's apply_model
                passes.append((TensorChunk(padded, offset, length + max_shift - offset), max_shift - offset))
        else:
            passes.append((mix, 0))
        plans.append((sub, weights, passes))
    total = sum(_chunk_count(sub, chunk.shape[-1], overlap=overlap, segment_s=segment_s)
                for sub, _, passes in plans for chunk, _ in passes)
    done = 0

    def callback(info: dict) -> None:
        nonlocal done
        if info.get("state") == "start":
            _check_stop(stop_event)
        elif info.get("state") == "end":
            done += 1
            if on_progress is not None:
                on_progress(min(done / max(total, 1), 1.0))

    estimates = None
    totals = None
    for sub, weights, passes in plans:
        out = None
        for chunk, drop in passes:
            res = apply_model(sub, chunk, shifts=0, split=True, overlap=overlap, segment=segment_s,
                              device=device, callback=callback)[..., drop:]
            out = res if out is None else out + res
        assert out is not None and out.shape[-1] == length, (out.shape, length)
        if len(passes) > 1:
            out = out / len(passes)
        if weights is None:
            return out
        weight = torch.tensor(weights, dtype=out.dtype, device=out.device)[None, :, None, None]
        estimates = out * weight if estimates is None else estimates + out * weight
        totals = weight if totals is None else totals + weight
    return estimates / totals


def restore(
    audio: np.ndarray,
    sample_rate: int,
    *,
    settings: DemucsSettings = DemucsSettings(),
    segment_s: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    stop_event: threading.Event | None = None,
    model=None,
    model_label: str | None = None,
) -> DemucsResult:
    """Restore a clip zero-shot: separate it with Demucs and sum the stems back.

    1. Check the input and convert it to the model's rate (44.1 kHz) and channel layout
       (stereo): mono is duplicated; more than two channels are down-mixed to mono first.
    2. Normalize as demucs's ``separate`` does — subtract the mean and divide by the
       standard deviation (+1e-8) of the mono mix — separate with ``apply_model``
       (``settings.shifts``, ``settings.overlap``, seeded by ``settings.seed``), and undo
       the normalization on every stem: ``· std + mean / S`` for S stems. (demucs adds the
       whole mean to each stem, so four stems would sum to mix + 3·mean and carry that DC
       into ``restored`` and ``residual``.) A separator whose stems sum to the mixture
       therefore gives back the input, DC offset included.
    3. Convert every stem back to the input's layout and rate and trim/pad it to the input's
       length; sum them with ``settings.gain(stem)``.

    Channel layouts: a stereo input stays stereo; a mono input gets the mean of the two
    output channels. An input with more than two channels is separated as its mono down-mix
    and each stem is copied to every channel, so everything that differs between channels
    (the spatial image) lands in the residual.

    Parameters
    ----------
    audio : np.ndarray
        ``(channels, frames)`` or ``(frames,)``, float or int samples, any rate, 1–8 channels.
        It is never modified.
    sample_rate : int
        Rate of ``audio`` in Hz.
    settings : DemucsSettings
        Shifts, overlap, seed and per-stem gains.
    segment_s : float or None
        Chunk length in seconds; None (the default and the recommended value) uses the
        model's training segment (7.8 s for htdemucs). HT models pad every chunk to their
        training segment inside ``forward``, so a shorter one costs *more* and changes the
        answer; it must not exceed the training segment.
    on_progress : callable or None
        Called with the fraction done, 0–1 (0 before separating, 1 at the end).
    stop_event : threading.Event or None
        Checked before separating, before every chunk and after separating; when set,
        :class:`~restoration.errors.CancelledError` is raised.
    model : torch.nn.Module or None
        A demucs model to use instead of :func:`load_demucs` (benchmarks, tests).
    model_label : str or None
        The ``model_name`` recorded for an injected ``model`` (default: its class name).

    Returns
    -------
    DemucsResult
        ``restored``, ``residual`` and ``stems`` as float32 ``(channels, frames)`` at the
        input's rate, layout and length.

    Raises
    ------
    BadInputError
        Empty, NaN/inf, too many channels, too long, a bad rate, a gain for a stem the model
        does not have, or a bad ``segment_s``.
    ModelUnavailableError
        The model cannot be loaded (see :func:`load_demucs`).
    CancelledError
        ``stop_event`` was set.
    """
    import torch

    audio = validate_audio(audio, sample_rate)
    sample_rate = int(sample_rate)
    channels, frames = audio.shape
    _check_stop(stop_event)
    if model is None:
        label = model_name()
        model = load_demucs()
    else:
        label = model_label or type(model).__name__
    sources = list(model.sources)
    unknown = sorted({stem for stem, _ in settings.stem_gains} - set(sources))
    if unknown:
        raise BadInputError(f"stem gains name {unknown}, but model {label!r} has the stems {sources}")
    if segment_s is not None:
        limit = _max_segment_s(model)
        if not (0.0 < float(segment_s) <= limit):
            raise BadInputError(
                f"segment_s must be > 0 s and at most the model's training segment ({limit:g} s), got {segment_s}"
            )
        segment_s = float(segment_s)
    model_rate, model_channels = int(model.samplerate), int(model.audio_channels)

    # A fresh array: torch.from_numpy shares memory, and the caller's array must stay as it was.
    converted = convert_audio(audio, orig_rate=sample_rate, target_rate=model_rate, channels=model_channels)
    wav = torch.from_numpy(np.array(converted, dtype=np.float32, copy=True))
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + NORM_EPS
    if on_progress is not None:
        on_progress(0.0)
    # One separation at a time per model, so memory and CPU threads stay bounded; a caller
    # waiting for its turn still honours stop_event.
    lock = _run_lock(model)
    while not lock.acquire(timeout=0.1):
        _check_stop(stop_event)
    try:
        with torch.no_grad():
            out = separate(model, ((wav - mean) / std)[None], shifts=int(settings.shifts),
                           overlap=float(settings.overlap), seed=int(settings.seed), segment_s=segment_s,
                           on_progress=on_progress, stop_event=stop_event)
    finally:
        lock.release()
    _check_stop(stop_event)
    # demucs's ``separate`` adds the mixture's mean back to *every* stem, so S stems sum to
    # mix + (S − 1)·mean; each stem gets mean / S here, and the stems sum to the mixture's level.
    estimates = (out[0] * std + mean / len(sources)).to("cpu", torch.float32).numpy()  # (sources, channels, frames)

    stems: dict[str, np.ndarray] = {}
    restored = np.zeros((channels, frames), dtype=np.float32)
    for name, stem in zip(sources, estimates):
        stem = fit_length(resample(convert_channels(stem, channels), orig_rate=model_rate, target_rate=sample_rate),
                          frames)
        stem = np.ascontiguousarray(stem, dtype=np.float32)
        stems[name] = stem
        restored += np.float32(settings.gain(name)) * stem
    residual = audio - restored
    if on_progress is not None:
        on_progress(1.0)
    return DemucsResult(
        restored=restored,
        residual=residual.astype(np.float32, copy=False),
        stems=stems,
        model_name=label,
        model_sample_rate=model_rate,
        sample_rate=sample_rate,
    )

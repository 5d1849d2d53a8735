"""Random-weight Demucs stand-ins, saved the way demucs's ``--repo`` folders hold models.

No machine of this project can download Demucs weights, so tests and benchmarks build
their own models and load them through the real loading path
(``demucs.pretrained.get_model(NAME, repo=folder)``, i.e. ``DEMUCS_REPO`` + ``DEMUCS_MODEL``):

- :func:`build_tiny_demucs_repo` writes a tiny HTDemucs (a few hundred kB) for tests;
- :func:`build_htdemucs_random` builds the full-size ``htdemucs`` architecture (≈ 27 M
  parameters) with random weights, which costs the same compute as the trained model and
  is therefore good for timing — and for nothing else.

A local repo folder holds ``NAME.th`` files, each a ``torch.save`` of
``{"klass": HTDemucs, "args": (), "kwargs": {...}, "state": state_dict}``. demucs reads a
file stem ``SIG-CHECKSUM`` as a signature plus a sha256 prefix, so ``NAME`` must not
contain ``-`` (:func:`save_model_package` checks this).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch

SOURCES = ("drums", "bass", "other", "vocals")
SAMPLE_RATE = 44100
#: htdemucs's training segment: 7.8 s (demucs stores it as a Fraction).
HTDEMUCS_SEGMENT_S = Fraction(39, 5)
#: Arguments of the tiny stand-in. ``depth`` stays at its default of 4: a smaller depth leaves
#: the transformer at a high time-frequency resolution and asks for tens of GB.
TINY_KWARGS = {"channels": 8, "t_layers": 1, "t_hidden_scale": 1.0}


def _htdemucs(kwargs: dict, seed: int):
    from demucs.htdemucs import HTDemucs

    # HTDemucs draws its weights from torch's global generator: seed a fork of it, so that
    # building a stand-in leaves the caller's random state as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = HTDemucs(**kwargs)
    model.eval()
    return model


def save_model_package(model, kwargs: dict, folder, name: str) -> Path:
    """Save ``model`` as ``folder/NAME.th`` in demucs's local-repo package format.

    Parameters
    ----------
    model : torch.nn.Module
        A demucs model built as ``type(model)(**kwargs)``.
    kwargs : dict
        The constructor arguments that rebuild it (demucs's ``load_model`` calls
        ``klass(*args, **kwargs)`` and then loads ``state``).
    folder : str or Path
        The repo folder (created if missing).
    name : str
        The model name users pass as ``DEMUCS_MODEL``; no ``-``, ``/`` or extension.

    Returns
    -------
    Path
        The written ``.th`` file.
    """
    if not name or "-" in name or "/" in name or "\\" in name or name.endswith((".th", ".yaml")):
        raise ValueError(
            f"model name {name!r} is not usable in a demucs repo folder: "
            "demucs reads 'SIG-CHECKSUM' file stems, so use letters, digits and '_' only"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to("cpu").clone() for key, value in model.state_dict().items()}
    package = {"klass": type(model), "args": (), "kwargs": dict(kwargs), "state": state}
    path = folder / f"{name}.th"
    tmp = folder / f".{name}.th.tmp"
    torch.save(package, tmp)
    tmp.replace(path)  # demucs's LocalRepo only scans '*.th', so the temporary file is never seen
    return path


def build_tiny_demucs_repo(
    folder, *, name: str = "tiny_htdemucs", seed: int = 0, segment_s: float = 7.8
) -> Path:
    """Write a tiny random HTDemucs into a demucs repo folder and return the folder.

    The model has htdemucs's interface — sources drums/bass/other/vocals, 44.1 kHz,
    stereo, the 7.8 s training segment every chunk is padded to — with
    ``channels=8, t_layers=1, t_hidden_scale=1.0`` (``depth`` 4). It separates 2 s of
    audio in about a second on 2 CPU cores. Load it with
    ``DEMUCS_REPO=folder DEMUCS_MODEL=name`` or ``demucs.pretrained.get_model(name, repo=folder)``.

    Parameters
    ----------
    folder : str or Path
        Repo folder, created if missing; an existing ``NAME.th`` is replaced.
    name : str
        Model name (file ``NAME.th``).
    seed : int
        Seed of the random weights: the same seed writes the same weights.
    segment_s : float
        Training segment in seconds (the length, in s, every chunk is padded to).

    Returns
    -------
    Path
        ``folder``.
    """
    kwargs = {
        "sources": list(SOURCES),
        "audio_channels": 2,
        "samplerate": SAMPLE_RATE,
        "segment": Fraction(str(segment_s)),
        **TINY_KWARGS,
    }
    save_model_package(_htdemucs(kwargs, seed), kwargs, folder, name)
    return Path(folder)


def build_htdemucs_random(*, seed: int = 0, folder=None, name: str = "htdemucs_random"):
    """The full-size ``htdemucs`` architecture with random weights, for timing.

    ``HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=44100, segment=7.8)``
    with every other argument at its default (≈ 27 M parameters, ≈ 0.1 GB of fp32
    weights). Its compute per chunk equals the trained model's; its stems are meaningless.

    Parameters
    ----------
    seed : int
        Seed of the random weights.
    folder : str, Path or None
        If given, the model is also saved there as ``NAME.th`` (a demucs repo folder).
    name : str
        File name stem used when ``folder`` is given.

    Returns
    -------
    demucs.htdemucs.HTDemucs
        The model, in eval mode, on the CPU.
    """
    kwargs = {"sources": list(SOURCES), "samplerate": SAMPLE_RATE, "segment": HTDEMUCS_SEGMENT_S}
    model = _htdemucs(kwargs, seed)
    if folder is not None:
        save_model_package(model, kwargs, folder, name)
    return model

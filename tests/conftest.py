"""Shared test fixtures.

Nothing here downloads: the Hub is set offline before anything imports huggingface_hub,
and models are random stand-ins built on the fly, then loaded the way users load them.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402


# --------------------------------------------------------------------------- MusicGen


@pytest.fixture(scope="session")
def tiny_musicgen_dir(tmp_path_factory):
    """A tiny random MusicGen (model + processor, < 1 MB) saved with save_pretrained, built once per session."""
    from restoration.standins.musicgen import build_tiny_musicgen

    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny-musicgen", seed=0)


@pytest.fixture
def musicgen_env(tiny_musicgen_dir, monkeypatch):
    """Point ``MUSICGEN_MODEL`` at the tiny model, unset ``MUSICGEN_QUANTIZE``, start with an empty model cache."""
    from restoration import generation

    monkeypatch.setenv("MUSICGEN_MODEL", str(tiny_musicgen_dir))
    monkeypatch.delenv("MUSICGEN_QUANTIZE", raising=False)
    generation.clear_model_cache()
    yield tiny_musicgen_dir
    generation.clear_model_cache()


# --------------------------------------------------------------------------- Demucs


@pytest.fixture(scope="session")
def tiny_demucs_repo(tmp_path_factory):
    """A demucs ``--repo`` folder holding ``tiny_htdemucs.th`` (a tiny random HTDemucs, 1.3 MB), built once per session.

    Its training segment is 1 s instead of htdemucs's 7.8 s: every chunk still goes through the
    HT pad-to-segment path, a clip longer than 1 s (or shifted by up to 0.5 s) spans several
    overlapping chunks, and each chunk costs a seventh of the compute.
    """
    from restoration.standins.demucs import build_tiny_demucs_repo

    return build_tiny_demucs_repo(tmp_path_factory.mktemp("demucs-repo"), name="tiny_htdemucs", seed=0, segment_s=1.0)


@pytest.fixture
def demucs_env(tiny_demucs_repo, monkeypatch):
    """Point ``DEMUCS_REPO`` / ``DEMUCS_MODEL`` at the tiny HTDemucs, start with an empty model cache."""
    from restoration import separation

    monkeypatch.setenv("DEMUCS_REPO", str(tiny_demucs_repo))
    monkeypatch.setenv("DEMUCS_MODEL", "tiny_htdemucs")
    separation.clear_model_cache()
    yield tiny_demucs_repo
    separation.clear_model_cache()


@pytest.fixture
def demucs_unittest_env(monkeypatch):
    """``DEMUCS_MODEL=demucs_unittest`` (demucs's own random test model, no weights), ``DEMUCS_REPO`` unset."""
    from restoration import separation

    monkeypatch.setenv("DEMUCS_MODEL", "demucs_unittest")
    monkeypatch.delenv("DEMUCS_REPO", raising=False)
    separation.clear_model_cache()
    yield "demucs_unittest"
    separation.clear_model_cache()

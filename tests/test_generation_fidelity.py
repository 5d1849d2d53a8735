"""The lean token loop samples what transformers' ``generate`` samples, or steps aside.

The tiny stand-in has a text width (24) other than its decoder width (32), as musicgen-small
(768 and 1024) does, so the prompt passes through ``enc_to_dec_proj`` on both paths. A
checkpoint whose generation config asks for something the loop does not do falls back to
``generate``, which then honours it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from restoration import decoding, generation
from restoration.generation import generate, load_musicgen
from restoration.settings import GenerationSettings


def _settings(**kw) -> GenerationSettings:
    return GenerationSettings(**{"duration_s": 1.0, "seed": 3, **kw})


def _transformers_audio(model_dir, prompt: str, *, seed: int, steps: int) -> np.ndarray:
    """transformers' own ``generate`` with the package's default sampling settings; ``(1, samples)``."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    processor = AutoProcessor.from_pretrained(str(model_dir))
    inputs = processor(text=[prompt], padding=True, return_tensors="pt")
    defaults = GenerationSettings()
    torch.manual_seed(seed)
    with torch.inference_mode():
        audio = model.generate(**inputs, do_sample=True, guidance_scale=defaults.guidance_scale, top_k=defaults.top_k,
                               temperature=defaults.temperature, max_new_tokens=steps)
    return audio[0].numpy()


def test_the_tiny_stand_in_projects_text_to_the_decoder_width(musicgen_env):
    model = load_musicgen().model
    assert model.config.text_encoder.d_model != model.config.decoder.hidden_size
    assert model.enc_to_dec_proj is not None
    assert model.enc_to_dec_proj.weight.shape == (model.config.decoder.hidden_size, model.config.text_encoder.d_model)


def test_lean_loop_equals_generate_through_enc_to_dec_proj(musicgen_env):
    steps = generation.tokens_for_duration(1.0)
    expected = _transformers_audio(musicgen_env, "funky bass line", seed=3, steps=steps)
    bundle = load_musicgen()
    assert bundle.decoder is not None  # the lean loop ran
    audio, _ = generate("funky bass line", settings=_settings())
    np.testing.assert_allclose(audio, expected[:, : audio.shape[1]], atol=1e-5)


@pytest.mark.parametrize(("field", "value"), [("top_p", 0.9), ("repetition_penalty", 1.3), ("eos_token_id", 7),
                                               ("min_p", 0.1), ("no_repeat_ngram_size", 2)])
def test_unsupported_generation_options_are_named(field, value):
    from transformers import GenerationConfig

    plain = GenerationConfig(do_sample=True, top_k=250, guidance_scale=3.0, max_length=1500, pad_token_id=64,
                             bos_token_id=64, decoder_start_token_id=64)
    assert decoding.unsupported_generation_options(plain) == []
    setattr(plain, field, value)
    assert decoding.unsupported_generation_options(plain) == [field]


def _variant(tiny_dir, tmp_path, monkeypatch, **config) -> str:
    """A copy of the tiny model whose generation_config.json also sets ``config``; MUSICGEN_MODEL points at it."""
    folder = tmp_path / "variant"
    shutil.copytree(tiny_dir, folder)
    path = folder / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    monkeypatch.setenv("MUSICGEN_MODEL", str(folder))
    generation.clear_model_cache()
    return folder


@pytest.mark.parametrize("config", [{"top_p": 0.5}, {"repetition_penalty": 1.5}])
def test_a_config_the_loop_cannot_follow_falls_back_to_generate_and_is_honoured(musicgen_env, tmp_path, monkeypatch,
                                                                                 config):
    folder = _variant(musicgen_env, tmp_path, monkeypatch, **config)
    bundle = load_musicgen()
    assert bundle.decoder is None  # transformers' generate, not the lean loop
    steps = generation.tokens_for_duration(1.0)
    expected = _transformers_audio(folder, "funky bass line", seed=3, steps=steps)
    plain = _transformers_audio(musicgen_env, "funky bass line", seed=3, steps=steps)
    audio, _ = generate("funky bass line", settings=_settings())
    np.testing.assert_allclose(audio, expected[:, : audio.shape[1]], atol=1e-5)
    assert np.abs(expected - plain).max() > 1e-3  # the option really changes what is sampled


def test_another_eos_token_falls_back_to_generate(musicgen_env, tmp_path, monkeypatch):
    """The loop never stops early, so a checkpoint with an end-of-sequence token is left to ``generate``."""
    _variant(musicgen_env, tmp_path, monkeypatch, eos_token_id=5)
    bundle = load_musicgen()
    assert bundle.decoder is None
    assert decoding.unsupported_generation_options(bundle.model.generation_config) == ["eos_token_id"]

"""MusicGen generation through the user's path: MUSICGEN_MODEL → from_pretrained → generate.

The model is the tiny random stand-in of ``conftest.tiny_musicgen_dir`` (real transformers
MusicGen code, random weights, random EnCodec codebooks so tokens decode to different audio).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from restoration import errors, generation
from restoration.musicgen import threads as threads_module
from restoration.errors import BadInputError, ModelUnavailableError, RestorationError
from restoration.generation import CancelledError, generate, load_musicgen, model_status, resolve_mode
from restoration.settings import GenerationSettings

SR = 32000


def settings(**kwargs) -> GenerationSettings:
    kwargs.setdefault("duration_s", 1.0)
    return GenerationSettings(**kwargs)


# --------------------------------------------------------------------------- length and format


@pytest.mark.parametrize("duration_s", [1.0, 2.5])
def test_output_is_mono_float32_of_the_requested_duration(musicgen_env, duration_s):
    audio, sample_rate = generate("lofi hip hop with mellow piano", settings=settings(duration_s=duration_s))
    assert sample_rate == SR
    assert audio.dtype == np.float32
    assert audio.ndim == 2 and audio.shape[0] == 1
    assert abs(audio.shape[1] / SR - duration_s) <= 0.02 * duration_s
    assert audio.shape[1] == round(duration_s * SR)  # trimmed exactly, not just within 2 %
    assert np.isfinite(audio).all()
    assert float(np.sqrt(np.mean(audio**2))) > 1e-3  # not silence


@pytest.mark.parametrize(("duration_s", "tokens"), [(1.0, 53), (2.5, 128), (30.0, 1503)])
def test_tokens_cover_the_delay_pattern(duration_s, tokens):
    # 4 codebooks, each delayed one frame more than the previous: 3 tokens give no frame.
    assert generation.tokens_for_duration(duration_s, frame_rate=50, num_codebooks=4) == tokens


# --------------------------------------------------------------------------- seeds and conditioning


def test_same_seed_same_audio_other_seed_or_prompt_other_audio(musicgen_env):
    first, _ = generate("jazz trio", settings=settings(seed=7))
    again, _ = generate("jazz trio", settings=settings(seed=7))
    other_seed, _ = generate("jazz trio", settings=settings(seed=8))
    other_prompt, _ = generate("heavy rock guitar", settings=settings(seed=7))
    np.testing.assert_array_equal(first, again)
    assert np.mean(np.abs(first - other_seed)) > 0.01
    assert np.mean(np.abs(first - other_prompt)) > 0.01


def test_sampling_settings_reach_the_sampler(musicgen_env):
    # top_k=1 is greedy decoding: the seed no longer matters.
    greedy_a, _ = generate("ambient drone", settings=settings(seed=1, top_k=1))
    greedy_b, _ = generate("ambient drone", settings=settings(seed=2, top_k=1))
    np.testing.assert_array_equal(greedy_a, greedy_b)
    # Classifier-free guidance changes the distribution, so the same seed gives other audio.
    guided, _ = generate("ambient drone", settings=settings(seed=1, top_k=1, guidance_scale=3.0))
    unguided, _ = generate("ambient drone", settings=settings(seed=1, top_k=1, guidance_scale=1.0))
    assert not np.array_equal(guided, unguided)


def test_generation_does_not_disturb_the_global_torch_rng(musicgen_env):
    import torch

    load_musicgen()  # loading may draw random numbers; generation must not
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate("calm acoustic guitar", settings=settings(seed=5))
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- progress, cancel, streaming


def test_progress_counts_every_token_up_to_the_total(musicgen_env):
    calls = []
    generate("orchestral film score", settings=settings(duration_s=1.0), on_progress=lambda d, t: calls.append((d, t)))
    total = generation.tokens_for_duration(1.0)
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == list(range(total + 1))
    assert {t for _, t in calls} == {total}


def test_stop_event_cancels_promptly_and_releases_the_model(musicgen_env):
    stop = threading.Event()
    seen = []

    def on_progress(done, total):
        seen.append(done)
        if done == 5:
            stop.set()

    with pytest.raises(CancelledError):
        generate("synth pop", settings=settings(duration_s=5.0), on_progress=on_progress, stop_event=stop)
    assert max(seen) <= 6  # stopped at the next token, not after 253
    assert CancelledError is errors.CancelledError and issubclass(CancelledError, RestorationError)

    # The lock was released: the next request runs.
    audio, _ = generate("synth pop", settings=settings(), stop_event=threading.Event())
    assert audio.shape == (1, SR)


def test_stop_event_already_set_raises_before_any_work(musicgen_env):
    stop = threading.Event()
    stop.set()
    with pytest.raises(CancelledError):
        generate("synth pop", settings=settings(), stop_event=stop)
    assert model_status()["loaded"] == []


def test_on_chunk_streams_growing_prefixes_of_the_final_audio(musicgen_env):
    chunks = []
    audio, _ = generate(
        "rock song", settings=settings(duration_s=4.0, seed=3), on_chunk=lambda a, sr: chunks.append((a.copy(), sr))
    )
    lengths = [chunk.shape[1] for chunk, _ in chunks]
    assert lengths == [int(1.5 * SR), int(3.0 * SR)]  # every 1.5 s of audio produced
    for chunk, sample_rate in chunks:
        assert sample_rate == SR and chunk.dtype == np.float32 and chunk.shape[0] == 1
        # Same tokens as the final clip. Only the end differs: EnCodec's convolutions are
        # non-causal, so the last frames of a chunk lack their right context (and are
        # decoded again in the next chunk).
        head = chunk.shape[1] - int(0.2 * SR)
        np.testing.assert_allclose(chunk[:, :head], audio[:, :head], atol=1e-4)
        assert np.sqrt(np.mean(chunk**2)) > 1e-3


# --------------------------------------------------------------------------- fast mode


def test_fast_mode_quantizes_only_the_lm_decoder(musicgen_env):
    import torch

    audio, sample_rate = generate("lofi hip hop", settings=settings(duration_s=2.0, mode="fast"))
    assert sample_rate == SR and audio.shape == (1, 2 * SR)
    assert np.isfinite(audio).all() and np.sqrt(np.mean(audio**2)) > 1e-3

    from restoration.decoding import Int8RowsLinear

    fast = load_musicgen(mode="fast").model
    quantized = Int8RowsLinear
    # Every Linear the decoder runs per token is int8; the cross-attention key/value
    # projections run once per prompt and keep fp32 weights.
    cross_kv = {id(m) for layer in fast.decoder.model.decoder.layers
                for m in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)}
    assert all(type(m) is torch.nn.Linear for layer in fast.decoder.model.decoder.layers
               for m in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj))
    per_token = [m for m in fast.decoder.modules() if isinstance(m, (torch.nn.Linear, quantized)) and id(m) not in cross_kv]
    assert per_token and all(isinstance(m, quantized) for m in per_token)
    assert all(isinstance(m, quantized) for m in fast.decoder.lm_heads)
    assert not any(isinstance(m, quantized) for m in fast.text_encoder.modules())
    assert not any(isinstance(m, quantized) for m in fast.audio_encoder.modules())
    assert load_musicgen(mode="exact").model is not fast  # a separate cached instance


def test_musicgen_quantize_env_forces_fast_mode(musicgen_env, monkeypatch):
    monkeypatch.setenv("MUSICGEN_QUANTIZE", "int8")
    assert resolve_mode("exact") == "fast"
    audio, _ = generate("lofi hip hop", settings=settings(mode="exact"))
    assert audio.shape == (1, SR) and np.isfinite(audio).all()
    assert model_status()["loaded"] == ["fast"]
    assert load_musicgen(mode="exact").mode == "fast"  # what a pipeline pre-loads is what generate uses

    monkeypatch.setenv("MUSICGEN_QUANTIZE", "int4")
    with pytest.raises(BadInputError, match="MUSICGEN_QUANTIZE"):
        resolve_mode(None)
    monkeypatch.delenv("MUSICGEN_QUANTIZE")
    assert resolve_mode(None) == "exact" and resolve_mode("fast") == "fast"


# --------------------------------------------------------------------------- loading and caching


def test_model_is_loaded_once_and_reused(musicgen_env):
    first = load_musicgen()
    assert load_musicgen() is first
    assert first.sample_rate == SR and first.frame_rate == 50 and first.device == "cpu"
    assert first.model_id == str(musicgen_env)
    generation.clear_model_cache()
    assert load_musicgen() is not first


def test_missing_folder_raises_model_unavailable_naming_the_fix(musicgen_env, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv("MUSICGEN_MODEL", str(missing))
    with pytest.raises(ModelUnavailableError) as info:
        generate("lofi", settings=settings())
    message = str(info.value)
    assert "MUSICGEN_MODEL" in message and str(missing) in message and "save_pretrained" in message
    assert "\n" not in message


def test_bad_folder_raises_model_unavailable(musicgen_env, tmp_path, monkeypatch):
    bad = tmp_path / "not-a-musicgen"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "bert"}))
    monkeypatch.setenv("MUSICGEN_MODEL", str(bad))
    with pytest.raises(ModelUnavailableError) as info:
        load_musicgen()
    assert "MUSICGEN_MODEL" in str(info.value) and str(bad) in str(info.value)


def test_uncached_hub_id_offline_raises_model_unavailable_with_download_fix(musicgen_env, monkeypatch):
    monkeypatch.setenv("MUSICGEN_MODEL", "restoration-tests/no-such-musicgen")
    with pytest.raises(ModelUnavailableError) as info:
        load_musicgen()
    message = str(info.value)
    assert "restoration-tests/no-such-musicgen" in message and "MUSICGEN_MODEL" in message
    assert "hf download restoration-tests/no-such-musicgen" in message


def test_model_status_reports_without_loading(musicgen_env, tmp_path, monkeypatch):
    status = model_status()
    assert status["source"] == "local-folder" and status["available"] and status["fix"] is None
    assert status["model_id"] == str(musicgen_env) and status["loaded"] == []

    monkeypatch.setenv("MUSICGEN_MODEL", "restoration-tests/no-such-musicgen")
    status = model_status()
    assert status["source"] == "not-cached" and not status["available"]
    assert "hf download restoration-tests/no-such-musicgen" in status["fix"]

    monkeypatch.setenv("MUSICGEN_MODEL", str(tmp_path / "gone"))
    status = model_status()
    assert status["source"] == "missing-folder" and "MUSICGEN_MODEL" in status["fix"]


# --------------------------------------------------------------------------- threads


def test_concurrent_requests_match_sequential_ones(musicgen_env):
    seeds = [0, 1, 2]
    sequential = {seed: generate("jazz trio", settings=settings(seed=seed))[0] for seed in seeds}
    results, errors = {}, []

    def worker(seed):
        try:
            results[seed] = generate("jazz trio", settings=settings(seed=seed))[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for seed in seeds:
        np.testing.assert_array_equal(results[seed], sequential[seed])


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize("prompt", ["", "   \n", None, "x" * 501])
def test_bad_prompt_raises_bad_input_before_loading(musicgen_env, prompt):
    with pytest.raises(BadInputError):
        generate(prompt, settings=settings())
    assert model_status()["loaded"] == []


@pytest.mark.parametrize("duration_s", [0.5, 30.5, -1, "long", float("nan")])
def test_bad_duration_raises_bad_input(duration_s):
    with pytest.raises(BadInputError, match="duration"):
        GenerationSettings(duration_s=duration_s)


# --------------------------------------------------------------------------- the lean token loop


def _transformers_reference(model_dir, prompt, *, seed, steps, guidance_scale=3.0, top_k=250, temperature=1.0):
    """transformers' own generate: the audio, and the token matrix its loop built."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration, StoppingCriteria, StoppingCriteriaList

    model = MusicgenForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    processor = AutoProcessor.from_pretrained(str(model_dir))
    inputs = processor(text=[prompt], padding=True, return_tensors="pt")
    seen = {}

    class Keep(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            seen["ids"] = input_ids.clone()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    torch.manual_seed(seed)
    with torch.inference_mode():
        audio = model.generate(**inputs, do_sample=True, guidance_scale=guidance_scale, top_k=top_k,
                               temperature=temperature, max_new_tokens=steps,
                               stopping_criteria=StoppingCriteriaList([Keep()]))
    return model, inputs, audio[0].numpy(), seen["ids"]


@pytest.mark.parametrize(("guidance_scale", "top_k", "temperature"), [(3.0, 250, 1.0), (1.0, 8, 0.7)])
def test_lean_loop_samples_what_transformers_generate_samples(musicgen_env, guidance_scale, top_k, temperature):
    # Same seed, same settings: the same tokens and so the same audio as model.generate, because the
    # lean loop draws the same random numbers from the same distributions (CFG, temperature, top-k).
    steps = generation.tokens_for_duration(1.0)
    _, _, expected, _ = _transformers_reference(musicgen_env, "jazz trio", seed=11, steps=steps,
                                                guidance_scale=guidance_scale, top_k=top_k, temperature=temperature)
    bundle = load_musicgen()
    assert bundle.decoder is not None  # the lean loop, not transformers' generate
    audio, _ = generate("jazz trio", settings=settings(seed=11, guidance_scale=guidance_scale, top_k=top_k,
                                                       temperature=temperature))
    np.testing.assert_allclose(audio, expected[:, : audio.shape[1]], atol=1e-5)


LONG_PROMPT = "a slow late night jazz trio with brushed drums, warm upright bass and a soft felt piano melody"


@pytest.mark.parametrize(("prompt", "cross_path"), [("rock song", "folded"), (LONG_PROMPT, "keys")])
def test_lean_loop_logits_match_transformers(musicgen_env, prompt, cross_path):
    # Teacher forcing: the same token matrix through transformers' forward (conditional row, and
    # the null-text row CFG uses) and through the lean step function gives the same logits —
    # with cross-attention's projections folded into the prompt's keys and values (a prompt
    # shorter than the head size, 8 here), and with them applied as they are (a longer one).
    import torch

    steps = 40
    model, inputs, _, ids = _transformers_reference(musicgen_env, prompt, seed=2, steps=steps)
    bundle = load_musicgen()
    cross = bundle.decoder.encode_prompt(inputs["input_ids"], inputs["attention_mask"])
    assert {entry[0] for entry in cross} == {cross_path}
    pattern, _, _ = bundle.decoder.delay_pattern(steps)
    tokens = torch.where(pattern == -1, ids, pattern)
    lean = bundle.decoder.logits_for(inputs["input_ids"], inputs["attention_mask"], tokens, guidance_scale=3.0)
    with torch.inference_mode():
        cond = model(**inputs, decoder_input_ids=tokens[:, :-1]).logits  # (codebooks, steps, vocab)
        null_text = model.text_encoder(**inputs).last_hidden_state * 0
        uncond = model(encoder_outputs=(null_text,), attention_mask=torch.zeros_like(inputs["attention_mask"]),
                       decoder_input_ids=tokens[:, :-1]).logits
    scale = float(cond.abs().max())
    np.testing.assert_allclose(lean[:, 0].numpy(), cond.permute(1, 0, 2).numpy(), atol=1e-5 * scale)
    np.testing.assert_allclose(lean[:, 1].numpy(), uncond.permute(1, 0, 2).numpy(), atol=1e-5 * scale)


def test_fast_mode_fused_products_equal_the_quantized_modules(musicgen_env):
    # The fused int8 q/k/v and LM heads are the modules' own int8 rows: same logits, bit for bit.
    import torch

    from restoration import decoding

    bundle = load_musicgen(mode="fast")
    inputs = bundle.processor(text=["ambient drone"], padding=True, return_tensors="pt")
    pattern, _, _ = bundle.decoder.delay_pattern(20)
    tokens = torch.where(pattern == -1, torch.randint(0, 64, pattern.shape, generator=torch.Generator().manual_seed(0)),
                         pattern)
    unfused = decoding.LeanDecoder(bundle.model)  # calls q, k, v and each head's module
    assert type(unfused.lm_heads).__name__ == "_Concat" and type(bundle.decoder.lm_heads).__name__ == "_Module"
    fused_logits = bundle.decoder.logits_for(inputs["input_ids"], inputs["attention_mask"], tokens, guidance_scale=3.0)
    plain_logits = unfused.logits_for(inputs["input_ids"], inputs["attention_mask"], tokens, guidance_scale=3.0)
    assert torch.equal(fused_logits, plain_logits)


def test_loop_threads_widen_when_others_leave_a_core_and_narrow_after_a_stalled_step(monkeypatch):
    import torch

    clock = {"now": 0.0}
    cpu = {"busy": 100.0, "own": 5.0}  # seconds: the whole machine's busy time, this process's CPU time
    monkeypatch.setattr(threads_module.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(threads_module, "cpu_times", lambda: (cpu["busy"], cpu["own"]))
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    counts = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: counts.append(n))

    def step(threads, elapsed, *, others_cores=0.0):
        clock["now"] += elapsed
        cpu["own"] += elapsed  # this process: one busy core
        cpu["busy"] += elapsed * (1 + others_cores)
        threads.step()

    class Bundle:
        device, mode = "cpu", "fast"

    with generation.LoopThreads(Bundle()) as threads:
        assert counts == [1]  # the prompt and the first steps: one thread
        step(threads, 0.05)
        assert counts == [1]  # 50 ms measured: not enough to judge yet
        step(threads, 0.06)
        assert counts == [1, 2]  # nobody else busy over 110 ms: widened
        for elapsed in (0.04, 0.035, 0.035, 0.035, 0.035):
            step(threads, elapsed)
        assert counts == [1, 2]
        step(threads, 0.5)  # a stalled step: another process took the second core
        assert counts == [1, 2, 1]
        step(threads, 0.05)
        assert counts == [1, 2, 1]  # and it stays narrow
    assert counts[-1] == 2  # the process's setting is restored

    counts.clear()
    with generation.LoopThreads(Bundle()) as threads:  # another process keeps a core busy
        for _ in range(6):
            step(threads, 0.05, others_cores=0.9)
    assert counts == [1, 2]  # never widened; restored at the end

    counts.clear()

    class Exact:
        device, mode = "cpu", "exact"

    with generation.LoopThreads(Exact()) as threads:  # exact widens the same way on an idle machine
        for _ in range(5):
            step(threads, 0.1)
    assert counts == [1, 2, 2]  # one thread to measure, widened, then the process's setting restored


def test_others_busy_cores_known_answers():
    # 0.6 s of machine-wide busy time in 0.3 s, 0.3 s of it this process's: others kept 1 core busy.
    assert generation.others_busy_cores((10.0, 1.0), (10.6, 1.3), 0.3) == 1.0
    assert generation.others_busy_cores((10.0, 1.0), (10.3, 1.3), 0.3) == 0.0  # only this process
    assert generation.others_busy_cores((10.0, 1.0), (10.29, 1.3), 0.3) == 0.0  # tick skew floors at 0
    assert generation.others_busy_cores(None, (10.0, 1.0), 0.3) is None


def test_cpu_times_count_this_process_work():
    before = threads_module.cpu_times()
    end = time.process_time() + 0.3
    while time.process_time() < end:  # 0.3 s of work on this core
        pass
    after = threads_module.cpu_times()
    assert after[1] - before[1] >= 0.25  # this process's CPU time grew by the work done
    assert after[0] - before[0] >= after[1] - before[1] - 0.03  # the machine was at least that busy (tick skew)


# --------------------------------------------------------------------------- batches of clips


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_batch_gives_each_clip_the_audio_a_single_run_gives(musicgen_env, mode):
    # Three clips sampled together, each with its own prompt and seed (one prompt long enough to
    # keep cross-attention's projections, the others folded), against each run alone.
    requests = [("jazz trio", settings(seed=3, mode=mode)), (LONG_PROMPT, settings(seed=4, mode=mode)),
                ("jazz trio", settings(seed=5, mode=mode))]
    batched = generation.generate_batch(requests)
    alone = [generate(prompt, settings=s) for prompt, s in requests]
    assert [rate for _, rate in batched] == [SR] * 3
    for (audio, _), (expected, _) in zip(batched, alone):
        assert audio.shape == expected.shape == (1, SR)
        if mode == "fast":  # int8 rows are quantized on their own and summed in integers: bit for bit
            np.testing.assert_array_equal(audio, expected)
        else:  # fp32 products over 6 rows instead of 2 round differently, far below a token's choice
            np.testing.assert_allclose(audio, expected, atol=1e-5)
    assert np.mean(np.abs(batched[0][0] - batched[2][0])) > 0.01  # same prompt, other seed: other clip


def test_batch_rejects_settings_that_differ_in_more_than_the_seed(musicgen_env):
    with pytest.raises(BadInputError, match="seed only"):
        generation.generate_batch([("jazz", settings(seed=1)), ("rock", settings(seed=2, duration_s=2.0))])
    with pytest.raises(BadInputError):
        generation.generate_batch([])


def test_int8_rows_are_independent_of_the_batch_and_close_to_the_int8_weights():
    # Int8RowsLinear: a row's output does not depend on the other rows (its own range), and with
    # the error rows ("split") it is the product with the int8 weights to a few 1e-3, well below the
    # per-tensor dynamic scheme's error on the same inputs.
    import torch

    from restoration import decoding

    torch.manual_seed(0)
    weight = torch.randn(96, 256) * 0.02
    ints, scales = decoding.int8_rows(weight)
    dequantized = ints.float() * scales.float()[:, None]
    x = torch.nn.functional.gelu(torch.randn(5, 256) * torch.tensor([1.0, 5.0, 0.2, 1.0, 30.0])[:, None])
    reference = x @ dequantized.T
    errors = {}
    for split in (True, False):
        layer = decoding.Int8RowsLinear(ints, scales, split=split)
        together = layer(x)
        one_by_one = torch.cat([layer(x[i : i + 1]) for i in range(5)])
        assert torch.equal(together, one_by_one)
        errors[split] = float(((together - reference).norm(dim=1) / reference.norm(dim=1)).max())
    dynamic = decoding._int8_linear([(ints, scales)], None)
    dynamic_error = float(((dynamic(x) - reference).norm(dim=1) / reference.norm(dim=1)).max())
    assert errors[True] < 5e-3
    assert errors[True] < errors[False] / 5
    assert errors[True] < dynamic_error / 5


# --------------------------------------------------------------------------- prepared weights on disk


def test_fast_weights_are_prepared_once_then_read_back_and_a_corrupt_entry_is_rebuilt(musicgen_env, tmp_path,
                                                                                        monkeypatch):
    from restoration.musicgen import prepared

    monkeypatch.setenv("RESTORATION_DATA_DIR", str(tmp_path / "data"))
    first = load_musicgen(mode="fast")
    assert first.prepared == "prepared, cached"
    entries = list((tmp_path / "data" / "prepared").glob("musicgen-int8-*.pt"))
    assert len(entries) == 1
    audio, _ = generate("lofi hip hop", settings=settings(seed=2, mode="fast"))

    generation.clear_model_cache()  # a new process, as far as loading goes
    assert load_musicgen(mode="fast").prepared == "cache"
    again, _ = generate("lofi hip hop", settings=settings(seed=2, mode="fast"))
    np.testing.assert_array_equal(again, audio)

    entries[0].write_bytes(entries[0].read_bytes()[:1000])  # torn: a crash mid-copy, a full disk
    generation.clear_model_cache()
    assert load_musicgen(mode="fast").prepared == "prepared, cached"
    rebuilt, _ = generate("lofi hip hop", settings=settings(seed=2, mode="fast"))
    np.testing.assert_array_equal(rebuilt, audio)
    assert not list((tmp_path / "data" / "prepared").glob(".*.tmp"))  # no temporary file left behind

    monkeypatch.setenv("MUSICGEN_PREPARED_CACHE", "0")
    generation.clear_model_cache()
    assert load_musicgen(mode="fast").prepared == "prepared"


def test_prepared_weights_key_follows_the_model_files(musicgen_env, tmp_path, monkeypatch):
    import shutil

    from restoration.musicgen import prepared

    monkeypatch.setenv("RESTORATION_DATA_DIR", str(tmp_path / "data"))
    model = tmp_path / "model"
    shutil.copytree(musicgen_env, model)
    key = prepared.cache_key(model, scheme="split")
    assert key == prepared.cache_key(model, scheme="split")  # stable (and read from the digest memo)
    assert key != prepared.cache_key(model, scheme="rows")
    config = model / "config.json"
    config.write_text(config.read_text() + "\n")  # another model file: another key
    assert prepared.cache_key(model, scheme="split") != key
    assert prepared.cache_key(tmp_path / "no-such-folder", scheme="split") is None

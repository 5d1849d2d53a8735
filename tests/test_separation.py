"""Demucs restoration, through real models loaded the way users load them.

Two models, both selected by environment variables and loaded by ``load_demucs``:
demucs's own random ``demucs_unittest`` (``DEMUCS_MODEL``), and a tiny random HTDemucs
saved in a local repo folder (``DEMUCS_REPO`` + ``DEMUCS_MODEL``), which goes through
demucs's file loading and the HT models' pad-to-training-segment path.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch

from restoration import separation
from restoration.errors import BadInputError, CancelledError, ModelUnavailableError
from restoration.standins.demucs import build_htdemucs_random, build_tiny_demucs_repo
from restoration.settings import DemucsSettings

STEMS = ("drums", "bass", "other", "vocals")


def music(channels: int, sample_rate: int, *, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A few decaying partials plus a little noise, different in every channel; float32 (channels, frames)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = []
    for c in range(channels):
        tone = sum(0.1 * np.sin(2 * np.pi * f * (1 + 0.01 * c) * t) for f in (110.0, 440.0, 1320.0))
        out.append(tone * np.exp(-2 * t) + 0.02 * rng.standard_normal(t.size))
    return np.asarray(out, dtype=np.float32)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's
    spin-waiting made them up to ten times slower (2.2 s instead of 0.16 s a call)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["demucs_unittest", "tiny_htdemucs"])
def model_env(request):
    """Each test runs once per model, both selected through the environment."""
    fixture = "demucs_unittest_env" if request.param == "demucs_unittest" else "demucs_env"
    request.getfixturevalue(fixture)
    return request.param


# ------------------------------------------------------------------------------ shapes, invariants


@pytest.mark.parametrize("channels, sample_rate", [(1, 32000), (2, 44100), (3, 22050)])
def test_outputs_keep_the_inputs_rate_layout_and_length(model_env, channels, sample_rate):
    audio = music(channels, sample_rate, seconds=0.8)
    result = separation.restore(audio, sample_rate)
    assert result.model_name == model_env
    assert result.model_sample_rate == 44100
    assert result.sample_rate == sample_rate
    assert tuple(result.stems) == STEMS
    for array in (result.restored, result.residual, *result.stems.values()):
        assert array.shape == audio.shape
        assert array.dtype == np.float32
        assert np.isfinite(array).all()
    # the model did something: its stems do not sum to the input
    assert np.abs(result.residual).max() > 1e-3


def test_residual_is_input_minus_restored_and_restored_is_the_sum_of_stems(model_env):
    audio = music(2, 44100)
    result = separation.restore(audio, 44100)
    np.testing.assert_allclose(result.residual, audio - result.restored, atol=1e-6, rtol=0)
    np.testing.assert_allclose(result.restored, sum(result.stems.values()), atol=1e-6, rtol=0)


def test_callers_array_is_not_modified(model_env):
    # float32 and C-contiguous: the layout validate_audio passes through without copying
    audio = music(2, 44100)
    before = audio.copy()
    separation.restore(audio, 44100, settings=DemucsSettings(shifts=1))
    np.testing.assert_array_equal(audio, before)


def test_mono_input_is_the_mean_of_its_dual_mono_restoration(model_env):
    mono = music(1, 44100)
    dual = separation.restore(np.vstack([mono, mono]), 44100)
    single = separation.restore(mono, 44100)
    np.testing.assert_allclose(single.restored, dual.restored.mean(axis=0, keepdims=True), atol=1e-6)


def test_more_than_two_channels_restore_the_downmix_on_every_channel(model_env):
    audio = music(3, 32000)
    multi = separation.restore(audio, 32000)
    downmix = separation.restore(audio.mean(axis=0, keepdims=True), 32000)
    for channel in multi.restored:
        np.testing.assert_allclose(channel, downmix.restored[0], atol=1e-6)


# ------------------------------------------------------------------------------ shifts and seeds


def test_shifts_are_deterministic_for_a_seed_and_vary_across_seeds(model_env):
    audio = music(1, 32000)
    first = separation.restore(audio, 32000, settings=DemucsSettings(shifts=2, seed=7))
    again = separation.restore(audio, 32000, settings=DemucsSettings(shifts=2, seed=7))
    other = separation.restore(audio, 32000, settings=DemucsSettings(shifts=2, seed=8))
    np.testing.assert_array_equal(first.restored, again.restored)
    assert np.abs(first.restored - other.restored).max() > 1e-4  # the seed really drives the shifts


def test_seeded_shifts_equal_demucs_apply_model_and_leave_global_random_alone(demucs_unittest_env):
    from demucs.apply import apply_model

    model = separation.load_demucs()
    mix = torch.randn(1, 2, 30000, generator=torch.Generator().manual_seed(0))
    random.seed(5)
    expected = apply_model(model, mix, shifts=3)
    state = random.getstate()
    ours = separation.separate(model, mix, shifts=3, seed=5)
    assert random.getstate() == state
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------ stem gains


def test_zero_gains_give_silence_and_the_whole_input_as_residual(model_env):
    audio = music(2, 44100)
    result = separation.restore(audio, 44100, settings=DemucsSettings(stem_gains=tuple((s, 0.0) for s in STEMS)))
    assert not result.restored.any()
    np.testing.assert_array_equal(result.residual, audio)


def test_gain_of_two_on_every_stem_doubles_restored(model_env):
    audio = music(1, 32000)
    unit = separation.restore(audio, 32000)
    double = separation.restore(audio, 32000, settings=DemucsSettings(stem_gains=tuple((s, 2.0) for s in STEMS)))
    np.testing.assert_allclose(double.restored, 2.0 * unit.restored, rtol=1e-6, atol=1e-7)
    for stem in STEMS:  # stems are reported before their gains
        np.testing.assert_array_equal(double.stems[stem], unit.stems[stem])


def test_a_gain_for_a_stem_the_model_lacks_is_bad_input(demucs_unittest_env):
    with pytest.raises(BadInputError, match="guitar"):
        separation.restore(music(1, 32000), 32000, settings=DemucsSettings(stem_gains=(("guitar", 1.0),)))


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "audio",
    [np.zeros((1, 0), dtype=np.float32), np.full((2, 1000), np.nan, dtype=np.float32)],
    ids=["empty", "nan"],
)
def test_empty_or_nan_input_is_bad_input(demucs_unittest_env, audio):
    with pytest.raises(BadInputError):
        separation.restore(audio, 32000)


def test_segment_longer_than_the_training_segment_is_bad_input(demucs_env):
    with pytest.raises(BadInputError, match="training segment"):
        separation.restore(music(1, 32000), 32000, segment_s=1.5)  # the tiny model trained on 1 s


def test_a_clip_longer_than_the_segment_is_separated_in_overlapping_chunks(demucs_env):
    audio = music(2, 44100, seconds=2.6)  # 1 s segment, 0.75 s stride: 4 chunks
    seen = []
    result = separation.restore(audio, 44100, on_progress=seen.append)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    np.testing.assert_allclose(result.residual, audio - result.restored, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ loading


def test_model_loads_once_per_process_from_any_thread(demucs_env):
    models = []
    threads = [threading.Thread(target=lambda: models.append(separation.load_demucs())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(models) == 4 and all(m is models[0] for m in models)
    assert models[0] is separation.load_demucs()
    assert separation.model_status()["loaded"] is True
    assert not models[0].training
    assert list(models[0].sources) == list(STEMS)


def test_unknown_model_name_is_model_unavailable(monkeypatch):
    monkeypatch.setenv("DEMUCS_MODEL", "no_such_model")
    monkeypatch.delenv("DEMUCS_REPO", raising=False)
    separation.clear_model_cache()
    with pytest.raises(ModelUnavailableError, match="DEMUCS_MODEL") as info:
        separation.restore(music(1, 32000), 32000)
    assert "no_such_model" in str(info.value) and "DEMUCS_REPO" in str(info.value)


def test_missing_repo_folder_is_model_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("DEMUCS_MODEL", "tiny_htdemucs")
    monkeypatch.setenv("DEMUCS_REPO", str(tmp_path / "absent"))
    separation.clear_model_cache()
    with pytest.raises(ModelUnavailableError, match="DEMUCS_MODEL") as info:
        separation.load_demucs()
    assert "not a folder" in str(info.value)


def test_repo_without_the_model_is_model_unavailable(monkeypatch, tiny_demucs_repo):
    monkeypatch.setenv("DEMUCS_MODEL", "htdemucs")
    monkeypatch.setenv("DEMUCS_REPO", str(tiny_demucs_repo))
    separation.clear_model_cache()
    with pytest.raises(ModelUnavailableError, match="DEMUCS_MODEL.*DEMUCS_REPO"):
        separation.load_demucs()


def test_corrupt_model_file_is_model_unavailable(monkeypatch, tmp_path):
    (tmp_path / "broken.th").write_bytes(b"not a torch file")
    monkeypatch.setenv("DEMUCS_MODEL", "broken")
    monkeypatch.setenv("DEMUCS_REPO", str(tmp_path))
    separation.clear_model_cache()
    with pytest.raises(ModelUnavailableError, match="DEMUCS_MODEL"):
        separation.load_demucs()


def test_model_status_finds_local_weights_without_loading(demucs_env, tmp_path, monkeypatch):
    status = separation.model_status()
    assert status["model"] == "tiny_htdemucs" and status["available"] is True
    assert status["source"] == "local repo" and status["loaded"] is False
    assert "DEMUCS_REPO" in status["fix"]
    monkeypatch.setenv("DEMUCS_REPO", str(tmp_path))
    assert separation.model_status()["available"] is False


def test_model_status_of_demucs_unittest_needs_no_weights(demucs_unittest_env):
    assert separation.model_status()["available"] is True


def test_model_status_looks_into_torch_hubs_cache_without_downloading(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)  # no HF cache
    monkeypatch.setenv("DEMUCS_MODEL", "htdemucs")
    monkeypatch.delenv("DEMUCS_REPO", raising=False)
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        missing = separation.model_status()
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "955717e8-8726e21a.th").write_bytes(b"")  # the file remote/htdemucs.yaml names
        found = separation.model_status()
    finally:
        torch.hub.set_dir(hub_dir)
    assert missing["available"] is False and "python -m demucs -n htdemucs" in missing["fix"]
    assert found["available"] is True and found["source"] == "torch hub cache"


def test_a_bag_of_models_in_a_repo_folder_restores_like_its_single_model(monkeypatch, tmp_path, demucs_env):
    single = separation.restore(music(1, 32000), 32000, settings=DemucsSettings(shifts=1))
    build_tiny_demucs_repo(tmp_path, name="abc12345", seed=0, segment_s=1.0)  # the same weights as demucs_env's
    (tmp_path / "bag.yaml").write_text("models: ['abc12345']\n")
    monkeypatch.setenv("DEMUCS_REPO", str(tmp_path))
    monkeypatch.setenv("DEMUCS_MODEL", "bag")
    status = separation.model_status()
    assert status["available"] is True and len(status["files"]) == 2
    bag = separation.restore(music(1, 32000), 32000, settings=DemucsSettings(shifts=1))
    assert type(separation.load_demucs()).__name__ == "BagOfModels"
    np.testing.assert_allclose(bag.restored, single.restored, atol=1e-6)


# ------------------------------------------------------------------------------ progress, stop


def test_progress_rises_to_one(model_env):
    seen = []
    separation.restore(music(1, 32000), 32000, settings=DemucsSettings(shifts=2), on_progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert any(0.0 < f < 1.0 for f in seen)  # a fraction after the first of the two shift passes


def test_stop_event_cancels_before_a_chunk(demucs_env):
    stop = threading.Event()

    def progress(fraction):
        if fraction > 0:
            stop.set()  # after the first chunk: the next chunk must not start

    with pytest.raises(CancelledError):
        separation.restore(music(1, 32000), 32000, settings=DemucsSettings(shifts=3), on_progress=progress,
                           stop_event=stop)


def test_a_set_stop_event_cancels_at_once(demucs_unittest_env):
    stop = threading.Event()
    stop.set()
    with pytest.raises(CancelledError):
        separation.restore(music(1, 32000), 32000, stop_event=stop)


# ------------------------------------------------------------------------------ random stand-ins


def test_tiny_repo_is_reproducible_and_loads_with_demucs_get_model(tmp_path):
    from demucs.htdemucs import HTDemucs
    from demucs.pretrained import get_model

    a = get_model("tiny_htdemucs", repo=build_tiny_demucs_repo(tmp_path / "a", seed=3))
    b = get_model("tiny_htdemucs", repo=build_tiny_demucs_repo(tmp_path / "b", seed=3))
    c = get_model("tiny_htdemucs", repo=build_tiny_demucs_repo(tmp_path / "c", seed=4))
    assert isinstance(a, HTDemucs)
    assert (a.samplerate, a.audio_channels, list(a.sources), float(a.segment)) == (44100, 2, list(STEMS), 7.8)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_repo_model_names_with_a_dash_are_refused(tmp_path):
    with pytest.raises(ValueError, match="SIG-CHECKSUM"):
        build_tiny_demucs_repo(tmp_path, name="tiny-htdemucs")


def test_full_size_random_htdemucs_has_htdemucs_size():
    model = build_htdemucs_random(seed=0)
    assert 26_000_000 < sum(p.numel() for p in model.parameters()) < 28_000_000
    assert float(model.segment) == 7.8 and not model.training


# ------------------------------------------------------------------------------ known answers


class PerfectSeparator(torch.nn.Module):
    """A Demucs-shaped stand-in whose four stems are ``mix / 4`` each: they sum exactly to the mixture,
    so restoring with it must give back the input and a residual of nothing."""

    sources = list(STEMS)
    samplerate = 44100
    audio_channels = 2
    segment = 1.0

    def __init__(self):
        super().__init__()
        self.one = torch.nn.Parameter(torch.ones(()), requires_grad=False)  # apply_model asks for a device

    def forward(self, mix):
        return (mix * self.one / len(self.sources))[:, None].repeat(1, len(self.sources), 1, 1)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("offset", [0.0, 0.3])
@pytest.mark.parametrize("shifts", [0, 2])
def test_a_perfect_separator_gives_back_the_input_with_or_without_dc(tmp_path, channels, offset, shifts):
    from restoration.audio import read_audio, write_wav

    audio = (music(channels, 44100, seconds=1.5) + offset).astype(np.float32)
    result = separation.restore(audio, 44100, settings=DemucsSettings(shifts=shifts), model=PerfectSeparator())
    write_wav(tmp_path / "demucs.wav", result.restored, 44100)
    written, _ = read_audio(tmp_path / "demucs.wav")
    np.testing.assert_allclose(written, audio, atol=1e-6, rtol=0)
    residual_db = 10 * np.log10(np.sum(result.residual.astype(np.float64) ** 2) / np.sum(audio.astype(np.float64) ** 2))
    assert residual_db < -100.0
    assert result.restored.mean() == pytest.approx(audio.mean(), abs=1e-6)  # the DC is the input's, once
    for stem in result.stems.values():  # each stem holds a quarter of the mixture, its DC included
        np.testing.assert_allclose(stem, audio / 4, atol=1e-6, rtol=0)


def test_a_bag_draws_shifts_per_sub_model_like_demucs_apply_model(demucs_unittest_env):
    from demucs.apply import BagOfModels, apply_model
    from demucs.pretrained import get_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        first = get_model("demucs_unittest")
        torch.manual_seed(2)
        second = get_model("demucs_unittest")
    bag = BagOfModels([first, second], weights=[[1.0, 2.0, 1.0, 1.0], [3.0, 1.0, 1.0, 0.5]])
    bag.eval()
    mix = torch.randn(1, 2, 30000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        random.seed(11)
        expected = apply_model(bag, mix, shifts=2)
        ours = separation.separate(bag, mix, shifts=2, seed=11)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)

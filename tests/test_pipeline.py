"""The one flow, ``restoration.pipeline.run``: its three inputs give one kind of report.

Tiny random MusicGen and demucs's own random test model, loaded the way users load them.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from restoration import generation as gen
from restoration.audio import write_wav
from restoration.errors import BadInputError, CancelledError
from restoration.pipeline import public_model_name, run, run_file, run_generated, run_prompt
from restoration.settings import GenerationSettings
from restoration.versions import VERSIONS
from signals import tone_then_noise_bed, white_noise


def test_a_generated_clip_finished_later_gives_the_report_of_the_whole_run(musicgen_env, demucs_unittest_env):
    settings = GenerationSettings(duration_s=1.0, seed=5)
    whole = run_prompt("calm piano", generation=settings)
    audio, rate = gen.generate("calm piano", settings=settings)
    later = run_generated(audio, rate, prompt="calm piano", generation=settings)
    np.testing.assert_array_equal(later.versions["input"], whole.versions["input"])
    assert later.source == whole.source == {"kind": "prompt", "prompt": "calm piano", "seed": 5,
                                            "model": musicgen_env.name}
    assert later.settings == whole.settings
    assert later.metrics == whole.metrics
    assert "generating" in whole.timings_s and "generating" not in later.timings_s


def test_a_file_and_the_same_clip_in_memory_are_measured_alike(tmp_path, demucs_unittest_env):
    path = write_wav(tmp_path / "take.wav", tone_then_noise_bed(sr=16000), 16000, subtype="FLOAT")
    from_file = run_file(path)
    assert from_file.source == {"kind": "file", "file": "take.wav"}
    assert set(from_file.versions) == set(VERSIONS)
    named = run(file=path, file_name="my take")
    assert named.source == {"kind": "file", "file": "my take"}
    assert named.metrics == from_file.metrics


def test_progress_covers_every_stage_and_a_set_stop_event_stops(tmp_path, demucs_unittest_env):
    path = write_wav(tmp_path / "take.wav", white_noise(1.0, sr=16000), 16000, subtype="FLOAT")
    stages = []
    run(file=path, progress=lambda stage, fraction, detail: stages.append(stage))
    assert {"loading models", "demucs", "gating", "metrics", "loudness matching"} <= set(stages)
    stop = threading.Event()
    stop.set()
    with pytest.raises(CancelledError):
        run(file=path, stop_event=stop)


def test_finish_replaces_the_comparison_with_the_same_arguments(tmp_path, demucs_unittest_env):
    path = write_wav(tmp_path / "take.wav", white_noise(1.0, sr=16000), 16000, subtype="FLOAT")
    calls = []

    def finish(audio, sample_rate, *, started, stop_event=None, **compare_kwargs):
        calls.append((audio.shape, sample_rate, sorted(compare_kwargs)))
        return "finished elsewhere"

    assert run(file=path, finish=finish) == "finished elsewhere"
    assert calls == [((1, 16000), 16000, ["demucs", "extra_settings", "gating", "metrics", "require_demucs",
                                          "source", "timings"])]


@pytest.mark.parametrize("kwargs", [{}, {"prompt": "jazz", "file": "x.wav"}])
def test_exactly_one_input(kwargs):
    with pytest.raises(BadInputError, match="exactly one"):
        run(**kwargs)


@pytest.mark.parametrize(
    "model_id, shown",
    [("facebook/musicgen-small", "facebook/musicgen-small"), ("/srv/models/musicgen", "musicgen"),
     ("./models/tiny", "tiny"), ("~/weights/m", "m"), ("a/b/c", "c")],
)
def test_a_local_model_folder_is_recorded_by_its_name_only(model_id, shown):
    assert public_model_name(model_id) == shown

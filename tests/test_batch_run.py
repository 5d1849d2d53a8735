"""``batch``'s run loop: clips sampled together give the folders a one-at-a-time run gives, and resume.

Tiny random MusicGen and HTDemucs (tests/conftest.py), loaded the way users load them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from restoration.batch import auto_batch_size, run_batch
from restoration.errors import BadInputError
from restoration.settings import DemucsSettings, GatingSettings, GenerationSettings, MetricSettings

SETTINGS = dict(demucs=DemucsSettings(), gating=GatingSettings(), metrics=MetricSettings())


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("jazz | smooth jazz trio\nrock | loud rock song with distorted guitars and a shouting crowd\n",
                    encoding="utf-8")
    return path


def _clips(out):
    folders = sorted(p.parent for p in out.glob("clips/*/*/*/report.json"))
    return {str(f.relative_to(out)): f for f in folders}


def test_clips_sampled_together_equal_one_at_a_time_and_resume(musicgen_env, demucs_env, prompts, tmp_path):
    generation = GenerationSettings(duration_s=1.0, mode="fast")  # int8 rows: batch and single agree bit for bit
    alone = run_batch(prompts, tmp_path / "alone", seeds=2, batch_size=1, generation=generation,
                      show_progress=False, **SETTINGS)
    together = run_batch(prompts, tmp_path / "together", seeds=2, batch_size=3, generation=generation,
                         show_progress=False, **SETTINGS)
    assert (alone["ran"], together["ran"], together["batch_size"]) == (4, 4, 3)  # a group of 3, then 1
    clips_alone, clips_together = _clips(tmp_path / "alone"), _clips(tmp_path / "together")
    assert list(clips_alone) == list(clips_together) and len(clips_alone) == 4
    for name, folder in clips_alone.items():
        other = clips_together[name]
        for wav in ("input.wav", "demucs.wav", "spectral_gating.wav"):
            np.testing.assert_array_equal(sf.read(folder / wav)[0], sf.read(other / wav)[0])
        assert json.loads((folder / "metrics.json").read_text()) == json.loads((other / "metrics.json").read_text())
        source_alone = json.loads((folder / "report.json").read_text())["source"]
        assert json.loads((other / "report.json").read_text())["source"] == source_alone
    assert (tmp_path / "together" / "clips.csv").read_text().replace("together", "alone") == \
        (tmp_path / "alone" / "clips.csv").read_text()

    again = run_batch(prompts, tmp_path / "together", seeds=2, batch_size=3, generation=generation,
                      show_progress=False, **SETTINGS)
    assert (again["ran"], again["skipped"]) == (0, 4)  # a rerun resumes: nothing left to do


def test_batch_size_must_be_positive_and_has_a_default_per_device(musicgen_env, prompts, tmp_path):
    with pytest.raises(BadInputError, match="batch-size"):
        run_batch(prompts, tmp_path / "out", batch_size=0, show_progress=False, **SETTINGS)
    assert auto_batch_size("cpu") >= 2 and auto_batch_size("cuda") >= auto_batch_size("cpu")

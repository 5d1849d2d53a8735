"""The app's "Ground truth" tab through its API endpoint ``/groundtruth``, as a script uses it (gradio_client)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_app_api import AppServer, tiny_models_env

VERSIONS = ("clean", "degraded", "demucs", "spectral_gating")


@pytest.fixture(scope="module")
def app(tiny_musicgen_dir, tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("gt-app"), tiny_models_env(tiny_musicgen_dir)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def codec_answer(client):
    return client.predict(builtin="funk", degradation="musicgen-codec", seconds=2, api_name="/groundtruth")


def test_a_built_in_clip_through_musicgen_s_codec_gives_four_aligned_versions(codec_answer):
    *files, table, verdict = codec_answer
    audio, mels = files[:4], files[4:]
    infos = [sf.info(path) for path in audio]
    assert {(i.samplerate, i.channels, i.frames) for i in infos} == {(32000, 1, 64000)}
    assert {i.subtype for i in infos} == {"PCM_16"}
    # Loudness-matched players: one integrated loudness for the four versions.
    from restoration.audio import integrated_lufs

    levels = [integrated_lufs(sf.read(p, always_2d=True)[0].T, 32000) for p in audio]
    assert max(levels) - min(levels) < 0.5, levels
    for path in mels:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table["headers"][:6] == ["Metric", "Unit", "Clean original", "Degraded", "Demucs", "Spectral gating"]
    first = [row[0] for row in table["data"][:4]]
    assert first == ["SI-SDR (vs clean)", "Log-spectral distance (vs clean)", "Mel distance (multi-resolution) (vs clean)",
                     "Zimtohrli MOS (vs clean)"]
    assert all(row[2] == "reference" for row in table["data"][:4])
    assert all("(proxy)" in row[0] for row in table["data"][4:])
    assert verdict.startswith(("Closest to the clean original by Zimtohrli MOS",
                               "Neither restoration got closer to the clean original by Zimtohrli MOS"))


def test_the_verdict_names_the_version_with_the_best_score(codec_answer):
    *_, table, verdict = codec_answer
    zimtohrli = next(row for row in table["data"] if row[0].startswith("Zimtohrli"))
    scores = dict(zip(("Degraded", "Demucs", "Spectral gating"), map(float, zimtohrli[3:6])))
    best = max(scores, key=scores.get)
    if best == "Degraded":
        assert verdict.startswith("Neither restoration")
    else:
        assert verdict.startswith(f"Closest to the clean original by Zimtohrli MOS: {best}")


def test_an_uploaded_clean_recording_and_mp3(client, tmp_path):
    from gradio_client import handle_file

    from restoration import cleanset

    rendered = cleanset.render(cleanset.compose(cleanset.PIECES[5], seconds=3.0), tmp_path / "reggae.wav")
    audio, rate = sf.read(rendered, always_2d=True)
    path = tmp_path / "my reggae.flac"  # the test app accepts uploads up to 1 MB
    sf.write(path, audio[: int(2.5 * rate)], rate)
    *files, table, verdict = client.predict(clean_file=handle_file(str(path)), degradation="mp3-32", seconds=2,
                                            api_name="/groundtruth")
    info = sf.info(files[0])
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, 88200)
    clean = sf.read(files[0], always_2d=True)[0]
    degraded = sf.read(files[1], always_2d=True)[0]
    assert not np.allclose(clean, degraded, atol=1e-3)
    assert "reference" in table["data"][0]


def test_bad_input_is_a_plain_message(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    blip = tmp_path / "blip.wav"
    sf.write(blip, np.full((8000, 1), 0.1, np.float32), 16000)
    with pytest.raises(AppError, match="lasts 0.50 s; the ground-truth comparison needs at least 1 s"):
        client.predict(clean_file=handle_file(str(blip)), degradation="mp3-32", seconds=2, api_name="/groundtruth")
    with pytest.raises(AppError, match="(?i)unknown degradation .vinyl."):
        client.predict(builtin="jazz", degradation="vinyl", seconds=2, api_name="/groundtruth")

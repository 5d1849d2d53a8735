"""The Gradio app through its script API, as a student's script uses it.

The app runs as its own process (``python app.py``) on loopback with tiny random models
(``MUSICGEN_MODEL`` = a tiny save_pretrained folder, ``DEMUCS_MODEL=demucs_unittest``),
and ``gradio_client`` talks to it over HTTP. Nothing is mocked.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from restoration.metrics import METRIC_INFO

ROOT = Path(__file__).resolve().parents[1]
VERSION_COLUMNS = ("Input (MusicGen)", "Demucs", "Spectral gating")
MAX_UPLOAD_MB = 1.0
MAX_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """``python app.py`` in a subprocess on a free loopback port, with its own data and Gradio folders."""

    def __init__(self, folder: Path, env: dict):
        self.folder = Path(folder)
        self.data_dir = self.folder / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.folder / "app.log"
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_TEMP_DIR": str(self.folder / "gradio"),
            "RESTORATION_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        for name in [k for k, v in self.env.items() if v is None]:
            del self.env[name]
        self.process = None
        self.ready_s = None

    def start(self, timeout_s: float = 120.0) -> "AppServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        start = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT)
        while time.perf_counter() - start < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        self.ready_s = time.perf_counter() - start
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"app.py did not answer within {timeout_s:g} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_folders(self) -> set[str]:
        runs = self.data_dir / "runs"
        if not runs.is_dir():
            return set()
        return {p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def tiny_models_env(tiny_musicgen_dir) -> dict:
    return {
        "MUSICGEN_MODEL": str(tiny_musicgen_dir),
        "MUSICGEN_QUANTIZE": None,
        "DEMUCS_MODEL": "demucs_unittest",
        "DEMUCS_REPO": None,
        "RESTORATION_MAX_SECONDS": str(MAX_SECONDS),
        "RESTORATION_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
    }


@pytest.fixture(scope="module")
def app(tiny_musicgen_dir, tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("app"), tiny_models_env(tiny_musicgen_dir)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def generate(client, **kwargs):
    return client.predict(api_name="/generate", **kwargs)


def restore(client, path, **kwargs):
    from gradio_client import handle_file

    return client.predict(audio=handle_file(str(path)), api_name="/restore", **kwargs)


def assert_png(path):
    assert path and Path(path).is_file(), path
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def assert_table(table, *, input_column="Input (MusicGen)", not_run=()):
    headers, rows = table["headers"], table["data"]
    assert headers[0] == "Metric" and headers[1] == "Unit" and headers[-1] == "Better means"
    assert tuple(headers[2:5]) == (input_column, *VERSION_COLUMNS[1:])
    labels = [row[0] for row in rows]
    for label, unit, _ in METRIC_INFO.values():
        assert label in labels, f"no row for {label}"
        assert rows[labels.index(label)][1] == unit
    for row in rows:
        assert len(row) == len(headers)
        assert not any("nan" in str(cell).lower().split() or str(cell).lower() == "nan" for cell in row), row
    lufs = rows[labels.index(METRIC_INFO["lufs"][0])]
    for column, cell in zip(headers[2:5], lufs[2:5]):
        if column in not_run:
            assert cell == "not run"
        else:
            assert math.isfinite(float(cell)), (column, cell)
    return dict(zip(labels, rows))


def write(path, audio, sample_rate, subtype="PCM_16"):
    sf.write(str(path), np.asarray(audio, dtype=np.float32).T, sample_rate, subtype=subtype)
    return path


def noisy_chord(seconds, sample_rate, channels=1, seed=0):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 440.0)) / 3
    noise = np.random.default_rng(seed).standard_normal((channels, t.size)) * 0.01
    return (tone + noise).astype(np.float32)


# --------------------------------------------------------------------------- the endpoints


def test_app_answers_quickly(app):
    # The target is < 10 s on an idle 2-core machine; CI shares its cores, so the bound here is loose.
    assert app.ready_s < 45, f"app.py took {app.ready_s:.1f} s to answer"
    print(f"app.py answered after {app.ready_s:.1f} s")


def test_only_generate_and_restore_are_public(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {"/generate", "/restore", "/groundtruth"}
    assert not info["unnamed_endpoints"]
    params = [p["parameter_name"] for p in info["named_endpoints"]["/generate"]["parameters"]]
    assert params[:3] == ["prompt", "duration", "seed"]
    assert {"guidance", "temperature", "top_k", "mode", "demucs_shifts", "gating", "hber_cutoff_hz"} <= set(params)
    assert [p["parameter_name"] for p in info["named_endpoints"]["/restore"]["parameters"]][0] == "audio"


def test_generate_returns_three_versions_spectrograms_and_table(client):
    result = generate(client, prompt="lofi hip hop beat with mellow piano", duration=2, seed=3)
    assert len(result) == 7
    *audio, mel_in, mel_dm, mel_sg, table = result
    for path, name in zip(audio, ("input.wav", "demucs.wav", "spectral_gating.wav")):
        assert Path(path).name == name
        info = sf.info(path)
        assert info.samplerate == 32000 and info.channels == 1
        assert info.frames == 2 * 32000, (name, info.frames)
        data, _ = sf.read(path, dtype="float32")
        assert np.isfinite(data).all() and np.abs(data).max() > 0
    for path in (mel_in, mel_dm, mel_sg):
        assert_png(path)
    rows = assert_table(table)
    made = rows["How it was made"]
    assert "seed 3" in made[2] and "tiny" in made[2] and "demucs_unittest" in made[3]


def test_random_seed_is_reported(client):
    *_, table = generate(client, prompt="calm acoustic guitar", duration=1, seed=-1)
    made = assert_table(table)["How it was made"][2]
    seed = int(made.split("seed ")[1].split(",")[0])
    assert 0 <= seed < 2**31


def test_restore_uploaded_wav(client, tmp_path):
    path = write(tmp_path / "my song.wav", noisy_chord(2.0, 44100, channels=2), 44100)
    *audio, mel_in, mel_dm, mel_sg, table = restore(client, path)
    for wav in audio:
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.frames) == (44100, 2, 2 * 44100)
    for png in (mel_in, mel_dm, mel_sg):
        assert_png(png)
    rows = assert_table(table, input_column="Input")
    assert "my song.wav" in rows["How it was made"][2]


@pytest.mark.parametrize("fmt, subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_restore_accepts_flac_ogg_mp3(client, tmp_path, fmt, subtype):
    path = tmp_path / f"clip.{fmt}"
    sf.write(str(path), noisy_chord(1.0, 44100, seed=3).T, 44100, format=fmt.upper(), subtype=subtype)
    audio_in, audio_dm, audio_sg, *_, table = restore(client, path)
    frames = sf.info(audio_in).frames
    assert abs(frames - 44100) < 0.05 * 44100  # mp3 adds encoder padding
    assert sf.info(audio_dm).frames == sf.info(audio_sg).frames == frames
    assert f"clip.{fmt}" in assert_table(table, input_column="Input")["How it was made"][2]


# --------------------------------------------------------------------------- bad input


def _not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    return path


def _too_long(tmp_path):
    return write(tmp_path / "long.wav", noisy_chord(MAX_SECONDS + 5, 8000), 8000)


def _too_large(tmp_path):
    # 48 kHz stereo float: 384 kB per second; 4 s is 1.5 MB, over the 1 MB limit but only a few seconds long.
    return write(tmp_path / "large.wav", noisy_chord(4.0, 48000, channels=2), 48000, subtype="FLOAT")


def _silent(tmp_path):
    return write(tmp_path / "silence.wav", np.zeros((1, 16000)), 16000)


def _below_floor(tmp_path):
    return write(tmp_path / "whisper.wav", noisy_chord(1.0, 16000) * 1e-7, 16000, subtype="FLOAT")


def _nan(tmp_path):
    audio = noisy_chord(1.0, 16000)
    audio[0, 100:200] = np.nan
    return write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   \n\t "}, "prompt is empty"),
        ({"prompt": "piano " * 100}, "at most 500"),
        ({"prompt": "piano", "duration": 45}, "maximum value 30"),
        ({"prompt": "piano", "duration": 0.5}, "minimum value 1"),
        ({"prompt": "piano", "duration": 2, "temperature": 0}, "minimum value 0.1"),
    ],
    ids=["empty", "blank", "too-long-prompt", "duration-high", "duration-low", "temperature"],
)
def test_bad_generate_input_gives_clear_error(client, kwargs, fragment):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        generate(client, **kwargs)
    assert fragment.lower() in str(info.value).lower()
    assert "traceback" not in str(info.value).lower()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (_not_audio, "cannot read notes.wav as audio"),
        (_too_long, "longer than the limit"),
        (_too_large, "too large"),
        (_silent, "silent"),
        (_below_floor, "silent"),
        (_nan, "nan"),
    ],
    ids=["not-audio", "too-long", "too-large", "all-zero", "below-120-dbfs", "nan-samples"],
)
def test_bad_upload_gives_clear_error(client, tmp_path, make, fragment):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        restore(client, make(tmp_path))
    assert fragment.lower() in str(info.value).lower(), str(info.value)
    assert "traceback" not in str(info.value).lower()


def test_missing_audio_gives_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="(?i)no audio"):
        client.predict(audio=None, api_name="/restore")


def test_still_serves_after_errors(app, client):
    *audio, _, _, _, table = generate(client, prompt="jazz trio", duration=1, seed=5)
    assert all(Path(p).is_file() for p in audio)
    # every bad input above was a handled error: none took the "unexpected error" path
    assert "unexpected error" not in app.log(), app.log()


# --------------------------------------------------------------------------- serving


def test_three_concurrent_generate_calls_all_succeed(client):
    results, errors = {}, []

    def call(seed):
        try:
            results[seed] = generate(client, prompt="upbeat electronic dance music", duration=1, seed=seed)
        except Exception as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(seed,)) for seed in (101, 102, 103)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert sorted(results) == [101, 102, 103]
    inputs = [sf.read(results[seed][0], dtype="float32")[0] for seed in (101, 102, 103)]
    assert not np.array_equal(inputs[0], inputs[1]) and not np.array_equal(inputs[1], inputs[2])
    for seed in results:
        assert_table(results[seed][-1])


def _stamps(folder: Path) -> dict:
    """(inode, modification time in ns) of every file in a folder."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_identical_request_is_served_from_cache(app, client):
    request = dict(prompt="orchestral film score with strings", duration=2, seed=77, gating="stationary")
    start = time.perf_counter()
    first = generate(client, **request)
    first_s = time.perf_counter() - start
    folders = app.run_folders()
    written = {name: _stamps(app.data_dir / "runs" / name) for name in folders}
    start = time.perf_counter()
    second = generate(client, **request)
    second_s = time.perf_counter() - start
    print(f"first {first_s:.2f} s, cached repeat {second_s:.2f} s")
    assert app.run_folders() == folders, "the repeat made a new run folder"
    # Served from the folder written by the first run: no file of it was written again.
    for name, stamps in written.items():
        after = _stamps(app.data_dir / "runs" / name)
        assert {k: after.get(k) for k in stamps} == stamps, name
    for a, b in zip(first[:6], second[:6]):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    assert first[6] == second[6]
    # a changed setting is a different request
    third = generate(client, **{**request, "gating": "nonstationary"})
    assert Path(third[2]).read_bytes() != Path(first[2]).read_bytes()
    assert len(app.run_folders()) == len(folders) + 1


# --------------------------------------------------------------------------- weights missing


@pytest.fixture(scope="module")
def app_without_weights(tiny_musicgen_dir, tmp_path_factory):
    """The app with neither model loadable: a MusicGen folder that does not exist, an empty Demucs repo."""
    folder = tmp_path_factory.mktemp("app-no-weights")
    empty_repo = folder / "empty-demucs-repo"
    empty_repo.mkdir()
    env = {**tiny_models_env(tiny_musicgen_dir), "MUSICGEN_MODEL": str(folder / "no-such-musicgen"),
           "DEMUCS_MODEL": "no_such_model", "DEMUCS_REPO": str(empty_repo)}
    server = AppServer(folder, env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client_without_weights(app_without_weights, tmp_path_factory):
    from gradio_client import Client

    return Client(app_without_weights.url, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))


def test_generate_without_musicgen_weights_says_how_to_fix(client_without_weights):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        generate(client_without_weights, prompt="lofi beat", duration=1, seed=1)
    message = str(info.value)
    assert "cannot be loaded" in message and "MUSICGEN_MODEL" in message and "Fix" in message


def test_model_status_says_what_is_missing(monkeypatch, tmp_path):
    from restoration.app import presentation

    monkeypatch.setenv("MUSICGEN_MODEL", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("DEMUCS_MODEL", "demucs_unittest")
    monkeypatch.delenv("DEMUCS_REPO", raising=False)
    text = presentation.model_status_markdown(presentation.model_status())
    musicgen, demucs = text.split("\n")
    assert "nothing-here" in musicgen and "not available" in musicgen and "Fix" in musicgen
    assert str(tmp_path) not in text, "a server path leaked into the page"
    assert "demucs_unittest" in demucs and "available" in demucs and "not available" not in demucs


def test_restore_without_demucs_returns_gating_and_says_why(client_without_weights, tmp_path):
    client = client_without_weights
    path = write(tmp_path / "clip.wav", noisy_chord(1.5, 32000), 32000)
    audio_in, audio_dm, audio_sg, mel_in, mel_dm, mel_sg, table = restore(client, path)
    assert audio_dm is None and mel_dm is None
    assert sf.info(audio_sg).frames == sf.info(audio_in).frames == int(1.5 * 32000)
    assert_png(mel_in) and assert_png(mel_sg)
    rows = assert_table(table, input_column="Input", not_run=("Demucs",))
    why = rows["How it was made"][3]
    assert why.startswith("not run:") and "no_such_model" in why and "cannot be loaded" in why
    assert "DEMUCS_REPO" in why or "Fix" in why


def test_participant_page_is_separate_and_blind(app):
    """The participant page lives at /listening/ and its config names no version; the database is not served."""
    with urllib.request.urlopen(app.url + "listening/", timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(app.url + "listening/config", timeout=10) as response:
        config = response.read().decode().lower()
    assert "listening test" in config
    for name in ("demucs", "spectral", "gating", "anchor", "original"):
        assert name not in config, name
    db = app.data_dir / "listening.sqlite3"
    if not db.exists():
        import sqlite3

        sqlite3.connect(db).close()
    assert db.exists()
    for url in (f"{app.url}gradio_api/file={db}", f"{app.url}listening/gradio_api/file={db}"):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status in (403, 404), url

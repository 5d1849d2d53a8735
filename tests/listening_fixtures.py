"""Synthetic clip folders for the listening-test tests (no models needed).

A clip folder is what ``restoration batch`` writes per clip: ``input.wav``, ``demucs.wav``,
``spectral_gating.wav`` (32-bit float, the input's rate and layout) and ``report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from restoration.audio import write_wav

CONDITION_WORDS = ("original", "demucs", "spectral", "gating", "anchor")


def make_clip_folder(folder, *, seed: int, seconds: float = 1.5, sample_rate: int = 16000, genre: str = "jazz",
                     prompt: str | None = None, stereo_demucs: bool = False) -> Path:
    """Write a clip folder: a chord with noise, a 'restored' copy with less noise, a gated quieter copy."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
    music = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3, 5))
    music *= 0.25 * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t))
    noise = rng.standard_normal(t.size) * 0.03
    original = (music + noise).astype(np.float32)[None, :]
    demucs = (music + 0.3 * noise).astype(np.float32)[None, :]
    if stereo_demucs:
        demucs = np.repeat(demucs, 2, axis=0)
    gated = (0.5 * music + 0.05 * noise).astype(np.float32)[None, :]
    write_wav(folder / "input.wav", original, sample_rate)
    write_wav(folder / "demucs.wav", demucs, sample_rate)
    write_wav(folder / "spectral_gating.wav", gated, sample_rate)
    report = {"source": {"prompt": prompt or f"{genre} tune {seed}", "seed": seed, "genre": genre,
                         "model": "synthetic"},
              "sample_rate": sample_rate, "channels": 1, "frames": int(t.size), "duration_s": seconds}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def make_batch(root, *, genres=("jazz", "rock", "folk"), per_genre: int = 2, seconds: float = 1.5,
               sample_rate: int = 16000) -> Path:
    """A ``batch``-style tree: ``clips/<genre>/<NN-slug>/seed<S>/``."""
    root = Path(root)
    seed = 0
    for genre in genres:
        for i in range(per_genre):
            make_clip_folder(root / "clips" / genre / f"{i:02d}-tune" / f"seed{seed}", seed=seed, seconds=seconds,
                             sample_rate=sample_rate, genre=genre)
            seed += 1
    return root


# --------------------------------------------------------------------------- listening, at the store's level


def new_participant_key() -> str:
    """A participant the server issued, as the database knows it (the token's hash)."""
    from restoration.listening import auth

    return auth.known_participant(auth.issue_participant())


def listen_through(step, *, start_s: float | None = None):
    """Record, for every player of ``step``, a play from 0 and a stop at the end one duration later.

    The events carry server times one after another from ``start_s`` (now by default), as if
    each version had been played through in turn; returns ``step``.
    """
    import time as _time

    from restoration.listening import store

    t = _time.time() if start_s is None else start_s
    duration = max(step.duration_s, 0.01)
    for p in step.players:
        store.record_play(p.alias, kind="play", position_s=0.0, at_s=t)
        store.record_play(p.alias, kind="stop", position_s=duration, at_s=t + duration)
        t += duration + 0.01
    return step


def condition_of_alias(alias: str) -> str:
    """The condition behind a participant's alias (server-side knowledge; for tests only)."""
    from restoration.listening import db

    with db.connect() as conn:
        return conn.execute("SELECT st.condition FROM aliases a JOIN stimuli st ON st.id = a.stimulus_id "
                            "WHERE a.alias = ?", (alias,)).fetchone()[0]


# --------------------------------------------------------------------------- a browser-like Gradio client


class GradioPage:
    """Talks to a running Gradio app exactly as its web page does (``/config``, ``queue/join``, SSE).

    Private endpoints (``api_visibility="private"``) are called by ``fn_index``, as the page does;
    every response body is kept in :attr:`responses` for the leak test.
    """

    def __init__(self, base_url: str):
        import httpx
        import secrets as _secrets

        self.base = base_url.rstrip("/")
        self.http = httpx.Client(timeout=60.0)
        self.session_hash = _secrets.token_hex(6)
        self.responses: list[tuple[str, str]] = []
        self.config = self.get_json("/config")
        self.components = {c["id"]: c for c in self.config["components"]}

    def close(self):
        self.http.close()

    def get_text(self, path: str) -> str:
        r = self.http.get(self.base + path)
        self.responses.append((path, r.text))
        r.raise_for_status()
        return r.text

    def get_json(self, path: str):
        return json.loads(self.get_text(path))

    def fn_index(self, *, event: str, label=None, value=None, elem_id=None, api_name=None) -> int:
        """Find a dependency by what triggers it (a component's label, button text or elem_id)."""
        for dep in self.config["dependencies"]:
            if api_name is not None:
                if dep.get("api_name") == api_name:
                    return dep["id"]
                continue
            for target, ev in dep["targets"]:
                if ev != event:
                    continue
                if event == "load" and label is None and value is None and elem_id is None:
                    return dep["id"]
                props = self.components.get(target, {}).get("props", {})
                if ((label is not None and props.get("label") == label)
                        or (value is not None and props.get("value") == value)
                        or (elem_id is not None and props.get("elem_id") == elem_id)):
                    return dep["id"]
        raise LookupError(f"no {event} dependency for label={label} value={value} elem_id={elem_id}")

    def call(self, fn_index: int, data: list, *, event_data=None):
        """Run one event; returns the output list, or raises RuntimeError with the app's error message."""
        dep = next(d for d in self.config["dependencies"] if d["id"] == fn_index)
        body = {"data": data, "event_data": event_data, "fn_index": fn_index,
                "trigger_id": dep["targets"][0][0] if dep["targets"] else None, "session_hash": self.session_hash}
        r = self.http.post(self.base + "/gradio_api/queue/join", json=body)
        self.responses.append(("queue/join", r.text))
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with self.http.stream("GET", self.base + "/gradio_api/queue/data",
                              params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                self.responses.append(("queue/data", line))
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event_id):
                    continue
                if msg.get("msg") == "process_completed":
                    out = msg.get("output") or {}
                    if not msg.get("success", False):
                        raise RuntimeError(out.get("error") or "the app reported an error")
                    return out["data"]
        raise RuntimeError("the stream ended without a result")


# --------------------------------------------------------------------------- servers and participants

ADMIN_TOKEN = "admin-token-for-tests"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ListeningServer:
    """One uvicorn server in this process, laid out like the main app: an organiser page at ``/``
    (the "Listening results" tab) and the participant page mounted at ``/listening`` before start.

    ``standalone=True`` serves the participant page alone at ``/`` instead.
    """

    def __init__(self, *, standalone: bool = False):
        import gradio as gr
        import uvicorn
        from fastapi import FastAPI

        from restoration.listening import admin_ui, ui

        app = FastAPI()
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        if standalone:
            ui.mount_participant_page(app, "")
            self.url = self.origin
            self.organiser_url = None
        else:
            ui.mount_participant_page(app, "/listening")
            with gr.Blocks() as organiser:
                with gr.Tabs():
                    admin_ui.admin_tab()
            gr.mount_gradio_app(app, organiser, path="/", show_error=True)
            self.url = f"{self.origin}/listening"
            self.organiser_url = self.origin
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def start(self) -> "ListeningServer":
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the listening server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def scripted_rating(participant: str, position: int, letter: str) -> int:
    """A rating that depends only on who, which trial and which letter (so the test knows what to expect)."""
    import hashlib

    digest = hashlib.sha256(f"{participant}|{position}|{letter}".encode()).digest()
    return digest[0] % 101


class Participant:
    """One simulated listener driving the page's own endpoints (see :class:`GradioPage`).

    Listening is real time: :meth:`listen` reports a play, waits the sound's duration, and
    reports the stop, through the same route the page's players use.
    """

    def __init__(self, base_url: str, state=None):
        from urllib.parse import urlsplit

        self.page = GradioPage(base_url)
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.state = state if state is not None else {}
        self.last = None
        self.fn = {
            "load": self.page.fn_index(event="load", api_name="_on_load"),
            "start": self.page.fn_index(event="click", value="Start"),
            "panel": self.page.fn_index(event="submit", elem_id="lt-panel"),
            "reveal": self.page.fn_index(event="click", value="Show which version was which"),
        }

    @property
    def participant(self) -> str:
        return self.state["participant"]

    def _apply(self, out):
        self.state = out[0]
        self.last = out
        return out

    def panel(self) -> dict | None:
        return self.last[2].get("value") if self.last else None

    def load(self):
        return self._apply(self.page.call(self.fn["load"], [self.state]))

    def start(self, device="Headphones", experience="None"):
        return self._apply(self.page.call(self.fn["start"], [self.state, device, experience]))

    def send(self, event_data):
        return self._apply(self.page.call(self.fn["panel"], [self.state], event_data=event_data))

    def event(self, player: dict, kind: str, position_s: float, to_s=None) -> dict:
        """Report a play event of ``player`` (a panel entry); returns the server's JSON answer."""
        body = {"kind": kind, "position_s": position_s, **({"to_s": to_s} if to_s is not None else {})}
        r = self.page.http.post(self.origin + player["events"], json=body)
        self.page.responses.append(("events", r.text))
        return r.json()

    def listen(self, player: dict) -> bool:
        """Play ``player`` from start to end in real time; returns the server's "heard"."""
        import time

        duration = float(self.panel()["duration_s"])
        self.event(player, "play", 0.0)
        time.sleep(duration + 0.02)
        return self.event(player, "stop", duration)["heard"]

    def calibrate(self):
        v = self.panel()
        self.event(v["players"][0], "play", 0.0)
        return self.send({"token": v["token"]})

    def rate(self, ratings=None, *, listen=True):
        v = self.panel()
        if listen:
            for p in v["players"]:
                assert self.listen(p), "the server heard a full play"
        letters = [p["letter"] for p in v["players"]]
        position = int(v["title"].split()[1]) if v["title"].startswith("Trial") else 0
        ratings = ratings or {l: scripted_rating(self.participant, position, l) for l in letters}
        return self.send({"token": v["token"], "ratings": ratings})

    def reveal(self):
        return self.page.call(self.fn["reveal"], [self.state])

    def run_to_end(self):
        self.load()
        self.start()
        self.calibrate()
        while self.panel() is not None:
            before = self.panel()["token"]
            self.rate()
            assert self.panel() is None or self.panel()["token"] != before, self.panel().get("error")
        return self

"""The listening test served by Gradio, driven through the same endpoints the web page uses.

Concurrency, storage, blindness (no version name in anything a participant receives), input
validation and the admin token, against a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from listening_fixtures import (ADMIN_TOKEN, CONDITION_WORDS, GradioPage, Participant, free_port,
                                launch_listening_demo, make_batch, scripted_rating)
from restoration.listening import build, store

N_TRIALS = 3
CONDITION_RE = re.compile("|".join(CONDITION_WORDS), re.IGNORECASE)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A neutral folder name: paths reach the browser inside file URLs.
    root = tmp_path_factory.mktemp("lt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", str(root / "data"))
        mp.setenv("LISTENING_ADMIN_TOKEN", ADMIN_TOKEN)
        mp.setenv("LISTENING_SECRET", "fixed-browser-secret")
        make_batch(root / "batch", genres=("jazz", "rock", "folk"), per_genre=2, seconds=1.0)
        info = build.create_test("class", from_dir=root / "batch", n_clips=N_TRIALS)
        # Like app.py: the whole data folder allowed, and no blocked_paths passed.
        demo, url = launch_listening_demo(allowed_paths=[str(root / "data")], blocked_paths=None)
        try:
            yield {"url": url, "root": root, "test": info}
        finally:
            demo.close()


def _ratings_snapshot():
    with store.connect() as conn:
        return (conn.execute("SELECT * FROM ratings ORDER BY id").fetchall(),
                conn.execute("SELECT id, stage, step_nonce FROM sessions ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM presentations ORDER BY session_id, position").fetchall())


def test_twenty_concurrent_participants_complete_every_trial(server):
    n = 20
    people, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            p = Participant(server["url"])
            barrier.wait()
            p.run_to_end()
            people[i] = p
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(p is not None and p.last[3]["visible"] for p in people), "everyone reached the thank-you page"

    ids = [p.participant for p in people]
    with store.connect() as conn:
        sessions = {r["participant"]: dict(r) for r in conn.execute(
            f"SELECT * FROM sessions WHERE participant IN ({','.join('?' * n)})", ids)}
        assert len(sessions) == n and all(s["stage"] == "done" and s["finished_at"] for s in sessions.values())
        sids = [s["id"] for s in sessions.values()]
        marks = ",".join("?" * n)
        rows = conn.execute(f"SELECT * FROM ratings WHERE session_id IN ({marks})", sids).fetchall()
        # exactly one row per session × trial (practice included) × version, nothing more
        assert len(rows) == n * (N_TRIALS + 1) * 4
        assert conn.execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT session_id, trial_id, condition FROM ratings "
                            f"WHERE session_id IN ({marks}))", sids).fetchone()[0] == len(rows)
        assert {r["revision"] for r in rows} == {1}
        by_session = {s["id"]: p for p in people for s in [sessions[p.participant]]}
        for r in rows:
            expected = scripted_rating(by_session[r["session_id"]].participant, r["position"], r["letter"])
            assert r["rating"] == expected
        orders = {tuple(x[0] for x in conn.execute(
            "SELECT trial_id FROM presentations WHERE session_id = ? AND position > 0 ORDER BY position", (sid,)))
            for sid in sids}
        assert len(orders) > 1, "trial order is randomised per participant"
        stored = conn.execute("SELECT COUNT(*) FROM stimuli st JOIN ratings r ON r.stimulus_id = st.id "
                              f"WHERE r.sha256 = st.sha256 AND r.session_id IN ({marks})", sids).fetchone()[0]
        assert stored == len(rows), "every rating carries the hash of the file served"


def _served_urls(texts):
    return sorted(set(re.findall(r"/gradio_api/file=[^\"'\s]+", "\n".join(texts))))


def test_nothing_a_participant_receives_names_a_version(server):
    p = Participant(server["url"])
    page = p.page
    for path in ("/", "/config", "/gradio_api/info", "/theme.css", "/gradio_api/info?all_endpoints=true"):
        try:
            page.get_text(path)
        except Exception:
            pass
    p.run_to_end()
    texts = [t for _, t in page.responses]
    # the audio files: uuid names, 16-bit WAV, the hash stored for them
    urls = _served_urls(texts)
    assert len(urls) == 1 + 4 * (N_TRIALS + 1)
    import hashlib

    with store.connect() as conn:
        hashes = {r[0]: r[1] for r in conn.execute("SELECT file_name, sha256 FROM stimuli")}
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        assert re.fullmatch(r"[0-9a-f]{32}\.wav", name)
        body = page.http.get(server["url"] + url).content
        assert body[:4] == b"RIFF" and hashlib.sha256(body).hexdigest() == hashes[name]
    leaks = [(where, m.group(0)) for where, t in page.responses for m in CONDITION_RE.finditer(t)]
    assert not leaks, leaks[:5]
    assert "input.wav" not in "".join(texts)

    # the public API description (what gradio_client sees) is clean too, and offers no admin endpoint
    from gradio_client import Client

    info = Client(server["url"], verbose=False).view_api(return_format="dict", print_info=False)
    text = json.dumps(info)
    assert not CONDITION_RE.search(text)
    assert "admin" not in text and "_on_" not in text

    # the mapping is revealed only now, after the last trial
    revealed = json.dumps(p.reveal())
    assert "Demucs" in revealed and "Spectral gating" in revealed and "anchor" in revealed.lower()


def test_the_database_and_secret_are_never_served(server):
    from restoration.listening.ui import private_paths

    p = Participant(server["url"])
    p.run_to_end()  # files exist, WAL included
    served = _served_urls([t for _, t in p.page.responses])[0]
    assert p.page.http.get(server["url"] + served).status_code == 200
    db = store.db_path()
    for path in [db, Path(f"{db}-wal"), *map(Path, private_paths())]:
        r = p.page.http.get(f"{server['url']}/gradio_api/file={path}")
        assert r.status_code in (403, 404), (path, r.status_code)


def test_reload_resumes_and_reveal_waits_for_the_end(server):
    p = Participant(server["url"])
    p.load()
    p.start()
    p.calibrate()
    p.rate()  # practice
    first = p.panel()
    assert first["title"] == f"Trial 1 of {N_TRIALS}"
    with pytest.raises(RuntimeError, match="only after the last trial"):
        p.reveal()
    again = Participant(server["url"], state=p.state)  # a reload: a new page, the same browser storage
    again.load()
    assert again.panel() == first


def test_forged_replayed_and_invalid_submissions_change_nothing(server):
    a, b = Participant(server["url"]), Participant(server["url"])
    for p in (a, b):
        p.load()
        p.start()
    calibration_token = a.panel()["token"]
    a.calibrate()
    a.rate()
    b.calibrate()
    b.rate()
    v = a.panel()
    letters = [pl["letter"] for pl in v["players"]]
    good = {"token": v["token"], "ratings": {l: 50 for l in letters}, "played": {l: True for l in letters}}
    before = _ratings_snapshot()
    cases = {
        "rating above 100": {**good, "ratings": {**good["ratings"], "A": 101}},
        "negative rating": {**good, "ratings": {**good["ratings"], "B": -1}},
        "text rating": {**good, "ratings": {**good["ratings"], "C": "50"}},
        "boolean rating": {**good, "ratings": {**good["ratings"], "D": True}},
        "missing version": {**good, "ratings": {l: 50 for l in letters[:3]}},
        "unknown version": {**good, "ratings": {**good["ratings"], "E": 50}},
        "not played": {**good, "played": {**good["played"], "A": False}},
        "replayed step": {**good, "token": calibration_token},
        "another session's trial": {**good, "token": b.panel()["token"]},
        "made-up trial": {**good, "token": "x" * 24},
        "no token": {k: v for k, v in good.items() if k != "token"},
        "not an object": ["A", 50],
    }
    for name, data in cases.items():
        with pytest.raises(RuntimeError) as err:
            a.send(data)
        assert len(str(err.value)) > 10, name
        assert _ratings_snapshot() == before, f"{name} changed the database"
    # without a participant id, or with someone else's unknown id
    for state in ({}, {"participant": "not-a-valid-id"}, {"participant": "Z" * 24}):
        with pytest.raises(RuntimeError):
            a.page.call(a.fn["panel"], [state], event_data=good)
    assert _ratings_snapshot() == before
    a.send(good)  # the genuine submission still goes through …
    with pytest.raises(RuntimeError, match="out of date"):
        a.send(good)  # … once
    assert len(_ratings_snapshot()[0]) == len(before[0]) + 4


def test_admin_endpoints_refuse_without_the_token(server):
    page = GradioPage(server["url"])
    deps = {d["api_name"]: d["id"] for d in page.config["dependencies"]}
    calls = {
        "admin_unlock": lambda tok: [tok, False],
        "admin_show": lambda tok: [tok, "class", False],
        "admin_export": lambda tok: [tok, "class"],
        "admin_activate": lambda tok: [tok, "class"],
        "admin_create_from_folder": lambda tok: [tok, str(server["root"] / "batch"), "forged", 2],
        "admin_create_from_runs": lambda tok: [tok, "forged2", 2],
    }
    attempts = [(api_name, None) for api_name in calls]
    attempts += [("admin_unlock", token) for token in ("", "wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1])]
    for api_name, token in attempts:
        with pytest.raises(RuntimeError, match="Wrong admin token"):
            page.call(deps[api_name], calls[api_name](token))
    assert [t["name"] for t in store.list_tests()] == ["class"]
    leaks = [t for _, t in page.responses if CONDITION_RE.search(t)]
    assert not leaks
    # the on-demand download renders nothing for a participant
    render = next(d["id"] for d in page.config["dependencies"] if d["api_name"] == "apply")
    out = page.call(render, [None])
    assert not CONDITION_RE.search(json.dumps(out))

    # with the token: the results, which do name the versions
    out = page.call(deps["admin_unlock"], [ADMIN_TOKEN, False])
    summary = out[2]
    assert "Demucs" in summary and "Friedman" in summary and "Recruited" in summary
    out = page.call(deps["admin_export"], [ADMIN_TOKEN, "class"])
    assert "Exported" in out[1]


def test_admin_is_off_without_a_configured_token(server, monkeypatch):
    monkeypatch.delenv("LISTENING_ADMIN_TOKEN")
    page = GradioPage(server["url"])
    unlock = next(d["id"] for d in page.config["dependencies"] if d["api_name"] == "admin_unlock")
    for token in ("", ADMIN_TOKEN):
        with pytest.raises(RuntimeError, match="Admin functions are off"):
            page.call(unlock, [token, False])


def _start_server_process(env, port):
    proc = subprocess.Popen([sys.executable, "-m", "restoration.listening.ui"], env={**env, "GRADIO_SERVER_PORT": str(port)},
                            cwd=str(Path(__file__).resolve().parents[1]), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode(errors="replace"))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the listening server did not start in 60 s")


def test_a_crash_mid_test_loses_nothing_and_the_participant_resumes(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt")
    env = {**os.environ, "RESTORATION_DATA_DIR": str(root / "data"), "LISTENING_SECRET": "fixed",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    make_batch(root / "batch", genres=("jazz", "rock"), per_genre=2, seconds=1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", env["RESTORATION_DATA_DIR"])
        build.create_test("restart", from_dir=root / "batch", n_clips=3)
        port = free_port()
        proc = _start_server_process(env, port)
        try:
            p = Participant(f"http://127.0.0.1:{port}")
            p.load()
            p.start()
            p.calibrate()
            p.rate()  # practice
            p.rate()  # trial 1
            before = p.panel()
            assert before["title"] == "Trial 2 of 3"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # a crash: no clean shutdown
            proc.wait(10)
        port = free_port()
        proc = _start_server_process(env, port)
        try:
            again = Participant(f"http://127.0.0.1:{port}", state=p.state)
            again.load()
            after = again.panel()
            assert after["title"] == "Trial 2 of 3" and after["token"] == before["token"]
            assert [x["file"]["orig_name"] for x in after["players"]] == [x["file"]["orig_name"] for x in before["players"]]
            while again.panel() is not None:
                again.rate()
            assert again.last[3]["visible"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        with store.connect() as conn:
            assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 4 * 4
            assert conn.execute("SELECT stage FROM sessions").fetchall()[0][0] == "done"


def test_the_participant_page_mounts_beside_another_app_on_one_server(server):
    """The deployment for a Space: main app at /, the blind page at /listening, one port."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    from restoration.listening.ui import mount_participant_page

    with gr.Blocks() as main:
        gr.Markdown("Demucs vs spectral gating")  # the main app names the versions freely
    app = FastAPI()
    mount_participant_page(app, "/listening")
    gr.mount_gradio_app(app, main, path="/")
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not uv.started and time.time() < deadline:
            time.sleep(0.1)
        p = Participant(f"http://127.0.0.1:{port}/listening")
        p.run_to_end()
        texts = [t for _, t in p.page.responses]
        assert not any(CONDITION_RE.search(t) for t in texts)
        assert all("admin" not in d["api_name"] for d in p.page.config["dependencies"] if d.get("api_name"))
        url = _served_urls(texts)[0]
        assert p.page.http.get(f"http://127.0.0.1:{port}/listening{url}").status_code == 200
        assert p.page.http.get(f"http://127.0.0.1:{port}/listening/gradio_api/file={store.db_path()}").status_code in (403, 404)
    finally:
        uv.should_exit = True
        thread.join(10)

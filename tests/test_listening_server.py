"""The listening test served by Gradio, driven through the same endpoints the web page uses.

Concurrency, storage, blindness (no version name, file name or secret in anything a participant
receives), the server's own check that every version was heard, input validation, the admin
token and the export link, against a real server on 127.0.0.1 laid out like the main app
(organiser page at ``/``, participant page at ``/listening``).
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

from listening_fixtures import (ADMIN_TOKEN, CONDITION_WORDS, GradioPage, ListeningServer, Participant,
                                condition_of_alias, free_port, make_batch, scripted_rating)
from restoration.listening import auth, build, db, store

N_TRIALS = 3
CONDITION_RE = re.compile("|".join(CONDITION_WORDS), re.IGNORECASE)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A neutral folder name: paths reach the browser inside file URLs.
    root = tmp_path_factory.mktemp("lt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", str(root / "data"))
        mp.setenv("LISTENING_ADMIN_TOKEN", ADMIN_TOKEN)
        make_batch(root / "batch", genres=("jazz", "rock", "folk"), per_genre=2, seconds=1.0)
        info = build.create_test("class", from_dir=root / "batch", n_clips=N_TRIALS)
        server = ListeningServer().start()
        try:
            yield {"url": server.url, "origin": server.origin, "organiser": server.organiser_url, "root": root,
                   "test": info}
        finally:
            server.stop()


def _ratings_snapshot():
    with db.connect() as conn:
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

    ids = [auth.participant_key(p.participant) for p in people]
    with db.connect() as conn:
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
        by_session = {sessions[auth.participant_key(p.participant)]["id"]: p for p in people}
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


def _served_sources(texts) -> list[str]:
    """Every sound URL a participant's page was given (the players' ``src``)."""
    return sorted(set(re.findall(r'"src":\s*"([^"]+)"', "\n".join(texts))))


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
    # the sounds: one alias each, 16-bit WAV, the hash stored for the stimulus behind it
    sources = _served_sources(texts)
    assert len(sources) == 1 + 4 * (N_TRIALS + 1)
    import hashlib

    with db.connect() as conn:
        hashes = {r[0]: r[1] for r in conn.execute(
            "SELECT a.alias, st.sha256 FROM aliases a JOIN stimuli st ON st.id = a.stimulus_id")}
    for src in sources:
        alias = re.fullmatch(r"/listening/audio/([A-Za-z0-9_-]{22})", src).group(1)
        body = page.http.get(server["origin"] + src).content
        assert body[:4] == b"RIFF" and hashlib.sha256(body).hexdigest() == hashes[alias]
    leaks = [(where, m.group(0)) for where, t in page.responses for m in CONDITION_RE.finditer(t)]
    assert not leaks, leaks[:5]
    assert "input.wav" not in "".join(texts) and ".wav" not in "".join(texts)

    # the public API description (what gradio_client sees) is clean too, and offers no admin endpoint
    from gradio_client import Client

    info = Client(server["url"], verbose=False).view_api(return_format="dict", print_info=False)
    text = json.dumps(info)
    assert not CONDITION_RE.search(text)
    assert "admin" not in text and "_on_" not in text

    # the mapping is revealed only now, after the last trial
    revealed = json.dumps(p.reveal())
    assert "Demucs" in revealed and "Spectral gating" in revealed and "anchor" in revealed.lower()


def test_the_database_and_the_stimulus_files_are_never_served_by_path(server):
    p = Participant(server["url"])
    p.run_to_end()  # files exist, WAL included
    db_file = db.db_path()
    stimulus = next((db.stimuli_root() / server["test"]["id"]).iterdir())
    for base in (server["url"], server["organiser"]):
        for path in [db_file, Path(f"{db_file}-wal"), stimulus, *map(Path, auth.private_paths())]:
            r = p.page.http.get(f"{base}/gradio_api/file={path}")
            assert r.status_code in (403, 404), (base, path, r.status_code)


def test_two_listeners_get_different_names_for_the_same_stimulus(server):
    a, b = Participant(server["url"]), Participant(server["url"])
    for p in (a, b):
        p.load()
        p.start()
    assert a.panel()["players"][0]["src"] != b.panel()["players"][0]["src"]  # the volume check's sound
    for p in (a, b):
        p.calibrate()
    names = {}
    for who, p in (("a", a), ("b", b)):
        for player in p.panel()["players"]:  # the practice trial: the same clip for both
            alias = player["src"].rsplit("/", 1)[1]
            names[(who, condition_of_alias(alias))] = alias
    for condition in ("original", "demucs", "spectral_gating", "anchor"):
        assert names[("a", condition)] != names[("b", condition)], condition
    assert len(set(names.values())) == 8
    # every alias of every session is distinct, across trials and listeners
    with db.connect() as conn:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT alias) FROM aliases").fetchone()
    assert total == distinct


def test_the_served_headers_carry_nothing_derived_from_the_file(server):
    p = Participant(server["url"])
    p.load()
    p.start()
    p.calibrate()
    players = p.panel()["players"]
    seen = {}
    for player in players:
        r = p.page.http.get(server["origin"] + player["src"])
        assert r.status_code == 200
        headers = {k.lower(): v for k, v in r.headers.items()}
        assert "etag" not in headers and "last-modified" not in headers
        assert headers["cache-control"] == "no-store"
        seen[player["letter"]] = {k: v for k, v in headers.items() if k != "date"}
    assert len({json.dumps(h, sort_keys=True) for h in seen.values()}) == 1, seen
    # a byte range (what a browser asks for to seek) is answered from the same bytes
    full = p.page.http.get(server["origin"] + players[0]["src"]).content
    r = p.page.http.get(server["origin"] + players[0]["src"], headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == full[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(full)}"
    assert p.page.http.get(server["origin"] + players[0]["src"], headers={"Range": "bytes=999999-"}).status_code == 416
    assert p.page.http.get(server["origin"] + "/listening/audio/" + "x" * 22).status_code == 404


def test_a_seek_to_the_end_is_not_listening_and_the_server_refuses_the_rating(server):
    p = Participant(server["url"])
    p.load()
    p.start()
    p.calibrate()
    v = p.panel()
    players = {pl["letter"]: pl for pl in v["players"]}
    duration = float(v["duration_s"])
    for letter in "ABC":
        assert p.listen(players[letter])
    d = players["D"]
    assert p.event(d, "play", 0.0) == {"heard": False}
    time.sleep(0.1)
    assert p.event(d, "seek", 0.1, to_s=duration - 0.05) == {"heard": False}
    time.sleep(0.05)
    assert p.event(d, "stop", duration) == {"heard": False}
    # the page of a cheat claims D was played to the end in another way: a play that starts near the end
    assert p.event(d, "play", duration - 0.05) == {"heard": False}
    time.sleep(0.05)
    assert p.event(d, "stop", duration) == {"heard": False}
    before = _ratings_snapshot()
    p.send({"token": v["token"], "ratings": {l: 50 for l in "ABCD"}})
    assert p.panel()["token"] == v["token"] and "D" in p.panel()["error"] and "to the end" in p.panel()["error"]
    assert [pl["heard"] for pl in p.panel()["players"]] == [True, True, True, False]
    assert _ratings_snapshot() == before
    # events of a step that is not the current one, and malformed ones, are refused
    r = p.page.http.post(server["origin"] + d["events"], json={"kind": "jump", "position_s": 0})
    assert r.status_code == 409
    r = p.page.http.post(server["origin"] + d["events"], content=b"not json")
    assert r.status_code == 400
    # played through, D counts, and the same rating goes in
    assert p.listen(d)
    p.send({"token": v["token"], "ratings": {l: 50 for l in "ABCD"}})
    assert p.panel()["title"].startswith("Trial 1") and not p.panel()["error"]
    old = p.page.http.post(server["origin"] + d["events"], json={"kind": "play", "position_s": 0})
    assert old.status_code == 409, "the practice trial's sounds are no longer on the current step"


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
    assert _same_step(again.panel(), first)


def _same_step(a: dict, b: dict) -> bool:
    """The same panel, apart from the id every answer carries."""
    return {k: v for k, v in a.items() if k != "answer"} == {k: v for k, v in b.items() if k != "answer"}


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
    for player in v["players"]:
        assert a.listen(player)
    letters = [pl["letter"] for pl in v["players"]]
    good = {"token": v["token"], "ratings": {l: 50 for l in letters}}
    before = _ratings_snapshot()
    cases = {
        "rating above 100": {**good, "ratings": {**good["ratings"], "A": 101}},
        "negative rating": {**good, "ratings": {**good["ratings"], "B": -1}},
        "text rating": {**good, "ratings": {**good["ratings"], "C": "50"}},
        "boolean rating": {**good, "ratings": {**good["ratings"], "D": True}},
        "missing version": {**good, "ratings": {l: 50 for l in letters[:3]}},
        "unknown version": {**good, "ratings": {**good["ratings"], "E": 50}},
        "replayed step": {**good, "token": calibration_token},
        "another session's trial": {**good, "token": b.panel()["token"]},
        "made-up trial": {**good, "token": "x" * 24},
        "no token": {k: v for k, v in good.items() if k != "token"},
        "not an object": ["A", 50],
    }
    for name, data in cases.items():
        a.send(data)  # refused: the same step comes back, with the reason
        assert a.panel()["token"] == v["token"], name
        assert len(a.panel()["error"]) > 10, name
        assert _ratings_snapshot() == before, f"{name} changed the database"
    # without a participant id, or with someone else's unknown id
    for state in ({}, {"participant": "not-a-valid-id"}, {"participant": "Z" * 24}):
        with pytest.raises(RuntimeError):
            a.page.call(a.fn["panel"], [state], event_data=good)
    assert _ratings_snapshot() == before
    a.send(good)  # the genuine submission still goes through …
    assert a.panel()["token"] != v["token"] and not a.panel()["error"]
    a.send(good)  # … once
    assert "out of date" in a.panel()["error"]
    assert len(_ratings_snapshot()[0]) == len(before[0]) + 4


def test_admin_endpoints_refuse_without_the_token(server):
    page = GradioPage(server["organiser"])
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
        with pytest.raises(RuntimeError, match="Type the admin token first" if not token else "Wrong admin token"):
            page.call(deps[api_name], calls[api_name](token))
    assert [t["name"] for t in store.list_tests()] == ["class"]
    leaks = [t for _, t in page.responses if CONDITION_RE.search(t)]
    assert not leaks

    # with the token: the results, which do name the versions
    out = page.call(deps["admin_unlock"], [ADMIN_TOKEN, False])
    summary = out[2]
    assert "Demucs" in summary and "Friedman" in summary and "Recruited" in summary

    # the participant page offers no organiser endpoint at all
    participant = GradioPage(server["url"])
    assert not [d for d in participant.config["dependencies"] if "admin" in str(d.get("api_name"))]
    assert "Listening results" not in json.dumps(participant.config)


def test_the_export_link_is_one_time_and_refused_without_the_token(server, tmp_path):
    import csv
    import io

    Participant(server["url"]).run_to_end()
    http = GradioPage(server["url"]).http
    export_base = server["url"] + "/export/"
    # no ticket, a made-up one, a token in place of a ticket: refused
    assert http.get(export_base).status_code in (404, 405)
    for bad in ("x" * 43, ADMIN_TOKEN, "../listening.sqlite3"):
        assert http.get(export_base + bad).status_code in (403, 404), bad
    page = GradioPage(server["organiser"])
    export = next(d["id"] for d in page.config["dependencies"] if d["api_name"] == "admin_export")
    with pytest.raises(RuntimeError, match="Wrong admin token"):
        page.call(export, ["wrong", "class"])
    out = page.call(export, [ADMIN_TOKEN, "class"])
    link = re.search(r"\]\((listening/export/[A-Za-z0-9_-]+)\)", out[0]).group(1)
    r = http.get(f"{server['origin']}/{link}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    with db.connect() as conn:
        assert len(rows) == conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] > 0
    assert {"condition", "rating", "excluded_by"} <= set(rows[0])
    assert http.get(f"{server['origin']}/{link}").status_code == 403, "a ticket works once"
    # nothing was written for it: no CSV in Gradio's cache or the temporary folder
    import tempfile

    roots = [Path(tempfile.gettempdir()), Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir()))]
    assert not [p for root in roots for p in root.rglob("listening-*.csv")]


def test_the_page_and_its_config_hold_no_secret(server):
    p = Participant(server["url"])
    p.load()
    other = Participant(server["url"])
    other.load()
    for path in ("/", "/config", "/gradio_api/info"):
        p.page.get_text(path)
    texts = "\n".join(t for _, t in p.page.responses)
    assert ADMIN_TOKEN not in texts
    assert other.participant not in texts, "another participant's token"
    assert "secret" not in p.page.get_text("/config").lower() or \
        "restoration-listening-public-key" in p.page.get_text("/config")
    # the only key in the page is BrowserState's public one, which guards nothing: the server
    # knows a participant by its token, and stores only the token's hash
    with db.connect() as conn:
        stored = [r[0] for r in conn.execute("SELECT token_sha256 FROM participants")]
    assert auth.participant_key(p.participant) in stored and p.participant not in stored
    assert not list(Path(os.environ["RESTORATION_DATA_DIR"]).glob("*secret*"))
    # a token the server never issued is not taken: the page gets a fresh one
    forged = Participant(server["url"], state={"participant": "Z" * 24})
    forged.load()
    assert forged.participant != "Z" * 24 and auth.known_participant(forged.participant)


def test_refused_calls_log_one_line_and_no_traceback(server, caplog, capfd):
    import logging

    p = Participant(server["url"])
    p.load()
    p.start()
    organiser = GradioPage(server["organiser"])
    unlock = next(d["id"] for d in organiser.config["dependencies"] if d["api_name"] == "admin_unlock")
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="restoration.listening"):
        p.send({"token": "x" * 24})  # stale step
        with pytest.raises(RuntimeError):
            p.page.call(p.fn["panel"], [{"participant": "Z" * 24}], event_data={"token": "x"})  # unknown participant
        with pytest.raises(RuntimeError):
            organiser.call(unlock, ["wrong", False])
        p.page.http.post(server["origin"] + p.panel()["players"][0]["events"], json={"kind": "nope", "position_s": 0})
        p.page.http.get(server["url"] + "/export/" + "y" * 43)
        time.sleep(0.5)
    refused = [r for r in caplog.records if r.name == "restoration.listening" and "refused" in r.getMessage()]
    assert len(refused) == 5, [r.getMessage() for r in refused]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in refused)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


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
    env = {**os.environ, "RESTORATION_DATA_DIR": str(root / "data"),
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
            assert [x["src"] for x in after["players"]] == [x["src"] for x in before["players"]]
            while again.panel() is not None:
                again.rate()
            assert again.last[3]["visible"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        with db.connect() as conn:
            assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 4 * 4
            assert conn.execute("SELECT stage FROM sessions").fetchall()[0][0] == "done"

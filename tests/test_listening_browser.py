"""Listeners in real Chromium: questions, volume check, practice, a scored trial, thank-you, reveal.

The page is served as the main app serves it, at ``/listening/``; one test runs ``python app.py``
itself. Everything the browser receives is recorded: bodies, API streams and the sounds' response
headers. Fails (never skips) when Chromium cannot run: the browser is part of what is tested.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from listening_fixtures import ADMIN_TOKEN, CONDITION_WORDS, ListeningServer, condition_of_alias, make_batch
from restoration.listening import build, db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CONDITION_RE = re.compile("|".join(CONDITION_WORDS), re.IGNORECASE)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", str(root / "data"))
        mp.setenv("LISTENING_ADMIN_TOKEN", ADMIN_TOKEN)
        make_batch(root / "batch", genres=("jazz", "rock"), per_genre=1, seconds=1.0)
        build.create_test("browser", from_dir=root / "batch", n_clips=1)
        server = ListeningServer().start()
        try:
            yield server.url + "/"
        finally:
            server.stop()


def _framework_asset(url: str, body: bytes) -> bool:
    """True for Gradio's own packaged JS/CSS/fonts, byte-identical for every Gradio app."""
    import gradio

    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    if "/assets/" not in url and "/static/" not in url:
        return False
    root = Path(gradio.__file__).parent / "templates"
    return any(p.read_bytes() == body for p in root.rglob(name) if p.is_file())


# Gradio's page reads its API stream (queue/data) with fetch(); Playwright keeps no body for a
# streamed response. This init script records a copy of every fetch() response body, chunk by chunk.
RECORD_FETCH = """
window.__ltLog = [];
const originalFetch = window.fetch;
window.fetch = async function (...args) {
  const response = await originalFetch.apply(this, args);
  try {
    const entry = {url: String((args[0] && args[0].url) || args[0]), text: ''};
    window.__ltLog.push(entry);
    const reader = response.clone().body.getReader();
    const decoder = new TextDecoder();
    (async () => {
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        entry.text += decoder.decode(value, {stream: true});
      }
    })();
  } catch (e) {}
  return response;
};
"""


def _drain_fetch_log(page) -> list[dict]:
    return page.evaluate("() => { const log = window.__ltLog || []; window.__ltLog = []; return log; }")


def _play_to_end(page, key):
    """Play ``key`` and wait until the server says it heard it (the page shows "heard" only then)."""
    page.click(f'.lt-play[data-key="{key}"]')
    page.wait_for_function(
        f"() => document.querySelector('.lt-state[data-key=\"{key}\"]').textContent.includes('heard')", timeout=20000)


def _rate(page, key, fraction):
    box = page.locator(f'.lt-slider[data-key="{key}"]').bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    return int(page.inner_text(f'.lt-value[data-key="{key}"]'))


def _next_enabled(page) -> bool:
    return not page.is_disabled(".lt-next")


def _launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # no skip: must run


def _answer_questions(page):
    page.get_by_label("Headphones").check()
    page.get_by_label("None").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=Volume check", timeout=30000)
    page.click(".lt-play")
    page.wait_for_function("() => !document.querySelector('.lt-next').disabled", timeout=20000)
    page.click(".lt-next")


def _complete_trial(page, title):
    page.wait_for_selector(f"text={title}", timeout=30000)
    for key in "ABCD":
        _play_to_end(page, key)
        _rate(page, key, 0.3)
    assert _next_enabled(page)
    page.click(".lt-next")


def _sound_responses(finished):
    """(alias, response headers) of every sound the page fetched."""
    out = []
    for request in finished:
        m = re.search(r"/listening/audio/([A-Za-z0-9_-]+)$", request.url)
        response = request.response()
        if m and response is not None:
            out.append((m.group(1), {k.lower(): v for k, v in response.all_headers().items()}))
    return out


def test_one_listener_completes_a_trial_in_chromium(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = _launch(pw)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            context.add_init_script(RECORD_FETCH)
            finished = []  # every request whose response has fully arrived (an open heartbeat stream never does)
            page.on("requestfinished", lambda request: finished.append(request))
            fetched = []  # what the page's fetch() calls received, streams included
            page.goto(server)

            # the questions must be answered
            page.get_by_role("button", name="Start").click()
            page.get_by_text("tell us whether you listen on headphones").wait_for(timeout=20000)
            page.get_by_label("Headphones").check()
            page.get_by_label("None").check()
            page.get_by_role("button", name="Start").click()

            # volume check: the button unlocks once the server has seen the sound play
            page.wait_for_selector("text=Volume check", timeout=20000)
            assert not _next_enabled(page)
            page.click(".lt-play")
            page.wait_for_function("() => !document.querySelector('.lt-next').disabled", timeout=20000)
            page.click(".lt-next")

            # practice trial: players A–D, sliders without a value, one plays at a time
            page.wait_for_selector("text=Practice trial (not scored)", timeout=20000)
            assert page.locator("audio").count() == 4
            assert page.locator(".lt-slider.lt-unset").count() == 4
            assert page.locator(".lt-value").all_inner_texts() == ["–"] * 4
            assert page.locator(".lt-slider[aria-valuenow]").count() == 0, "no value before the listener sets one"
            page.click('.lt-play[data-key="A"]')
            page.wait_for_function("() => !document.querySelector('audio[data-key=\"A\"]').paused")
            page.click('.lt-play[data-key="B"]')
            page.wait_for_function("() => !document.querySelector('audio[data-key=\"B\"]').paused")
            assert page.evaluate("() => document.querySelector('audio[data-key=\"A\"]').paused")
            page.wait_for_function(
                "() => document.querySelector('.lt-state[data-key=\"B\"]').textContent.includes('heard')",
                timeout=20000)
            for key in "ACD":
                _play_to_end(page, key)
            # a first click in the very middle is a rating of 50, like any other
            assert _rate(page, "A", 0.5) == 50
            assert page.get_attribute('.lt-slider[data-key="A"]', "aria-valuenow") == "50"
            assert not _next_enabled(page), "Next waits for every slider"
            for i, key in enumerate("BC"):
                _rate(page, key, 0.4 + 0.2 * i)
                assert not _next_enabled(page), "Next waits for every slider"
            _rate(page, "D", 0.9)
            assert _next_enabled(page)
            page.click(".lt-next")

            # a reload resumes where the listener stopped
            page.wait_for_selector("text=Trial 1 of 1", timeout=20000)
            fetched += _drain_fetch_log(page)
            page.reload()
            page.wait_for_selector("text=Trial 1 of 1", timeout=20000)
            assert page.locator(".lt-slider.lt-unset").count() == 4

            # the scored trial: rate before playing is not enough
            given = {key: _rate(page, key, f) for key, f in zip("ABCD", (0.15, 0.55, 0.75, 0.35))}
            assert not _next_enabled(page), "Next waits until every version was played to the end"
            for key in "ABC":
                _play_to_end(page, key)

            # D: a jump to the end is not listening; Next stays locked, and the server refuses it anyway
            page.click('.lt-play[data-key="D"]')
            page.wait_for_function("() => !document.querySelector('audio[data-key=\"D\"]').paused")
            box = page.locator('.lt-bar[data-key="D"]').bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.97, box["y"] + box["height"] / 2)
            page.wait_for_function("() => document.querySelector('audio[data-key=\"D\"]').ended", timeout=20000)
            page.wait_for_timeout(1500)  # the server's answers to the play events have arrived
            assert "heard" not in page.inner_text('.lt-state[data-key="D"]')
            assert not _next_enabled(page), "a seek to the end does not unlock Next"
            page.evaluate("() => { document.querySelector('.lt-next').disabled = false; }")
            page.click(".lt-next")  # a participant who unlocks the button by hand
            page.wait_for_function(
                "() => document.querySelector('.lt-error').textContent.includes('to the end')", timeout=20000)
            assert "D" in page.inner_text(".lt-error")
            assert not _next_enabled(page), "the refusal locks Next again"
            with db.connect() as conn:
                assert conn.execute("SELECT COUNT(*) FROM ratings WHERE position = 1").fetchone()[0] == 0
            assert page.inner_text('.lt-value[data-key="D"]') == str(given["D"]), "the ratings are kept"

            _play_to_end(page, "D")
            assert _next_enabled(page)
            page.wait_for_timeout(400)  # let the button's colour transition finish
            page.screenshot(path=str(ARTIFACTS / "listening-trial.png"), full_page=True)
            dom = page.content()
            page.click(".lt-next")
            page.wait_for_selector("text=Thank you for listening", timeout=20000)
            page.wait_for_timeout(300)
            fetched += _drain_fetch_log(page)
            page.screenshot(path=str(ARTIFACTS / "listening-done.png"), full_page=True)

            # nothing received so far names a version: pages, config, API stream, sounds
            seen = set()
            for request in list(finished):
                r = request.response()
                if r is None:
                    continue
                assert not CONDITION_RE.search(r.url), r.url
                ctype = (r.headers.get("content-type") or "").lower()
                if "audio" in ctype:
                    assert re.search(r"/listening/audio/[A-Za-z0-9_-]{22}$", r.url), r.url
                    continue
                try:
                    body = r.body()
                except Exception:  # redirects and the like carry no body
                    continue
                if not any(t in ctype for t in ("text", "json", "javascript", "css", "event-stream")):
                    continue
                if _framework_asset(r.url, body):
                    continue
                text = body.decode("utf-8", errors="replace")
                assert not CONDITION_RE.search(text), (r.url, CONDITION_RE.search(text).group(0))
                assert ADMIN_TOKEN not in text, r.url
                if r.url.rstrip("/") == server.rstrip("/") and "lt-panel" in text:
                    seen.add("page with its config")
            for entry in fetched:
                assert not CONDITION_RE.search(entry["url"] + entry["text"]), entry["url"]
                if "/queue/data" in entry["url"] and '"players"' in entry["text"]:
                    seen.add("API responses with the trials")
            assert seen == {"page with its config", "API responses with the trials"}, seen
            assert not CONDITION_RE.search(dom)
            assert page.locator("a[download]").count() == 0

            # the sounds' response headers: nothing in them orders a trial's files by condition
            sounds = _sound_responses(finished)
            by_trial = {}
            with db.connect() as conn:
                for alias, headers in sounds:
                    trial, letter = conn.execute("SELECT trial_id, letter FROM aliases WHERE alias = ?",
                                                 (alias,)).fetchone()
                    if letter:
                        by_trial.setdefault(trial, {}).setdefault(condition_of_alias(alias), []).append(headers)
            assert len(by_trial) == 2 and all(len(c) == 4 for c in by_trial.values()), by_trial.keys()
            for conditions in by_trial.values():
                for headers in (h for hs in conditions.values() for h in hs):
                    assert "etag" not in headers and "last-modified" not in headers, headers
                    assert headers["cache-control"] == "no-store"
                # every header that could carry a property of the file has one value for the whole trial
                # (date is the time of the response; a range's bounds are what the browser asked for)
                for name in {n for hs in conditions.values() for h in hs for n in h} - {"date", "content-range",
                                                                                        "content-length"}:
                    values = {h.get(name) for hs in conditions.values() for h in hs}
                    assert len(values) == 1, (name, values)
                sizes = {h["content-range"].rsplit("/", 1)[1] if "content-range" in h else h["content-length"]
                         for hs in conditions.values() for h in hs}
                assert len(sizes) == 1, sizes

            # the mapping is shown only now
            page.get_by_role("button", name="Show which version was which").click()
            page.get_by_text("Demucs (sum of separated stems)").first.wait_for(timeout=20000)
            # positive control: the recorder does see version names once the page is sent some
            assert any(CONDITION_RE.search(e["text"]) for e in _drain_fetch_log(page))
        finally:
            browser.close()

    with db.connect() as conn:
        rows = conn.execute("SELECT r.letter, r.rating FROM ratings r WHERE r.position = 1").fetchall()
        assert {r["letter"]: r["rating"] for r in rows} == given
        assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 8
        assert conn.execute("SELECT stage FROM sessions").fetchone()[0] == "done"


def _start_app(folder: Path, env: dict, timeout_s: float = 180.0):
    """``python app.py`` as ``make run`` and a Space start it; returns (process, base URL ending in /)."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from listening_fixtures import free_port

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(folder / "gradio"), "PYTHONUNBUFFERED": "1", **env}
    log = (folder / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=Path(__file__).resolve().parents[1], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((folder / "app.log").read_text())
        try:
            with urllib.request.urlopen(url + "listening/config", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"app.py did not serve /listening/ within {timeout_s:g} s:\n{(folder / 'app.log').read_text()}")


def test_the_app_mounted_page_completes_a_trial_in_chromium(tiny_musicgen_dir, tmp_path):
    """The link the app gives a class: /listening/ of ``python app.py`` runs a whole test in Chromium."""
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    make_batch(tmp_path / "batch", genres=("jazz", "rock"), per_genre=1, seconds=1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", str(data))
        build.create_test("app-class", from_dir=tmp_path / "batch", n_clips=1)
    proc, url = _start_app(tmp_path, {"RESTORATION_DATA_DIR": str(data), "MUSICGEN_MODEL": str(tiny_musicgen_dir),
                                      "DEMUCS_MODEL": "demucs_unittest", "LISTENING_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        with sync_playwright() as pw:
            browser = _launch(pw)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                # the main page's "Listening test" tab links to the participant page
                page.goto(url)
                page.get_by_role("tab", name="Listening test").click()
                link = page.get_by_role("link", name="open the participant page")
                assert link.get_attribute("href").rstrip("/").endswith("listening")
                page.goto(url + "listening/")
                _answer_questions(page)
                _complete_trial(page, "Practice trial (not scored)")
                _complete_trial(page, "Trial 1 of 1")
                page.wait_for_selector("text=Thank you for listening", timeout=30000)
                assert page.locator("text=Listening results").count() == 0, "participants see only the test"
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESTORATION_DATA_DIR", str(data))
        with db.connect() as conn:
            assert conn.execute("SELECT stage FROM sessions").fetchone()[0] == "done"
            assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 8

"""The app in a real browser: Playwright drives Debian's Chromium against ``python app.py``.

It types a prompt, clicks Generate and waits until the three players hold audio, the three
spectrograms show and the metrics table is filled; it saves screenshots to
``test-artifacts/``. It also checks the layout at 1280 px (the table never scrolls
sideways) and at 400 px (nothing overflows; the columns stack), the Stop button, the
loudness toggle and "Add to listening test".

These tests fail, never skip, when Chromium cannot run (``make test`` installs it).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from test_app_api import AppServer, tiny_models_env

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VERSIONS = ("input", "demucs", "spectral_gating")
PROMPT = "smooth jazz trio with upright bass and brushed drums"
SEED = "1234"
RESULT_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def app(tiny_musicgen_dir, tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("browser-app"), tiny_models_env(tiny_musicgen_dir)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (make test does)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # a browser test that cannot run must fail, not skip
            pytest.fail(f"Chromium cannot run: {exc}")
        yield chromium
        chromium.close()


def open_page(browser, app, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.goto(app.url)
    page.wait_for_selector("#prompt textarea")
    page.wait_for_function("!document.querySelector('#model-status').innerText.includes('Checking')")
    return page


def audio_href(page, version: str, panel: str = "gen"):
    return page.evaluate(f"document.querySelector('.{panel}-player-{version} a[download]')?.href ?? null")


def results_shown(page, panel: str = "gen") -> bool:
    """Three players hold audio, three spectrograms and the spectrum are drawn, the table is filled."""
    return page.evaluate(
        """(panel) => {
            const loaded = img => img?.complete && img.naturalWidth > 0;
            const players = ['input', 'demucs', 'spectral_gating'].every(
                v => document.querySelector(`.${panel}-player-${v} a[download]`)?.href);
            const mels = ['input', 'demucs', 'spectral_gating'].every(
                v => loaded(document.querySelector(`.${panel}-mel-${v} img`)));
            const spectrum = loaded(document.querySelector(`.${panel}-spectrum img`));
            const table = document.querySelector(`.${panel}-metrics table`);
            const rows = table ? table.querySelectorAll('tbody tr').length : 0;
            return players && mels && spectrum && rows >= 12 && table.innerText.includes('Integrated loudness');
        }""",
        panel,
    )


def wait_for_results(page, start: float, panel: str = "gen") -> tuple[float | None, float]:
    """Poll until the results show; return (seconds to the first Input audio, seconds to full results)."""
    first_sound_s = None
    while time.perf_counter() - start < RESULT_TIMEOUT_MS / 1000:
        if first_sound_s is None and audio_href(page, "input", panel):
            first_sound_s = time.perf_counter() - start
        if results_shown(page, panel):
            return first_sound_s, time.perf_counter() - start
        errors = page.locator(".toast-body.error")
        if errors.count():
            pytest.fail(f"the page showed an error: {errors.first.inner_text()}")
        page.wait_for_timeout(100)
    pytest.fail("the results did not appear")


def generate_and_wait(page, *, prompt=PROMPT, seed=SEED):
    page.fill("#prompt textarea", prompt)
    page.fill("#seed input", seed)
    page.press("#seed input", "Tab")
    start = time.perf_counter()
    page.click("#generate-btn")
    return wait_for_results(page, start)


def no_horizontal_overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def assert_table_fits(page, panel: str = "gen"):
    """Neither the table nor anything around it is wider than its container, so nothing scrolls sideways."""
    overflowing = page.evaluate(
        """(panel) => {
            const box = document.querySelector(`.${panel}-metrics`);
            const table = box.querySelector('table');
            const limit = box.getBoundingClientRect().right + 1;
            return [box, ...box.querySelectorAll('*')]
                .filter(el => el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > limit)
                .map(el => `${el.tagName}.${el.className} ${el.scrollWidth}>${el.clientWidth}`)
                .concat(table.getBoundingClientRect().width > box.getBoundingClientRect().width + 1 ? ['table'] : []);
        }""",
        panel,
    )
    assert not overflowing, overflowing


def test_generate_shows_three_versions(browser, app):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_page(browser, app, 1280)
    assert "MusicGen" in page.inner_text("#model-status") and "available" in page.inner_text("#model-status")
    first_sound_s, done_s = generate_and_wait(page)
    print(f"Generate → first sound {first_sound_s:.1f} s, full results {done_s:.1f} s")
    # the raw MusicGen audio streamed into the Input player before the restorations were ready
    assert first_sound_s is not None and first_sound_s < done_s
    for version in VERSIONS:
        assert audio_href(page, version).endswith(".wav")
    assert f"seed {SEED}" in page.inner_text("#gen-status")
    assert page.input_value("#seed-used textarea, #seed-used input") == SEED
    table_text = page.inner_text(".gen-metrics")
    for word in ("Integrated loudness", "Mean spectral flatness", "Input (MusicGen)", "Demucs", "Spectral gating"):
        assert word in table_text
    assert "nan" not in table_text.lower().split()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "app_generate.png"), full_page=True)

    # 1280 px: neither the page nor the metrics table scrolls sideways
    scroll_width, inner_width = no_horizontal_overflow(page)
    assert scroll_width <= inner_width, (scroll_width, inner_width)
    assert_table_fits(page)

    # the loudness toggle swaps the players to the raw-level files
    matched_href = audio_href(page, "demucs")
    page.click(".gen-matched input[type=checkbox]")
    page.wait_for_function(f"document.querySelector('.gen-player-demucs a[download]')?.href !== {matched_href!r}")
    page.click(".gen-matched input[type=checkbox]")
    page.wait_for_function(f"document.querySelector('.gen-player-demucs a[download]')?.href === {matched_href!r}")

    # "Add to listening test" answers with a message, not an error
    page.click("#listen-btn")
    page.wait_for_function("document.querySelector('#listen-btn').nextElementSibling?.innerText.trim().length > 0"
                           " || document.querySelectorAll('.toast-body').length > 0")
    assert page.locator(".toast-body.error").count() == 0
    page.close()


def test_phone_width_stacks_columns_without_overflow(browser, app):
    page = open_page(browser, app, 400, 900)
    generate_and_wait(page)  # the same request as above: served from the cache
    assert "Served from the cache" in page.inner_text("#gen-status")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "app_generate_400px.png"), full_page=True)
    scroll_width, inner_width = no_horizontal_overflow(page)
    assert scroll_width <= inner_width, (scroll_width, inner_width)
    boxes = [page.locator(f".gen-player-{v}").bounding_box() for v in VERSIONS]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], boxes  # stacked, not side by side
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= inner_width + 1, box
    assert_table_fits(page)
    page.close()


def test_stop_really_stops(browser, app):
    page = open_page(browser, app, 1280)
    before = app.run_folders()
    page.fill("#prompt textarea", "epic cinematic orchestral score with choir")
    page.fill("#duration input[type=number]", "30")
    page.press("#duration input[type=number]", "Tab")
    page.fill("#seed input", "99")
    page.press("#seed input", "Tab")
    page.click("#generate-btn")
    page.wait_for_function("document.querySelector('#gen-status').innerText.includes('Generating')"
                           " || document.querySelector('.gen-player-input a[download]')", timeout=120_000)
    page.click("#stop-btn")
    page.wait_for_function("document.querySelector('#gen-status').innerText.includes('Stopped')", timeout=15_000)
    # A short request now runs at once. Runs are serialized, so had the 30 s one gone on,
    # it would have finished (and written its run folder) first.
    page.fill("#duration input[type=number]", "1")
    page.press("#duration input[type=number]", "Tab")
    page.fill("#prompt textarea", "short piano phrase")
    generate_and_wait(page, prompt="short piano phrase", seed="98")
    assert len(app.run_folders() - before) == 1, "the stopped run was completed and saved anyway"
    page.close()


def test_restore_tab_and_about(browser, app):
    page = open_page(browser, app, 1280)
    page.get_by_role("tab", name="About").click()
    about = page.get_by_text("Keeping the comparison fair")
    about.wait_for()
    assert page.get_by_text("HTDemucs").first.is_visible()
    page.get_by_role("tab", name="Restore your own audio").click()
    example = page.get_by_text("Noisy sine chord (−40 dBFS hiss)")
    example.wait_for()
    example.click()
    page.wait_for_function("document.querySelector('#upload a[download]')")
    page.click("#restore-btn")
    wait_for_results(page, time.perf_counter(), panel="restore")
    assert "Done" in page.inner_text("#restore-status")
    assert "noisy_sine_chord.wav" in page.inner_text(".restore-metrics")
    assert page.locator(".toast-body.error").count() == 0
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "app_restore.png"), full_page=True)
    page.close()

"""The app in a real browser: Playwright drives Debian's Chromium against ``python app.py``.

What a new user meets, at 1400 px (a laptop) and 400 px (a phone), with the tiny stand-in models:

1. **A verdict**: after Generate, plain sentences above the players say which version has the most
   high-band energy, which is least noise-like and which changed the clip most; the table marks the
   better value of each comparable row, no value reads 0.000, and the context rows and "How it was
   made" sit in a details section.
2. **Layout**: every tab fits the window with no sideways scroll and does not collapse; progress and
   the stage appear in one place, named at each step, with percentages that never go back; no blank
   result boxes before the first run; results are cleared when the input changes.
3. **Errors shown once**, in plain words, with no server path: Generate is disabled while the prompt
   is empty; a text file or a broken mp3 upload; Stop does nothing visible when idle, and after a real
   Stop the partial audio is gone.
4. **Accessible**: axe-core (``axe-playwright-python``) finds no serious or critical violation on any
   tab at either width, the participant page included; figures have alt text, players and buttons
   have names.

Screenshots of every tab at both widths go to ``test-artifacts/`` as ``app_<tab>_<width>px.png``
(``app_generate_results_<width>px.png`` with results). These tests fail, never skip, when Chromium
cannot run (``make test`` installs it).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from axe_playwright_python.sync_playwright import Axe
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
WIDTHS = (1400, 400)
#: The tabs a user meets first; every other tab the page has (found at run time) is checked too.
KNOWN_TABS = ("Generate & compare", "Restore your own audio", "Listening test", "Listening results", "About")
BLOCKING_IMPACTS = ("serious", "critical")
#: A JavaScript function: is the element of this selector absent or not displayed?
HIDDEN = "(selector => { const el = document.querySelector(selector); return !el || el.offsetParent === null; })"


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


# --------------------------------------------------------------------------- helpers


def open_page(browser, app, width: int, height: int = 900, path: str = ""):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.goto(app.url + path)
    if not path:
        page.wait_for_selector("#prompt textarea, #prompt input")
        page.wait_for_function("!document.querySelector('#model-status').innerText.includes('Checking')")
    return page


def prompt_box(page):
    return page.locator("#prompt textarea, #prompt input").first


def tab_labels(page) -> list[str]:
    """The labels of every tab, those folded into Gradio's "More tabs" menu included."""
    labels = page.evaluate("[...document.querySelectorAll('button[role=tab]')].map(b => b.innerText.trim())")
    more = page.get_by_role("button", name="More tabs")
    if more.count() and more.first.is_visible():
        more.first.click()
        page.wait_for_selector(".overflow-dropdown button")
        labels += page.evaluate("[...document.querySelectorAll('.overflow-dropdown button')]"
                                ".map(b => b.innerText.trim())")
        more.first.click()  # close the menu again
        page.wait_for_timeout(300)
    return list(dict.fromkeys(label for label in labels if label))


def show_tab(page, label: str) -> None:
    """Open a tab by its label; at 400 px Gradio folds some tabs into its "More tabs" menu."""
    tab = page.locator(f"button[role=tab]:text-is({label!r})")
    if tab.count() and tab.first.is_visible():
        tab.first.click()
    else:
        page.get_by_role("button", name="More tabs").first.click()
        page.locator(f".overflow-dropdown button:text-is({label!r})").first.click()
    page.wait_for_timeout(400)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_").replace("generate_compare", "generate")


def visible_tab_panel_text(page) -> str:
    return page.evaluate("[...document.querySelectorAll('[role=tabpanel]')].filter(p => p.offsetParent)"
                         ".map(p => p.innerText).join('\\n')")


def assert_fits(page, where: str, *, main_page: bool = True) -> None:
    """No sideways scroll; on the main page the container neither collapses nor overflows the window."""
    scroll_width, inner_width, container = page.evaluate(
        "[document.scrollingElement.scrollWidth, window.innerWidth,"
        " document.querySelector('.gradio-container')?.getBoundingClientRect().width ?? null]")
    assert scroll_width <= inner_width, f"{where}: the page scrolls sideways ({scroll_width} > {inner_width} px)"
    if main_page:
        expected = min(inner_width, 1280)
        assert container >= 0.9 * expected - 40, f"{where}: the container collapsed to {container:.0f} px"
        assert container <= inner_width + 1, f"{where}: the container is {container:.0f} px wide"


def assert_accessible(page, where: str) -> None:
    """axe-core: no serious or critical violation; the full report goes to test-artifacts/ when one is found."""
    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        report = ARTIFACTS / f"axe_{re.sub(r'[^a-z0-9]+', '_', where.lower())}.json"
        report.write_text(json.dumps(blocking, indent=1))
    assert not blocking, f"{where}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in blocking)


def screenshot(page, name: str) -> None:
    """A full-page screenshot; the page is scrolled through first, so lazily loaded figures are drawn."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("""async () => {
        for (let y = 0; y < document.body.scrollHeight; y += 400) {
            window.scrollTo(0, y); await new Promise(done => setTimeout(done, 60));
        }
        window.scrollTo(0, 0);
    }""")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def error_texts(page) -> list[str]:
    """Every error the page shows: toasts, and red "Error" badges on components."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.toast-body.error, .toast-body.warning, .error, [data-testid="error"]')]
            .filter(el => el.offsetParent !== null || el.closest('.toast-wrap'))
            .map(el => el.innerText.trim()).filter(Boolean)""")


def wait_for_one_error(page, timeout_s: float = 60.0) -> str:
    """Wait for an error toast; return its text once the page has settled, asserting it is the only error shown."""
    page.wait_for_selector(".toast-body.error, .toast-body.warning", timeout=timeout_s * 1000)
    page.wait_for_timeout(800)  # badges, if any, appear with the toast
    texts = error_texts(page)
    toasts = page.locator(".toast-body.error, .toast-body.warning")
    assert toasts.count() == 1, f"{toasts.count()} toasts: {texts}"
    badges = page.evaluate("[...document.querySelectorAll('.error')].filter(e => e.offsetParent !== null"
                           " && !e.closest('.toast-wrap') && e.innerText.trim() === 'Error').length")
    assert badges == 0, f"{badges} red Error badges besides the toast: {texts}"
    text = toasts.first.inner_text()
    assert "/tmp" not in text and "gradio" not in text.lower() and "Traceback" not in text, text
    return text


def close_toasts(page) -> None:
    for button in page.locator(".toast-close").all():
        try:
            button.click(timeout=2000)
        except Exception:
            pass
    page.wait_for_timeout(300)


def audio_href(page, version: str, panel: str = "gen"):
    return page.evaluate(f"document.querySelector('.{panel}-player-{version} a[download]')?.href ?? null")


def results_state(page, panel: str = "gen") -> dict:
    """Which parts of the results are there: players with audio, drawn spectrograms and spectrum, table, verdict."""
    return page.evaluate(
        """(panel) => {
            // a figure is shown once its <img> has a source (below the fold on a phone it loads lazily)
            const loaded = img => !!img?.getAttribute('src');
            const players = ['input', 'demucs', 'spectral_gating'].every(
                v => document.querySelector(`.${panel}-player-${v} a[download]`)?.href);
            const mels = ['input', 'demucs', 'spectral_gating'].every(
                v => loaded(document.querySelector(`.${panel}-mel-${v} img`)));
            const spectrum = loaded(document.querySelector(`.${panel}-spectrum img`));
            const table = document.querySelector(`.${panel}-metrics table`);
            const verdict = document.querySelector(`#${panel}-verdict`)?.innerText ?? '';
            return {players, mels, spectrum, table: !!table, verdict: verdict.includes('noise-like')};
        }""",
        panel,
    )


def results_shown(page, panel: str = "gen") -> bool:
    """Verdict, three players with audio, three spectrograms, the spectrum and the table are shown."""
    return all(results_state(page, panel).values())


def progress_text(page, panel: str) -> str:
    return page.evaluate(f"document.querySelector('#{panel}-progress .run-progress')?.innerText ?? ''")


def watch_progress(page, panel: str) -> None:
    """Record, in the page, every text the progress place shows and how many other progress widgets are visible."""
    page.evaluate(
        """(panel) => {
            window.__progress = []; window.__otherProgress = [];
            const place = document.querySelector(`#${panel}-progress`);
            const record = () => {
                const text = place.querySelector('.run-progress')?.innerText.trim();
                if (text && window.__progress.at(-1) !== text) window.__progress.push(text);
                const others = [...document.querySelectorAll('.progress-text, .eta-bar, .progress-level, .meta-text')]
                    .filter(e => e.offsetParent !== null && getComputedStyle(e).opacity !== '0'
                                 && !place.contains(e));
                for (const e of others) {
                    const where = `${e.className} in ${e.closest('[id]')?.id}: ${e.innerText.trim().slice(0, 40)}`;
                    if (!window.__otherProgress.includes(where)) window.__otherProgress.push(where);
                }
            };
            new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
        }""",
        panel,
    )


def seen_progress(page) -> tuple[list[str], list[str]]:
    return page.evaluate("[window.__progress, window.__otherProgress]")


def wait_for_results(page, panel: str = "gen") -> float:
    """Poll until the results show; return the seconds taken."""
    start = time.perf_counter()
    while time.perf_counter() - start < RESULT_TIMEOUT_MS / 1000:
        if results_shown(page, panel):
            return time.perf_counter() - start
        errors = page.locator(".toast-body.error")
        if errors.count():
            pytest.fail(f"the page showed an error: {errors.first.inner_text()}")
        page.wait_for_timeout(50)
    pytest.fail(f"the results did not appear: {results_state(page, panel)}; progress: {progress_text(page, panel)!r}")


def set_number(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.press(selector, "Tab")


def generate_and_wait(page, *, prompt=PROMPT, seed=SEED, duration="2", watch=False) -> float:
    prompt_box(page).fill(prompt)
    set_number(page, "#duration input[type=number]", duration)
    set_number(page, "#seed input", seed)
    page.wait_for_function("!document.querySelector('#generate-btn').disabled")
    if watch:
        watch_progress(page, "gen")
    page.click("#generate-btn")
    return wait_for_results(page)


def result_boxes_visible(page, panel: str) -> int:
    """How many result widgets (players, images, table, verdict) are on screen."""
    return page.evaluate(
        """(panel) => [...document.querySelectorAll(
               `[class*="${panel}-player-"], [class*="${panel}-mel-"], .${panel}-spectrum, .${panel}-metrics, #${panel}-verdict`)]
            .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height > 0).length""",
        panel,
    )


def write_noisy_chord(path: Path, seconds: float = 2.0, sample_rate: int = 32000) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 440.0)) / 3
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.01
    sf.write(str(path), (tone + noise).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- 2 + 4: every tab, both widths


@pytest.mark.parametrize("width", WIDTHS)
def test_every_tab_fits_and_is_accessible(browser, app, width):
    page = open_page(browser, app, width)
    labels = tab_labels(page)
    assert set(KNOWN_TABS) <= set(labels), labels
    for label in labels:
        show_tab(page, label)
        assert visible_tab_panel_text(page).strip(), f"tab {label} shows nothing"
        where = f"{label} at {width} px"
        assert_fits(page, where)
        assert_accessible(page, where)
        screenshot(page, f"app_{slug(label)}_{width}px")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_participant_page_fits_and_is_accessible(browser, app, width):
    page = open_page(browser, app, width, path="listening/")
    page.wait_for_function("document.body.innerText.trim().length > 40")
    page.wait_for_timeout(1000)
    assert_fits(page, f"participant page at {width} px", main_page=False)
    assert_accessible(page, f"participant page at {width} px")
    screenshot(page, f"app_participant_{width}px")
    page.close()


def test_no_blank_result_boxes_before_the_first_run(browser, app):
    for width in WIDTHS:
        page = open_page(browser, app, width)
        assert result_boxes_visible(page, "gen") == 0
        show_tab(page, "Restore your own audio")
        assert result_boxes_visible(page, "restore") == 0
        page.close()


# --------------------------------------------------------------------------- 1 + 2: verdict, table, progress


def test_generate_shows_verdict_marked_table_and_one_progress_place(browser, app):
    page = open_page(browser, app, 1400)
    assert "MusicGen" in page.inner_text("#model-status") and "available" in page.inner_text("#model-status")
    generate_and_wait(page, watch=True)

    # Progress lived in one place and named each stage, with percentages that never went back.
    seen, other_progress = seen_progress(page)
    for stage in ("Generating with MusicGen", "Restoring with Demucs", "Spectral gating", "Measuring"):
        assert any(t.startswith(stage) for t in seen), f"{stage!r} was never named: {seen}"
    percents = [int(m) for t in seen for m in re.findall(r"(\d+) %", t)]
    assert percents and percents == sorted(percents), f"percentages went back: {seen}"
    assert seen[-1].startswith("Done"), seen
    assert not other_progress, f"progress showed in another place as well: {other_progress}"

    # The verdict sits above the players and names a winner with numbers.
    verdict = page.inner_text("#gen-verdict")
    assert "high-band energy" in verdict and "noise-like" in verdict and "changed the clip most" in verdict
    assert "proxies" in verdict
    assert page.locator("#gen-verdict").bounding_box()["y"] < page.locator(".gen-player-input").bounding_box()["y"]

    # The table marks the better value of comparable rows; no value reads 0.000.
    table = page.locator(".gen-metrics table").first
    assert table.locator("td.better").count() >= 2
    marked = table.locator("td.better").first
    assert "better" in (marked.get_attribute("aria-label") or marked.inner_text()).lower() or \
        marked.locator(".sr-only").count() == 1
    cells = page.evaluate("[...document.querySelectorAll('.gen-metrics td')].map(td => td.innerText.trim())")
    assert not [c for c in cells if re.fullmatch(r"-?0\.0+", c.split()[0] if c else "")], cells
    assert "nan" not in " ".join(cells).lower().split()

    # Context rows and "How it was made" are in a closed details section.
    details = page.locator("#gen-details details, details#gen-details").first
    assert details.get_attribute("open") is None
    assert "How it was made" in details.inner_text() or "How it was made" in details.evaluate("d => d.textContent")
    assert "Integrated loudness" in details.evaluate("d => d.textContent")

    # Figures say what they show; players and buttons have names.
    for version in VERSIONS:
        alt = page.locator(f".gen-mel-{version} img").first.get_attribute("alt") or ""
        assert alt.startswith("Mel spectrogram of"), alt
    assert "Long-term average spectrum" in (page.locator(".gen-spectrum img").first.get_attribute("alt") or "")
    assert_accessible(page, "generate results at 1400 px")
    assert_fits(page, "generate results at 1400 px")
    screenshot(page, "app_generate_results_1400px")

    # The loudness toggle swaps the players to the raw-level files and back.
    matched_href = audio_href(page, "demucs")
    page.click(".gen-matched input[type=checkbox]")
    page.wait_for_function(f"document.querySelector('.gen-player-demucs a[download]')?.href !== {matched_href!r}")
    page.click(".gen-matched input[type=checkbox]")
    page.wait_for_function(f"document.querySelector('.gen-player-demucs a[download]')?.href === {matched_href!r}")

    # "Add to listening test" answers with a message, not an error.
    page.click("#listen-btn")
    page.wait_for_function("document.querySelector('#listen-msg')?.innerText.trim().length > 0")
    assert page.locator(".toast-body.error").count() == 0

    # Stop pressed while idle changes nothing visible.
    before = progress_text(page, "gen"), audio_href(page, "input"), result_boxes_visible(page, "gen")
    page.click("#stop-btn")
    page.wait_for_timeout(1500)
    assert (progress_text(page, "gen"), audio_href(page, "input"), result_boxes_visible(page, "gen")) == before

    # A new prompt marks the results stale; they are hidden.
    prompt_box(page).fill("a different prompt, a different clip")
    page.wait_for_function(f"{HIDDEN}('#gen-results')")
    assert "input changed" in progress_text(page, "gen")
    page.close()


def test_phone_width_results_fit(browser, app):
    page = open_page(browser, app, 400, 900)
    generate_and_wait(page)  # the same request as above: served from the cache
    assert "cache" in progress_text(page, "gen").lower()
    boxes = [page.locator(f".gen-player-{v}").bounding_box() for v in VERSIONS]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], boxes  # stacked, not side by side
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= 401, box
    assert_fits(page, "generate results at 400 px")
    # the table stays a table: a few hundred pixels, not thousands of pixels of cards
    height = page.locator(".gen-metrics table").first.bounding_box()["height"]
    assert height < 1200, f"the metrics table is {height:.0f} px tall on a phone"
    assert_accessible(page, "generate results at 400 px")
    screenshot(page, "app_generate_results_400px")
    page.close()


# --------------------------------------------------------------------------- 3: errors shown once


def test_generate_is_disabled_while_the_prompt_is_empty_and_enter_submits(browser, app):
    page = open_page(browser, app, 1400)
    assert page.locator("#generate-btn").is_disabled()
    prompt_box(page).fill("   ")
    page.wait_for_timeout(500)
    assert page.locator("#generate-btn").is_disabled()
    prompt_box(page).fill(PROMPT)
    page.wait_for_function("!document.querySelector('#generate-btn').disabled")
    set_number(page, "#duration input[type=number]", "2")
    set_number(page, "#seed input", SEED)
    prompt_box(page).press("Enter")  # Enter submits (the same request as above, so from the cache)
    wait_for_results(page)
    assert "\n" not in prompt_box(page).input_value()
    page.close()


def test_bad_uploads_show_one_plain_error(browser, app, tmp_path):
    page = open_page(browser, app, 1400)
    show_tab(page, "Restore your own audio")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not audio")
    page.set_input_files("#upload input[type=file]", str(text_file))
    message = wait_for_one_error(page, timeout_s=20)
    assert "notes.txt" in message and "audio/" not in message, message
    close_toasts(page)

    fake_mp3 = tmp_path / "fake.mp3"
    fake_mp3.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    page.set_input_files("#upload input[type=file]", str(fake_mp3))
    page.wait_for_timeout(1000)
    page.click("#restore-btn")
    message = wait_for_one_error(page)
    assert "fake.mp3" in message and "audio" in message, message
    assert "pipe" not in message and "libsndfile" not in message.lower() and "Error opening" not in message, message
    assert result_boxes_visible(page, "restore") == 0
    page.close()


def test_restore_tab_stop_and_stale_results(browser, app, tmp_path):
    page = open_page(browser, app, 1400)
    show_tab(page, "Restore your own audio")
    page.set_input_files("#upload input[type=file]", str(write_noisy_chord(tmp_path / "chord.wav")))
    page.wait_for_timeout(1000)
    watch_progress(page, "restore")
    page.click("#restore-btn")
    wait_for_results(page, "restore")
    seen, other_progress = seen_progress(page)
    assert any(t.startswith("Restoring with Demucs") for t in seen), seen
    assert not any(t.startswith("Starting") for t in seen[1:]), seen
    assert not other_progress, other_progress
    assert "chord.wav" in page.evaluate("document.querySelector('#restore-details').textContent")
    assert_accessible(page, "restore results at 1400 px")
    screenshot(page, "app_restore_results_1400px")
    # another input makes the previous clip's results stale: they are hidden at once
    page.locator("#upload button[aria-label='Clear']").first.click()
    page.wait_for_function(f"{HIDDEN}('#restore-results')")
    assert "input changed" in progress_text(page, "restore") and "Done" not in progress_text(page, "restore")
    page.set_input_files("#upload input[type=file]", str(write_noisy_chord(tmp_path / "other.wav", seconds=1.5)))
    page.wait_for_timeout(1000)
    assert page.evaluate(f"{HIDDEN}('#restore-results')")
    page.close()


def test_stop_removes_the_partial_output(browser, app):
    page = open_page(browser, app, 1400)
    before = app.run_folders()
    prompt_box(page).fill("epic cinematic orchestral score with choir")
    set_number(page, "#duration input[type=number]", "30")
    set_number(page, "#seed input", "99")
    page.wait_for_function("!document.querySelector('#generate-btn').disabled")
    page.click("#generate-btn")
    page.wait_for_function("document.querySelector('#gen-progress .run-progress')?.innerText.includes('Generating')",
                           timeout=120_000)
    page.click("#stop-btn")
    page.wait_for_function("document.querySelector('#gen-progress .run-progress')?.innerText.includes('Stopped')",
                           timeout=15_000)
    page.wait_for_timeout(1500)
    # nothing partial stays playable: no result is shown, and the preview of the clip so far is gone
    assert result_boxes_visible(page, "gen") == 0
    assert page.evaluate("document.querySelector('#gen-preview')?.offsetParent ?? null") is None
    assert page.locator(".toast-body.error").count() == 0
    # A short request now runs at once. Runs are serialized, so had the 30 s one gone on,
    # it would have finished (and written its run folder) first.
    generate_and_wait(page, prompt="short piano phrase", seed="98", duration="1")
    assert len(app.run_folders() - before) == 1, "the stopped run was completed and saved anyway"
    page.close()


def test_about_explains_the_jargon(browser, app):
    page = open_page(browser, app, 1400)
    show_tab(page, "About")
    text = visible_tab_panel_text(page)
    for term in ("ΔHBER", "exact (fp32)", "shifts", "−∞"):
        assert term in text, term
    assert "HTDemucs" in text
    page.close()

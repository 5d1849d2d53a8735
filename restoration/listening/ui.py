"""The participant page of the listening test (Gradio): the only page participants are sent to.

- :func:`make_demo` builds it: questions, volume check, practice trial, the scored trials,
  thank-you and reveal. No organiser tab: organisers use the main app's "Listening results"
  tab (:mod:`.admin_ui`) or the CLI.
- :func:`mount_participant_page` serves it on a FastAPI app at a path, with its sound, play-event
  and export routes (:mod:`.web`). The main app, which ``launch()`` builds, takes it as
  :func:`participant_routes` at :data:`web.PAGE_PATH` (``/listening/``) and runs its start-up
  with :func:`start_participant_page`.
- ``python -m restoration.listening.ui`` serves it standalone (the same page, at ``/``).

Layout and wiring only; the participant flow is :mod:`.session`, storage :mod:`.store`, who may
do what :mod:`.auth`. Every handler is private to the UI (``api_visibility="private"``) and is
checked server-side anyway: a private endpoint can still be called by hand. A refused call
shows its reason to the participant and logs one line.

The browser keeps one thing: a participant token the server issued (``gr.BrowserState``). Gradio
encrypts BrowserState in the browser with a key it sends to the page, so that key is public by
construction (:data:`BROWSER_STATE_KEY`); the token is a bearer id that the server checks against
its database (:mod:`.auth`), and no server secret exists to leak.
"""

from __future__ import annotations

import logging
import os
import secrets

import gradio as gr

from ..errors import BadInputError, RestorationError
from . import auth, session, web

logger = logging.getLogger("restoration.listening")

STORAGE_KEY = "restoration-listening-participant-v2"
#: BrowserState's encryption key. Not a secret: Gradio sends it to every page (see the module docstring).
BROWSER_STATE_KEY = "restoration-listening-public-key"

INTRO = f"""### Blind listening test
You will hear short music clips. Each clip comes in **four versions, labelled A–D**, in a new random order
every time. There is no reference and no right answer.

**{session.QUESTION}**

About 10–15 minutes. Your answers are anonymous: only a random id kept in this browser links them, so you can
reload the page and carry on where you stopped."""

PANEL_JS = r"""
const S = {token: null, heard: {}, rating: {}, pos: {}, busy: false, error: '', chain: Promise.resolve(),
           drag: null, timer: null};
const LABELS = ['Bad', 'Poor', 'Fair', 'Good', 'Excellent'];
const esc = (x) => String(x === undefined || x === null ? '' : x).replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const root = () => element.querySelector('.lt-root') || element;
const audios = () => Array.from(element.querySelectorAll('audio'));
const keyOf = (p) => p.letter || 'S';
const audioOf = (k) => element.querySelector(`audio[data-key="${k}"]`);
function render() {
  audios().forEach((a) => { try { a.pause(); } catch (e) {} });
  const v = props.value;
  if (!v || typeof v !== 'object' || !v.players) { root().innerHTML = ''; S.token = null; return; }
  if (S.token === v.token && root().querySelector('.lt-list')) {
    // The server answered on this same step (a refusal): keep the sliders, show its reason.
    if (S.timer) { clearTimeout(S.timer); S.timer = null; }
    S.busy = false; S.error = v.error || '';
    for (const p of v.players) S.heard[keyOf(p)] = !!p.heard;
    update();
    return;
  }
  if (S.timer) { clearTimeout(S.timer); S.timer = null; }
  S.token = v.token; S.heard = {}; S.rating = {}; S.pos = {}; S.busy = false; S.error = v.error || '';
  for (const p of v.players) S.heard[keyOf(p)] = !!p.heard;
  let h = `<div class="lt-title">${esc(v.title)}</div>`;
  if (v.note) h += `<div class="lt-note">${esc(v.note)}</div>`;
  h += '<div class="lt-list">';
  for (const p of v.players) {
    const k = esc(keyOf(p));
    const name = p.letter ? `Play ${esc(p.letter)}` : 'Play';
    h += `<div class="lt-row" data-key="${k}"><div class="lt-player">`;
    if (p.letter) h += `<span class="lt-letter">${esc(p.letter)}</span>`;
    h += `<button type="button" class="lt-play" data-key="${k}" data-name="${name}">▶ ${name}</button>`;
    h += `<div class="lt-bar" data-key="${k}" title="Click to jump"><div class="lt-fill"></div></div>`;
    h += `<span class="lt-state" data-key="${k}"></span>`;
    h += `<audio preload="auto" data-key="${k}" src="${esc(p.src)}" data-events="${esc(p.events)}"></audio></div>`;
    if (v.rate) {
      h += `<div class="lt-rate"><div class="lt-scale">`;
      h += `<div class="lt-slider lt-unset" role="slider" tabindex="0" data-key="${k}" aria-label="Rating of ${k}" `;
      h += `aria-valuemin="0" aria-valuemax="100" aria-valuetext="not rated yet"><div class="lt-track"></div><div class="lt-thumb"></div></div>`;
      h += `<div class="lt-labels">${LABELS.map((l) => `<span>${l}</span>`).join('')}</div></div>`;
      h += `<output class="lt-value" data-key="${k}">–</output></div>`;
    }
    h += '</div>';
  }
  h += '</div><label class="lt-loop"><input type="checkbox" class="lt-loopbox"> Loop playback</label>';
  h += `<div class="lt-foot"><span class="lt-error" role="alert"></span><span class="lt-missing"></span>`;
  h += `<button type="button" class="lt-next" disabled>${esc(v.next_label || 'Next')}</button></div>`;
  root().innerHTML = h;
  update();
}
function update() {
  const v = props.value;
  if (!v || !v.players) return;
  const keys = v.players.map(keyOf);
  const notHeard = keys.filter((k) => !S.heard[k]);
  const notRated = v.rate ? keys.filter((k) => S.rating[k] === undefined) : [];
  for (const k of keys) {
    const st = element.querySelector(`.lt-state[data-key="${k}"]`);
    if (st) st.textContent = S.heard[k] ? (v.require_full_play ? 'heard ✓' : '✓') : '';
  }
  const parts = [];
  if (notHeard.length) parts.push(!v.rate ? 'Play the sound first' : `Still to play to the end: ${notHeard.join(', ')}`);
  if (notRated.length) parts.push(`Still to rate: ${notRated.join(', ')}`);
  if (S.busy) parts.push('Saving…');
  const miss = element.querySelector('.lt-missing');
  if (miss) miss.textContent = parts.join(' · ');
  const err = element.querySelector('.lt-error');
  if (err) err.textContent = S.error;
  const next = element.querySelector('.lt-next');
  if (next) next.disabled = S.busy || notHeard.length > 0 || notRated.length > 0;
}
function report(k, body) {
  // Play events go to the server, one at a time and in order; its answer says whether k counts as heard.
  const a = audioOf(k);
  if (!a || !a.dataset.events) return;
  const token = S.token;
  S.chain = S.chain.then(() => fetch(a.dataset.events, {method: 'POST', keepalive: true,
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})
    .then((r) => r.json())
    .then((j) => { if (S.token === token && j && typeof j.heard === 'boolean') { S.heard[k] = j.heard; update(); } })
    .catch(() => {}));
}
function labelButtons() {
  for (const a of audios()) {
    const b = element.querySelector(`.lt-play[data-key="${a.dataset.key}"]`);
    if (b) b.textContent = (a.paused ? '▶ ' : '❚❚ ') + (a.paused ? b.dataset.name : 'Pause');
  }
}
function setRating(k, value) {
  value = Math.max(0, Math.min(100, Math.round(value)));
  S.rating[k] = value;
  const s = element.querySelector(`.lt-slider[data-key="${k}"]`);
  if (s) {
    s.classList.remove('lt-unset');
    s.setAttribute('aria-valuenow', String(value));
    s.setAttribute('aria-valuetext', `${value} (${LABELS[Math.min(4, Math.floor(value / 20))]})`);
    s.querySelector('.lt-thumb').style.left = `${value}%`;
  }
  const out = element.querySelector(`.lt-value[data-key="${k}"]`);
  if (out) out.textContent = String(value);
  update();
}
function ratingAt(s, clientX) {
  const r = s.getBoundingClientRect();
  return r.width > 0 ? 100 * (clientX - r.left) / r.width : 0;
}
element.addEventListener('pointerdown', (ev) => {
  const s = ev.target.closest('.lt-slider');
  if (!s) return;
  ev.preventDefault();
  s.focus();
  S.drag = s;
  try { s.setPointerCapture(ev.pointerId); } catch (e) {}
  setRating(s.dataset.key, ratingAt(s, ev.clientX));
});
element.addEventListener('pointermove', (ev) => {
  if (S.drag && ev.buttons) setRating(S.drag.dataset.key, ratingAt(S.drag, ev.clientX));
});
element.addEventListener('pointerup', () => { S.drag = null; });
element.addEventListener('keydown', (ev) => {
  const s = ev.target.closest('.lt-slider');
  if (!s) return;
  const k = s.dataset.key;
  const now = S.rating[k] === undefined ? 50 : S.rating[k];
  const steps = {ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10};
  if (ev.key in steps) setRating(k, now + steps[ev.key]);
  else if (ev.key === 'Home') setRating(k, 0);
  else if (ev.key === 'End') setRating(k, 100);
  else return;
  ev.preventDefault();
});
element.addEventListener('click', (ev) => {
  const play = ev.target.closest('.lt-play');
  if (play) {
    const a = audioOf(play.dataset.key);
    if (!a) return;
    if (a.paused) { audios().forEach((o) => { if (o !== a) o.pause(); }); a.play().catch(() => {}); }
    else a.pause();
    return;
  }
  const bar = ev.target.closest('.lt-bar');
  if (bar) {
    const a = audioOf(bar.dataset.key);
    const r = bar.getBoundingClientRect();
    if (a && a.duration && r.width > 0) a.currentTime = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * a.duration;
    return;
  }
  const next = ev.target.closest('.lt-next');
  if (next && !next.disabled) {
    audios().forEach((o) => o.pause());
    S.busy = true; S.error = ''; update();
    const v = props.value;
    const ratings = {};
    if (v.rate) for (const p of v.players) ratings[keyOf(p)] = S.rating[keyOf(p)];
    // Next stays locked until the server answers: with the next step, or with its reason to refuse.
    S.chain.then(() => trigger('submit', {token: S.token, ratings: ratings}));
    S.timer = setTimeout(() => {
      S.error = 'No answer from the server yet. If this stays, reload the page: every saved trial is kept.';
      update();
    }, 30000);
  }
});
element.addEventListener('play', (ev) => {
  const a = ev.target;
  audios().forEach((o) => { if (o !== a) o.pause(); });
  S.pos[a.dataset.key] = a.currentTime;
  report(a.dataset.key, {kind: 'play', position_s: a.currentTime});
  labelButtons();
}, true);
element.addEventListener('seeking', (ev) => {
  const a = ev.target;
  const k = a.dataset.key;
  if (!a.paused) report(k, {kind: 'seek', position_s: S.pos[k] || 0, to_s: a.currentTime});
  S.pos[k] = a.currentTime;
}, true);
element.addEventListener('pause', (ev) => {
  const a = ev.target;
  report(a.dataset.key, {kind: 'stop', position_s: a.ended ? (a.duration || a.currentTime) : a.currentTime});
  labelButtons();
}, true);
element.addEventListener('timeupdate', (ev) => {
  const a = ev.target;
  if (!a.seeking) S.pos[a.dataset.key] = a.currentTime;
  const bar = element.querySelector(`.lt-bar[data-key="${a.dataset.key}"] .lt-fill`);
  if (bar && a.duration) bar.style.width = `${(100 * a.currentTime / a.duration).toFixed(2)}%`;
}, true);
element.addEventListener('ended', (ev) => {
  const a = ev.target;
  const loop = element.querySelector('.lt-loopbox');
  if (loop && loop.checked) { a.currentTime = 0; a.play().catch(() => {}); } else labelButtons();
}, true);
watch('value', render);
render();
"""

PANEL_CSS = """
.lt-title { font-size: 1.25rem; font-weight: 600; margin: 0.25rem 0; }
.lt-note { margin-bottom: 0.75rem; }
.lt-row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; padding: 0.6rem 0;
          border-bottom: 1px solid var(--border-color-primary, #ddd); }
.lt-player { display: flex; align-items: center; gap: 0.5rem; flex: 1 1 18rem; }
.lt-letter { font-weight: 700; font-size: 1.2rem; width: 1.4rem; }
.lt-play, .lt-next { padding: 0.35rem 0.9rem; border-radius: 6px; border: 1px solid var(--border-color-primary, #bbb);
                     background: var(--button-secondary-background-fill, #eee); cursor: pointer; min-width: 7rem; }
.lt-next { background: #c2410c; color: #fff; border-color: #c2410c; font-weight: 600; }
.lt-next:disabled { background: #d4d4d4; color: #666; border-color: #bbb; cursor: not-allowed; }
.lt-bar { flex: 1; height: 10px; background: var(--neutral-200, #ddd); border-radius: 5px; cursor: pointer; min-width: 5rem; }
.lt-fill { height: 100%; width: 0; background: var(--neutral-500, #888); border-radius: 5px; }
.lt-state { width: 4.5rem; font-size: 0.85rem; }
.lt-rate { display: flex; align-items: center; gap: 0.6rem; flex: 1 1 20rem; }
.lt-scale { flex: 1; }
.lt-slider { position: relative; height: 22px; margin: 0.2rem 0; cursor: pointer; touch-action: none; }
.lt-slider:focus-visible { outline: 2px solid #c2410c; outline-offset: 2px; border-radius: 4px; }
.lt-track { position: absolute; left: 0; right: 0; top: 7px; height: 8px; border-radius: 4px;
            background: linear-gradient(90deg, #d9d9d9, #bdbdbd); }
.lt-thumb { position: absolute; top: 2px; width: 18px; height: 18px; margin-left: -9px; border-radius: 50%;
            background: #444; left: 50%; }
.lt-slider.lt-unset .lt-thumb { visibility: hidden; }
.lt-error { color: #b91c1c; font-weight: 600; }
.lt-labels { display: grid; grid-template-columns: repeat(5, 1fr); font-size: 0.75rem; text-align: center; }
.lt-value { width: 2.5rem; text-align: right; font-variant-numeric: tabular-nums; }
.lt-loop { display: inline-block; margin: 0.6rem 0; font-size: 0.9rem; }
.lt-foot { display: flex; flex-wrap: wrap; justify-content: flex-end; align-items: center; gap: 1rem; margin-top: 0.5rem; }
.lt-missing { font-size: 0.9rem; }
"""




# --------------------------------------------------------------------------- handlers


def _prefix(request) -> str:
    """The path the page is served under ("" standalone, "/listening" in the app), from the request."""
    scope = getattr(getattr(request, "request", None), "scope", None) or getattr(request, "scope", None) or {}
    return str(scope.get("root_path") or "").rstrip("/")


def _panel_value(v: session.View, prefix: str, error: str = ""):
    payload = v.payload()
    if payload is None:
        return None
    for p in payload["players"]:
        src = f"{prefix}/audio/{p.pop('alias')}"
        p["src"], p["events"] = src, f"{src}/events"
    payload["error"] = error
    payload["answer"] = secrets.token_hex(4)  # every answer differs, so the page always sees it
    return payload


def _outputs(participant: str, v: session.View, prefix: str, error: str = ""):
    stage = v.stage
    return (
        {"participant": participant},
        gr.update(visible=stage == "welcome"),
        gr.update(value=_panel_value(v, prefix, error), visible=stage in ("calibration", "training", "trials")),
        gr.update(visible=stage == "done"),
        gr.update(value=f"**{v.progress}**" if v.progress and stage in ("welcome", "done") else ""),
        gr.update(value=v.note if stage in ("done", "closed") else ""),
        gr.update(value="", visible=False),
    )


def _refuse(what: str, exc: Exception):
    """One log line, and the reason shown once in the page (no traceback anywhere)."""
    web.refuse_log(what, exc)
    return gr.Error(str(exc), print_exception=False)


def _token_of(state):
    return state.get("participant") if isinstance(state, dict) else None


def _on_load(state, request: gr.Request):
    """Page load: who this browser is (a fresh participant if the server does not know its token), and where they stand."""
    try:
        participant = session.identify(_token_of(state))
        return _outputs(participant, session.view(participant), _prefix(request))
    except RestorationError as exc:
        raise _refuse("a page load", exc) from None


def _on_start(state, device, experience, request: gr.Request):
    try:
        participant = _token_of(state)
        return _outputs(participant, session.start(participant, device, experience), _prefix(request))
    except RestorationError as exc:
        raise _refuse("a start", exc) from None


def _on_panel(state, request: gr.Request, evt: gr.EventData):
    """The panel's "Next": ``evt._data`` is what the page sent (untrusted; checked by the store).

    A refusal comes back inside the panel (its reason under the sliders), so the page unlocks
    Next only when the server has answered.
    """
    participant = _token_of(state)
    prefix = _prefix(request)
    try:
        return _outputs(participant, session.submit(participant, getattr(evt, "_data", None)), prefix)
    except BadInputError as exc:
        web.refuse_log("a submission", exc)
        try:
            current = session.view(participant)
        except RestorationError:
            current = None
        if current is None or current.stage not in ("calibration", "training", "trials"):
            raise gr.Error(str(exc), print_exception=False) from None
        return _outputs(participant, current, prefix, error=str(exc))
    except RestorationError as exc:
        raise _refuse("a submission", exc) from None


def _on_reveal(state):
    try:
        return gr.update(value=session.reveal_markdown(_token_of(state)), visible=True)
    except RestorationError as exc:
        raise _refuse("a reveal", exc) from None


def _on_restart(state, request: gr.Request):
    try:
        participant = session.new_participant()
        return _outputs(participant, session.view(participant), _prefix(request))
    except RestorationError as exc:
        raise _refuse("a restart", exc) from None


# --------------------------------------------------------------------------- layout


def make_demo() -> gr.Blocks:
    """The participant page: the test and nothing else (no organiser tab, no version names anywhere)."""
    with gr.Blocks(title="Listening test", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        progress = gr.Markdown("")
        with gr.Column(visible=False) as welcome:
            device = gr.Radio(list(session.DEVICES), value=None, label="How are you listening?")
            experience = gr.Radio(list(session.EXPERIENCE), value=None, label="Your musical experience")
            start = gr.Button("Start", variant="primary")
        panel = gr.HTML(value=None, html_template='<div class="lt-root"></div>', css_template=PANEL_CSS,
                        js_on_load=PANEL_JS, visible=False, elem_id="lt-panel", apply_default_css=True)
        message = gr.Markdown("")
        with gr.Column(visible=False) as done:
            reveal_btn = gr.Button("Show which version was which")
            reveal_md = gr.Markdown(visible=False)
            restart = gr.Button("Start again as a new participant (someone else on this computer)", size="sm")
        state = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=BROWSER_STATE_KEY)

        outputs = [state, welcome, panel, done, progress, message, reveal_md]
        # Short database calls: no queue limit, so a class loading at once is not serialised.
        private = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}
        demo.load(_on_load, inputs=[state], outputs=outputs, **private)
        start.click(_on_start, inputs=[state, device, experience], outputs=outputs, **private)
        panel.submit(_on_panel, inputs=[state], outputs=outputs, **private)
        reveal_btn.click(_on_reveal, inputs=[state], outputs=[reveal_md], **private)
        restart.click(_on_restart, inputs=[state], outputs=outputs, **private)
    demo.queue(default_concurrency_limit=None)
    return demo


def page_options(**overrides) -> dict:
    """Options for ``gr.mount_gradio_app`` that suit the participant page (private files blocked)."""
    options = {"footer_links": [], "run_history": False, "show_error": True, "ssr_mode": False, **overrides}
    options["blocked_paths"] = list(options.get("blocked_paths") or []) + auth.private_paths()
    return options


def mount_participant_page(app, path: str = web.PAGE_PATH, **options):
    """Serve the participant page on the FastAPI ``app`` at ``path`` (``""`` for the root); returns ``app``.

    Adds the page's own routes (:func:`web.add_routes`) before the Gradio app, which would
    otherwise catch their URLs. Do it before the server starts (``uvicorn.run(app)``): the
    page's start-up then runs with the server's.
    """
    path = path.rstrip("/")
    web.add_routes(app, path)
    gr.mount_gradio_app(app, make_demo(), path=path or "/", **page_options(**options))
    return app


def participant_routes(path: str = web.PAGE_PATH) -> list:
    """The participant page as routes for an app that ``launch()`` has yet to build.

    Pass them as ``demo.launch(app_kwargs={"routes": participant_routes()})``: they are in the
    app before it serves its first request, so ``path`` never answers 404. A Gradio app
    mounted this way gets no start-up of its own (its queue would never start, and the page
    would show its first lines and then nothing): call :func:`start_participant_page` once
    ``launch()`` has returned. Events sent before that wait in the queue.
    """
    from fastapi import FastAPI
    from starlette.routing import Mount

    page = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    mount_participant_page(page, "")
    return [Mount(path.rstrip("/"), app=page)]


def start_participant_page(serving_url: str, path: str = web.PAGE_PATH) -> None:
    """Run the start-up of a page served by :func:`participant_routes` on the server at ``serving_url``.

    The same request ``launch()`` makes for its own app (``…/gradio_api/startup-events``).
    """
    import httpx

    url = f"{serving_url.rstrip('/')}{path.rstrip('/')}/gradio_api/startup-events"
    httpx.get(url, timeout=60.0).raise_for_status()


def serve(*, host: str | None = None, port: int | None = None) -> None:
    """Serve the participant page standalone at ``/`` (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``)."""
    import uvicorn
    from fastapi import FastAPI

    host = host or os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = int(port or os.environ.get("GRADIO_SERVER_PORT", "7860"))
    app = mount_participant_page(FastAPI(), "")
    logger.info("participant page on http://%s:%d/", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve()

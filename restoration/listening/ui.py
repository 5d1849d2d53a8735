"""Gradio tabs of the listening test: "Listening test" (participants) and "Listening results" (admin).

- :func:`build_listening_tabs` adds both tabs inside the caller's ``gr.Blocks()``/``gr.Tabs()``.
- :func:`make_demo` builds a stand-alone app with only these tabs. **Share this one with
  participants** (``python -m restoration.listening.ui``, or mount it on a path of the main app):
  a Gradio page sends its whole layout to every browser in ``/config``, so the main app's own
  labels ("Demucs", "Spectral gating") would be visible to participants.
- :func:`add_run_to_pool` backs the app's "Add to listening test" button.

Layout and wiring only; the participant flow is :mod:`.session`, storage :mod:`.store`,
statistics :mod:`.stats`. Every handler is private to the UI (``api_visibility="private"``) and
checks everything server-side anyway: a private endpoint can still be called by hand.
Admin handlers verify ``LISTENING_ADMIN_TOKEN`` on every call.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from pathlib import Path

import gradio as gr

from ..errors import BadInputError, RestorationError
from ..paths import data_dir
from . import session, store

ADMIN_ENV = "LISTENING_ADMIN_TOKEN"
SECRET_ENV = "LISTENING_SECRET"
STORAGE_KEY = "restoration-listening-participant"

INTRO = f"""### Blind listening test
You will hear short music clips. Each clip comes in **four versions, labelled A–D**, in a new random order
every time. There is no reference and no right answer.

**{session.QUESTION}**

About 10–15 minutes. Your answers are anonymous: only a random id kept in this browser links them, so you can
reload the page and carry on where you stopped."""

PANEL_JS = r"""
const S = {token: null, played: {}, rating: {}, busy: false};
const LABELS = ['Bad', 'Poor', 'Fair', 'Good', 'Excellent'];
const esc = (x) => String(x === undefined || x === null ? '' : x).replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const root = () => element.querySelector('.lt-root') || element;
const audios = () => Array.from(element.querySelectorAll('audio'));
const keyOf = (p) => p.letter || 'S';
function fileUrl(p) { return p.file ? (p.file.url || '') : ''; }
function render() {
  audios().forEach((a) => { try { a.pause(); } catch (e) {} });
  const v = props.value;
  if (!v || typeof v !== 'object' || !v.players) { root().innerHTML = ''; return; }
  if (S.token !== v.token) { S.token = v.token; S.played = {}; S.rating = {}; S.busy = false; }
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
    h += `<audio preload="auto" data-key="${k}" src="${esc(fileUrl(p))}"></audio></div>`;
    if (v.rate) {
      h += `<div class="lt-rate"><div class="lt-scale">`;
      h += `<input type="range" min="0" max="100" step="1" value="50" class="lt-slider lt-unset" data-key="${k}" aria-label="Rating of ${k}" aria-valuetext="not rated yet">`;
      h += `<div class="lt-labels">${LABELS.map((l) => `<span>${l}</span>`).join('')}</div></div>`;
      h += `<output class="lt-value" data-key="${k}">–</output></div>`;
    }
    h += '</div>';
  }
  h += '</div><label class="lt-loop"><input type="checkbox" class="lt-loopbox"> Loop playback</label>';
  h += `<div class="lt-foot"><span class="lt-missing"></span><button type="button" class="lt-next" disabled>${esc(v.next_label || 'Next')}</button></div>`;
  root().innerHTML = h;
  update();
}
function update() {
  const v = props.value;
  if (!v || !v.players) return;
  const keys = v.players.map(keyOf);
  const notPlayed = keys.filter((k) => !S.played[k]);
  const notRated = v.rate ? keys.filter((k) => S.rating[k] === undefined) : [];
  for (const k of keys) {
    const st = element.querySelector(`.lt-state[data-key="${k}"]`);
    if (st) st.textContent = S.played[k] ? (v.require_full_play ? 'heard ✓' : '✓') : '';
  }
  const parts = [];
  if (notPlayed.length) parts.push(!v.rate ? 'Play the sound first' : `Still to play to the end: ${notPlayed.join(', ')}`);
  if (notRated.length) parts.push(`Still to rate: ${notRated.join(', ')}`);
  if (S.busy) parts.push('Saving…');
  const miss = element.querySelector('.lt-missing');
  if (miss) miss.textContent = parts.join(' · ');
  const next = element.querySelector('.lt-next');
  if (next) next.disabled = S.busy || notPlayed.length > 0 || notRated.length > 0;
}
function labelButtons() {
  for (const a of audios()) {
    const b = element.querySelector(`.lt-play[data-key="${a.dataset.key}"]`);
    if (b) b.textContent = (a.paused ? '▶ ' : '❚❚ ') + (a.paused ? b.dataset.name : 'Pause');
  }
}
element.addEventListener('click', (ev) => {
  const play = ev.target.closest('.lt-play');
  if (play) {
    const a = element.querySelector(`audio[data-key="${play.dataset.key}"]`);
    if (!a) return;
    if (a.paused) { audios().forEach((o) => { if (o !== a) o.pause(); }); a.play().catch(() => {}); }
    else a.pause();
    return;
  }
  const bar = ev.target.closest('.lt-bar');
  if (bar) {
    const a = element.querySelector(`audio[data-key="${bar.dataset.key}"]`);
    const r = bar.getBoundingClientRect();
    if (a && a.duration && r.width > 0) a.currentTime = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * a.duration;
    return;
  }
  const next = ev.target.closest('.lt-next');
  if (next && !next.disabled) {
    audios().forEach((o) => o.pause());
    S.busy = true; update();
    const ratings = {}; const played = {};
    const v = props.value;
    for (const p of v.players) {
      const k = keyOf(p);
      played[k] = !!S.played[k];
      if (v.rate) ratings[k] = S.rating[k];
    }
    trigger('submit', {token: S.token, ratings: ratings, played: played});
    setTimeout(() => { S.busy = false; update(); }, 5000);
  }
});
element.addEventListener('input', (ev) => {
  const s = ev.target.closest('.lt-slider');
  if (!s) return;
  const k = s.dataset.key;
  S.rating[k] = Number(s.value);
  s.classList.remove('lt-unset');
  s.setAttribute('aria-valuetext', String(s.value));
  const out = element.querySelector(`.lt-value[data-key="${k}"]`);
  if (out) out.textContent = String(s.value);
  update();
});
element.addEventListener('play', (ev) => {
  const a = ev.target;
  audios().forEach((o) => { if (o !== a) o.pause(); });
  const v = props.value;
  if (v && !v.require_full_play) { S.played[a.dataset.key] = true; update(); }
  labelButtons();
}, true);
element.addEventListener('pause', () => labelButtons(), true);
element.addEventListener('timeupdate', (ev) => {
  const a = ev.target;
  const bar = element.querySelector(`.lt-bar[data-key="${a.dataset.key}"] .lt-fill`);
  if (bar && a.duration) bar.style.width = `${(100 * a.currentTime / a.duration).toFixed(2)}%`;
}, true);
element.addEventListener('ended', (ev) => {
  const a = ev.target;
  S.played[a.dataset.key] = true;
  update();
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
.lt-slider { -webkit-appearance: none; appearance: none; width: 100%; height: 8px; border-radius: 4px;
             background: linear-gradient(90deg, #d9d9d9, #bdbdbd); margin: 0.4rem 0; }
.lt-slider::-webkit-slider-thumb { -webkit-appearance: none; appearance: none; width: 18px; height: 18px;
                                   border-radius: 50%; background: #444; cursor: pointer; }
.lt-slider::-moz-range-thumb { width: 18px; height: 18px; border-radius: 50%; background: #444; border: none; }
.lt-slider.lt-unset::-webkit-slider-thumb { visibility: hidden; }
.lt-slider.lt-unset::-moz-range-thumb { visibility: hidden; }
.lt-labels { display: grid; grid-template-columns: repeat(5, 1fr); font-size: 0.75rem; text-align: center; }
.lt-value { width: 2.5rem; text-align: right; font-variant-numeric: tabular-nums; }
.lt-loop { display: inline-block; margin: 0.6rem 0; font-size: 0.9rem; }
.lt-foot { display: flex; justify-content: flex-end; align-items: center; gap: 1rem; margin-top: 0.5rem; }
.lt-missing { font-size: 0.9rem; }
"""


# --------------------------------------------------------------------------- secrets and tokens


def browser_secret() -> str:
    """The fixed BrowserState secret: env ``LISTENING_SECRET``, else one generated once into data_dir()."""
    env = os.environ.get(SECRET_ENV)
    if env:
        return env
    path = data_dir() / "listening-browser-secret.txt"
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def private_paths() -> list[str]:
    """Files Gradio must never serve: the database (with its WAL and shared-memory files) and the secret.

    An app that passes ``allowed_paths=[data_dir()]`` to ``launch()`` would otherwise serve them
    to anyone who types their path: ratings, and the letter → version mapping of every session.
    """
    db = store.db_path()
    return [str(db), f"{db}-wal", f"{db}-shm", f"{db}-journal", str(data_dir() / "listening-browser-secret.txt")]


def _protect(blocks) -> None:
    """Add :func:`private_paths` to a running app's ``blocked_paths`` (checked on every file request)."""
    blocked = list(getattr(blocks, "blocked_paths", None) or [])
    missing = [p for p in private_paths() if p not in blocked]
    if missing:
        blocks.blocked_paths = blocked + missing


def _guard_launch(blocks) -> None:
    """Make ``blocks.launch()`` always block :func:`private_paths`, whatever the caller passes.

    ``launch()`` resets ``blocked_paths`` from its arguments (or ``GRADIO_BLOCKED_PATHS``), so the
    list is extended there; :func:`_on_load` re-checks on every page load for apps mounted otherwise.
    """
    if getattr(blocks, "_listening_guarded", False):
        return
    launch = blocks.launch

    def guarded_launch(*args, **kwargs):
        given = kwargs.get("blocked_paths")
        if given is None:
            env = os.environ.get("GRADIO_BLOCKED_PATHS", "")
            given = [item.strip() for item in env.split(",") if item.strip()]
        kwargs["blocked_paths"] = list(given) + [p for p in private_paths() if p not in given]
        return launch(*args, **kwargs)

    blocks.launch = guarded_launch
    blocks._listening_guarded = True


def admin_ok(token) -> bool:
    """True when ``token`` equals ``LISTENING_ADMIN_TOKEN`` (unset or empty env: nobody is admin)."""
    expected = os.environ.get(ADMIN_ENV, "")
    if not expected or not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def _require_admin(token) -> None:
    if not admin_ok(token):
        time.sleep(0.25)  # slows guessing
        if not os.environ.get(ADMIN_ENV):
            raise gr.Error(f"Admin functions are off: set {ADMIN_ENV} on the server.")
        raise gr.Error("Wrong admin token.")


# --------------------------------------------------------------------------- the pool (app button)


def add_run_to_pool(run_dir: Path) -> str:
    """Record an app run folder as a candidate clip for the next listening test; return a short message."""
    from .stimuli import is_clip_folder, read_clip_source

    run_dir = Path(run_dir)
    if not is_clip_folder(run_dir):
        raise BadInputError(f"{run_dir.name} is not a complete run (report.json, input.wav, demucs.wav and "
                            "spectral_gating.wav are needed)")
    source = read_clip_source(run_dir)
    added, count = store.add_to_pool(run_dir.resolve(), prompt=source.prompt, genre=source.genre)
    if not added:
        return f"Already in the listening-test pool ({count} clips)."
    return f"Added to the listening-test pool ({count} clip{'s' if count != 1 else ''}; 8–12 make a test)."


# --------------------------------------------------------------------------- participant handlers


def _file_data(path: str) -> dict:
    return {"path": path, "orig_name": Path(path).name, "mime_type": "audio/wav",
            "meta": {"_type": "gradio.FileData"}}


def _panel_value(v: session.View):
    payload = v.payload()
    if payload is None:
        return None
    for p in payload["players"]:
        p["file"] = _file_data(p.pop("path"))
    return payload


def _ensure_static() -> None:
    """Let Gradio serve the stimulus folder in place (uuid names only; nothing else lives there)."""
    from gradio.data_classes import _StaticFiles

    root = store.stimuli_root().resolve()
    if root not in _StaticFiles.all_paths:
        gr.set_static_paths([root])


def _outputs(participant, v: session.View):
    _ensure_static()
    stage = v.stage
    return (
        {"participant": participant},
        gr.update(visible=stage == "welcome"),
        gr.update(value=_panel_value(v), visible=stage in ("calibration", "training", "trials")),
        gr.update(visible=stage == "done"),
        gr.update(value=f"**{v.progress}**" if v.progress and stage in ("welcome", "done") else ""),
        gr.update(value=v.note if stage in ("done", "closed") else ""),
        gr.update(value="", visible=False),
    )


def _participant_of(state) -> str | None:
    p = state.get("participant") if isinstance(state, dict) else None
    return p if session.valid_participant(p) else None


def _gr_errors(fn):
    """Turn the package's errors into ``gr.Error`` (a clear message; the app keeps serving)."""

    def wrapper(*args):
        try:
            return fn(*args)
        except RestorationError as exc:
            raise gr.Error(str(exc)) from None

    wrapper.__name__ = wrapper.__qualname__ = fn.__name__  # no __wrapped__: Gradio counts wrapper's own args
    return wrapper


def _on_load(state, request: gr.Request):
    """Page load: protect the private files, then show where this browser's participant stands."""
    try:
        app = getattr(request, "app", None)
        blocks = app.get_blocks() if app is not None and hasattr(app, "get_blocks") else None
        if blocks is not None:
            _protect(blocks)
        participant = _participant_of(state) or session.new_participant()
        return _outputs(participant, session.view(participant))
    except RestorationError as exc:
        raise gr.Error(str(exc)) from None


@_gr_errors
def _on_start(state, device, experience):
    participant = _participant_of(state)
    if participant is None:
        raise BadInputError("this browser has no participant id yet; reload the page")
    return _outputs(participant, session.start(participant, device, experience))


def _on_panel(state, evt: gr.EventData):
    """The panel's "Next": ``evt._data`` is what the page sent (untrusted; checked by the store)."""
    try:
        participant = _participant_of(state)
        if participant is None:
            raise BadInputError("this browser has no participant id; reload the page")
        return _outputs(participant, session.submit(participant, getattr(evt, "_data", None)))
    except RestorationError as exc:
        raise gr.Error(str(exc)) from None


@_gr_errors
def _on_reveal(state):
    participant = _participant_of(state)
    if participant is None:
        raise BadInputError("unknown participant; reload the page")
    return gr.update(value=session.reveal_markdown(participant), visible=True)


@_gr_errors
def _on_restart(state):
    participant = session.new_participant()
    return _outputs(participant, session.view(participant))


# --------------------------------------------------------------------------- layout


def _participant_tab():
    with gr.Tab("Listening test", id="lt-participant-tab"):
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
        state = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=browser_secret())

    outputs = [state, welcome, panel, done, progress, message, reveal_md]
    # Short database calls: no queue limit, so a class loading at once is not serialised.
    private = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}
    start.click(_on_start, inputs=[state, device, experience], outputs=outputs, **private)
    panel.submit(_on_panel, inputs=[state], outputs=outputs, **private)
    reveal_btn.click(_on_reveal, inputs=[state], outputs=[reveal_md], **private)
    restart.click(_on_restart, inputs=[state], outputs=outputs, **private)
    return state, outputs


def build_listening_tabs(*, participant: bool = True, admin: bool = True) -> None:
    """Create the "Listening test" and "Listening results" tabs inside the current ``gr.Tabs()``.

    Call it inside ``with gr.Blocks() as demo:`` (and ``with gr.Tabs():``). ``participant`` /
    ``admin`` leave one of the two tabs out.
    """
    from gradio.context import Context

    root = Context.root_block
    if root is None:
        raise RuntimeError("build_listening_tabs() must be called inside `with gr.Blocks():`")
    _ensure_static()
    _guard_launch(root)
    if participant:
        state, outputs = _participant_tab()
        root.load(_on_load, inputs=[state], outputs=outputs, api_visibility="private", show_progress="hidden",
                  concurrency_limit=None)
    if admin:
        from .admin_ui import admin_tab

        admin_tab()


def make_demo(*, admin: bool = True) -> gr.Blocks:
    """A stand-alone app with only the listening-test tabs: the page to share with participants.

    ``admin=False`` leaves the results tab out (it is token-protected either way).
    """
    with gr.Blocks(title="Listening test", analytics_enabled=False) as demo:
        with gr.Tabs():
            build_listening_tabs(admin=admin)
    return demo


def mount_participant_page(app, path: str = "/listening", **kwargs):
    """Mount the participant page (no admin tab) on a FastAPI ``app`` at ``path``; returns ``app``.

    For serving it beside the main app on one port (a Space), e.g.::

        app = FastAPI()
        mount_participant_page(app, "/listening")
        gr.mount_gradio_app(app, demo, path="/", allowed_paths=[str(data_dir())],
                            blocked_paths=private_paths())
        uvicorn.run(app, host="0.0.0.0", port=7860)

    Mount it *before* a Gradio app at ``/``, which would otherwise catch its URLs.
    """
    demo = make_demo(admin=False)
    demo.queue(default_concurrency_limit=None)
    options = {"footer_links": [], "run_history": False, "show_error": True, **kwargs}
    options["blocked_paths"] = list(options.get("blocked_paths") or []) + private_paths()
    return gr.mount_gradio_app(app, demo, path=path, **options)


def launch_kwargs() -> dict:
    """Keyword arguments for ``demo.launch()`` that suit a listening test."""
    return {"footer_links": [], "run_history": False, "show_error": True, "blocked_paths": private_paths()}


if __name__ == "__main__":
    make_demo().queue(default_concurrency_limit=None).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), **launch_kwargs())

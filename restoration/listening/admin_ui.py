"""The organiser's "Listening results" tab (in the main app): results, screening, export, test creation.

Nothing in this tab's initial layout names a version (the layout reaches every browser in
``/config``); tables and plots are filled only by handlers that check ``LISTENING_ADMIN_TOKEN`` on
every call (:func:`auth.check_admin`), whatever the page state says. The CSV is downloaded through
a one-time link (:func:`auth.issue_export_ticket`, :mod:`.web`): no copy of it is left on disk
or in Gradio's file cache.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..errors import BadInputError, RestorationError
from ..paths import data_dir
from . import auth, results, store, web
from .build import create_test


def _guard(fn, *, with_token: bool = False):
    """Check the admin token on every call, then run ``fn`` with the other inputs (and the token if asked).

    A refusal shows its reason once and logs one line, without a traceback.
    """

    def wrapper(token, *args):
        try:
            auth.check_admin(token)
            return fn(token, *args) if with_token else fn(*args)
        except RestorationError as exc:
            web.refuse_log(f"an organiser call ({fn.__name__.strip('_')})", exc)
            raise gr.Error(str(exc), print_exception=False) from None

    wrapper.__name__ = wrapper.__qualname__ = f"admin{fn.__name__}"
    return wrapper


def _test_choices():
    tests = store.list_tests()
    choices = [(f"{t['name']} ({t['n_finished']}/{t['n_sessions']} finished{', open' if t['active'] else ''})",
                t["name"]) for t in tests]
    active = next((t["name"] for t in tests if t["active"]), tests[0]["name"] if tests else None)
    return choices, active


def _results_outputs(test_name, include_everyone):
    import pandas as pd

    if not test_name:
        return ("No test yet: create one below.", None, gr.update(value=None), gr.update(value=None))
    res = results.load_results(test_name, include_everyone=bool(include_everyone))
    headers, rows = results.clip_table(res)
    return (results.markdown(res), results.figure(res),
            gr.update(value=pd.DataFrame(results.screening_table(res), columns=results.SCREENING_HEADERS)),
            gr.update(value=pd.DataFrame(rows, columns=headers)))


def _unlock(include_everyone):
    choices, active = _test_choices()
    return (gr.update(visible=True), gr.update(choices=choices, value=active),
            *_results_outputs(active, include_everyone))


def _show(test_name, include_everyone):
    return _results_outputs(test_name, include_everyone)


def _export(token, test_name):
    if not test_name:
        raise BadInputError("choose a test first")
    test = store.get_test(test_name)
    ticket = auth.issue_export_ticket(token, test["id"])
    link = f"{web.PAGE_PATH.strip('/')}/export/{ticket}"
    minutes = int(auth.EXPORT_TICKET_S // 60)
    return (f"**[Download the CSV of {test['name']}]({link})** — a one-time link, valid for {minutes} minutes. "
            "One row per rating, from a consistent snapshot taken when you download; `excluded_by` names the "
            "screening rules that exclude a row's listener.")


def _activate(test_name):
    if not test_name:
        raise BadInputError("choose a test first")
    test = store.set_active(test_name)
    choices, active = _test_choices()
    return gr.update(choices=choices, value=active), f"Participants now see **{test['name']}**."


def _created(info: dict):
    choices, active = _test_choices()
    notes = "".join(f"\n- {n}" for n in info["notes"] + [f"skipped {s}" for s in info["skipped"]])
    msg = (f"Created **{info['name']}**: {info['trials']} trials from {', '.join(info['genres'])}"
           f"{' + a practice trial' if info['practice'] else ''}, matched to {info['target_lufs']:.2f} LUFS. "
           f"Participants now see it.{notes}")
    return gr.update(choices=choices, value=active), msg


def _n_clips(value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadInputError("clips per listener must be a whole number") from None
    if not 1 <= n <= 50:
        raise BadInputError("clips per listener must be from 1 to 50 (the protocol recommends 8–12)")
    return n


def _create_from_folder(folder, name, n_clips):
    folder = str(folder or "").strip()
    if not folder:
        raise BadInputError("give the folder to search for clips")
    return _created(create_test(name, from_dir=Path(folder).expanduser(), n_clips=_n_clips(n_clips)))


def _create_from_runs(name, n_clips):
    folders = store.pool_folders()
    if folders:
        return _created(create_test(name, folders=folders, n_clips=_n_clips(n_clips)))
    runs = data_dir() / "runs"
    if not runs.is_dir():
        raise BadInputError("no saved runs yet: use \"Add to listening test\" in the app, or give a folder")
    return _created(create_test(name, from_dir=runs, n_clips=_n_clips(n_clips)))


def admin_tab() -> None:
    """Lay out the tab and wire its handlers (all private, all token-checked)."""
    with gr.Tab("Listening results", id="lt-admin-tab"):
        gr.Markdown("For the organiser. Type the admin token (the server's `LISTENING_ADMIN_TOKEN`).")
        with gr.Row():
            token = gr.Textbox(type="password", label="Admin token", scale=3)
            unlock = gr.Button("Unlock", scale=1)
        with gr.Column(visible=False) as panel:
            with gr.Row():
                test = gr.Dropdown(choices=[], value=None, label="Test", scale=3, allow_custom_value=True)
                include_all = gr.Checkbox(False, label="Include everyone (ignore the screening)", scale=2)
            with gr.Row():
                refresh = gr.Button("Refresh results")
                activate = gr.Button("Open this test to participants")
                export = gr.Button("Export CSV")
            admin_msg = gr.Markdown("")
            summary = gr.Markdown("")
            plot = gr.Plot(label="Ratings")
            screening = gr.Dataframe(label="Screening per listener", interactive=False)
            clips = gr.Dataframe(label="Mean rating per clip", interactive=False)
            with gr.Accordion("Create a test", open=False):
                folder = gr.Textbox(label="Folder to search for clips (a batch output, or the app's runs folder)")
                name = gr.Textbox(label="Test name", placeholder="e.g. class-2026-05")
                n_clips = gr.Number(value=10, precision=0, label="Clips per listener (8–12 recommended)")
                with gr.Row():
                    from_folder = gr.Button("Create from this folder")
                    from_runs = gr.Button("Create from the app's saved runs")
                create_msg = gr.Markdown("")

    private = {"api_visibility": "private"}
    result_outputs = [summary, plot, screening, clips]
    unlock.click(_guard(_unlock), inputs=[token, include_all], outputs=[panel, test, *result_outputs], **private)
    token.submit(_guard(_unlock), inputs=[token, include_all], outputs=[panel, test, *result_outputs], **private)
    for trigger in (refresh.click, test.input, include_all.input):
        trigger(_guard(_show), inputs=[token, test, include_all], outputs=result_outputs, **private)
    export.click(_guard(_export, with_token=True), inputs=[token, test], outputs=[admin_msg], **private)
    activate.click(_guard(_activate), inputs=[token, test], outputs=[test, admin_msg], **private)
    from_folder.click(_guard(_create_from_folder), inputs=[token, folder, name, n_clips], outputs=[test, create_msg],
                      **private)
    from_runs.click(_guard(_create_from_runs), inputs=[token, name, n_clips], outputs=[test, create_msg], **private)

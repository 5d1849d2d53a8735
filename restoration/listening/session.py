"""The participant's side of a listening test, without any Gradio in it.

A participant is an anonymous token the server issued and the browser keeps
(:func:`auth.issue_participant`). Everything else is derived from the database on every call, so
a reload resumes where it stopped: welcome questions → volume calibration → one practice trial →
the scored trials → thank you.

What these functions return is exactly what the participant's browser may see: letters, the
listener's own aliases of the sounds, whether the server has heard each one played, titles and
progress. Conditions never leave :mod:`restoration.listening.store`, except through
:func:`reveal` once the last trial is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BadInputError
from ..versions import CONDITION_TITLES
from . import auth, store

DEVICES = ("Headphones", "Loudspeakers")
EXPERIENCE = ("None", "Some (plays or produces music as a hobby)", "A lot (music studies or professional)")
SCALE = ("Bad", "Poor", "Fair", "Good", "Excellent")

QUESTION = ("Rate the overall sound quality of each version: noise, artefacts, distortion, clarity. "
            "Loudness has been equalised, so please do not judge loudness.")


@dataclass(frozen=True)
class View:
    """What the participant's page shows now."""

    stage: str  # closed, welcome, calibration, training, trials, done
    title: str = ""
    note: str = ""
    token: str | None = None  # the step nonce the next submission must carry
    players: tuple = field(default_factory=tuple)  # (store.Player, …)
    duration_s: float = 0.0
    rate: bool = False
    require_full_play: bool = True
    next_label: str = "Next"
    progress: str = ""

    def payload(self) -> dict | None:
        """The browser-side description of the current panel (``None`` outside the panel stages)."""
        if self.stage not in ("calibration", "training", "trials"):
            return None
        return {
            "token": self.token, "title": self.title, "note": self.note, "rate": self.rate,
            "require_full_play": self.require_full_play, "next_label": self.next_label,
            "duration_s": round(self.duration_s, 3),
            "players": [{"letter": p.letter, "alias": p.alias, "heard": p.heard} for p in self.players],
        }


def identify(token) -> str:
    """``token`` when the server issued it, else a freshly issued one (a new anonymous participant)."""
    return token if auth.known_participant(token) is not None else auth.issue_participant()


def new_participant() -> str:
    """A freshly issued participant token (someone else on the same computer)."""
    return auth.issue_participant()


def _test_or_none():
    return store.active_test()


def _session_id(participant) -> str | None:
    test = _test_or_none()
    key = auth.known_participant(participant)
    if test is None or key is None:
        return None
    return store.find_session(key, test["id"])


def _view_of(step: store.Step) -> View:
    players, duration_s = step.players, step.duration_s
    if step.stage == "calibration":
        return View(stage="calibration", title="Volume check",
                    note=("Play this sound and set your volume to a comfortable level, as you would for music. "
                          "Keep the volume unchanged for the rest of the test."),
                    token=step.nonce, players=players, duration_s=duration_s, rate=False, require_full_play=False,
                    next_label="My volume is set", progress="Volume check")
    if step.stage == "training":
        return View(stage="training", title="Practice trial (not scored)",
                    note=("Practice with the players and sliders. Play every version to the end (you can "
                          "replay, seek and loop), then move every slider. " + QUESTION),
                    token=step.nonce, players=players, duration_s=duration_s, rate=True, next_label="Start the test",
                    progress=f"Practice · then {step.total} trials")
    if step.stage == "trials":
        return View(stage="trials", title=f"Trial {step.position} of {step.total}", note=QUESTION,
                    token=step.nonce, players=players, duration_s=duration_s, rate=True,
                    next_label="Next" if step.position < step.total else "Finish",
                    progress=f"Trial {step.position} of {step.total}")
    return View(stage="done", title="Thank you!",
                note=f"All {step.total} trials are saved. Thank you for listening.",
                progress=f"Finished: {step.total} of {step.total} trials")


def view(participant) -> View:
    """The page for ``participant`` now (``welcome`` when they have not started the active test)."""
    test = _test_or_none()
    if test is None:
        return View(stage="closed", note="No listening test is open right now.")
    session_id = _session_id(participant)
    if session_id is None:
        return View(stage="welcome", progress="")
    return _view_of(store.current_step(session_id))


def start(participant, device, experience) -> View:
    """Answer the welcome questions and start a session in the active test (idempotent)."""
    key = auth.known_participant(participant)
    if key is None:
        raise BadInputError("this browser has no participant id; reload the page")
    if device not in DEVICES:
        raise BadInputError("tell us whether you listen on headphones or loudspeakers")
    if experience not in EXPERIENCE:
        raise BadInputError("tell us about your musical experience")
    test = _test_or_none()
    if test is None:
        raise BadInputError("no listening test is open right now")
    session_id = store.create_session(key, test["id"], device=device, experience=experience)
    return _view_of(store.current_step(session_id))


def submit(participant, data) -> View:
    """Save what the panel sent (the calibration step, or a trial's ratings) and return the next view.

    ``data`` is untrusted: ``{"token": nonce, "ratings": {letter: 0–100}}``. The server decides
    which step it is from the database, and whether each version was heard from the play events
    it recorded, never from ``data``.
    """
    session_id = _session_id(participant)
    if session_id is None:
        raise BadInputError("unknown participant; reload the page to start")
    if not isinstance(data, dict):
        raise BadInputError("malformed submission; reload the page")
    token = data.get("token")
    step = store.current_step(session_id)
    if step.stage == "calibration":
        return _view_of(store.finish_calibration(session_id, token))
    if step.stage in ("training", "trials"):
        return _view_of(store.submit_ratings(session_id, token, data.get("ratings")))
    raise BadInputError(auth.STALE_MESSAGE)


def reveal(participant) -> list[dict]:
    """Per trial and letter, which version it was and the rating given (only once finished)."""
    session_id = _session_id(participant)
    if session_id is None:
        raise BadInputError("unknown participant; reload the page")
    rows = store.reveal(session_id)
    return [{**r, "version": CONDITION_TITLES.get(r["condition"], r["condition"])} for r in rows]


def reveal_markdown(participant) -> str:
    """The reveal as a Markdown table: trial, letter, version, the listener's rating."""
    rows = reveal(participant)
    lines = ["| Trial | Letter | Version | Your rating |", "|---|---|---|---|"]
    for r in rows:
        rating = "" if r["rating"] is None else f"{r['rating']:.0f}"
        lines.append(f"| {r['position']} | {r['letter']} | {r['version']} | {rating} |")
    return "\n".join(lines)

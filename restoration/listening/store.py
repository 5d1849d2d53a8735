"""What a listening test stores: tests and their stimuli, the run pool, sessions, play events, ratings.

Storage rules are in :mod:`.db`; who may call what is in :mod:`.auth`; export in :mod:`.export`.

- Every trial is written the moment it is submitted, in one transaction with the step it unlocks.
  ``UNIQUE(session_id, trial_id, condition)`` plus ``INSERT … ON CONFLICT DO UPDATE`` makes a
  resubmission update the row instead of duplicating it.
- A submission names the one-time *step nonce* it was served with. The nonce changes when the step
  is saved, so a replayed or forged submission (old nonce, another session's nonce, unknown trial)
  is refused and changes nothing.
- A listener gets every stimulus under a random *alias* of their own, one per session, trial and
  letter: a mapping revealed to one listener names no file another listener receives.
- The server decides whether a version was heard, from the play events it recorded
  (:mod:`.heard`); a rating is accepted only for versions heard.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError
from ..versions import CONDITIONS
from . import heard
from .auth import STALE_MESSAGE, check_nonce, new_nonce
from .db import connect, now_iso, stimuli_root, transaction
from .design import new_seed, plan_session

# --------------------------------------------------------------------------- tests and the pool


def register_test(*, test_id: str, name: str, folder: str, source: str, settings: dict, log: dict,
                  clips: list, training_clip_id: str | None, path=None) -> str:
    """Insert a prepared test (its trials and stimuli) in one transaction and make it the active one."""
    with connect(path) as conn, transaction(conn):
        if conn.execute("SELECT 1 FROM tests WHERE name = ?", (name,)).fetchone():
            raise BadInputError(f"a test named {name!r} already exists; choose another --name")
        conn.execute("UPDATE tests SET active = 0")
        conn.execute(
            "INSERT INTO tests (id, name, folder, source, created_at, active, settings_json, log_json) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (test_id, name, folder, source, now_iso(), json.dumps(settings), json.dumps(log)),
        )
        for clip in clips:
            s = clip.source
            conn.execute(
                "INSERT INTO trials (id, test_id, is_training, clip_folder, prompt, genre, clip_seed, model, "
                "sample_rate, frames, excerpt_start_s, source_seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (clip.clip_id, test_id, int(clip.clip_id == training_clip_id), str(s.folder), s.prompt, s.genre,
                 s.seed, s.model, clip.sample_rate, clip.frames, clip.excerpt_start_s, clip.source_seconds),
            )
            for st in clip.stimuli:
                conn.execute(
                    "INSERT INTO stimuli (id, trial_id, condition, file_name, sha256, lufs_before, lufs_after, "
                    "gain_db, peak_dbfs, target_lufs) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (st.stimulus_id, clip.clip_id, st.condition, st.file_name, st.sha256, st.lufs_before,
                     st.lufs_after, st.gain_db, st.peak_dbfs, st.target_lufs),
                )
    return test_id


def list_tests(path=None) -> list[dict]:
    """Every test, newest first, with its counts of trials, sessions and finished sessions."""
    with connect(path) as conn:
        rows = conn.execute(
            "SELECT t.id, t.name, t.folder, t.source, t.created_at, t.active, "
            "(SELECT COUNT(*) FROM trials WHERE test_id = t.id AND is_training = 0) AS n_trials, "
            "(SELECT COUNT(*) FROM sessions WHERE test_id = t.id) AS n_sessions, "
            "(SELECT COUNT(*) FROM sessions WHERE test_id = t.id AND stage = 'done') AS n_finished "
            "FROM tests t ORDER BY t.created_at DESC, t.rowid DESC"
        ).fetchall()
    return [dict(r) for r in rows]


def get_test(ref: str | None = None, path=None) -> dict:
    """A test by name or id; ``None`` means the active one. Raises :class:`BadInputError` if none."""
    with connect(path) as conn:
        if ref is None:
            row = conn.execute("SELECT * FROM tests WHERE active = 1 ORDER BY created_at DESC LIMIT 1").fetchone()
            if row is None:
                raise BadInputError("no listening test exists yet; create one with `python -m restoration "
                                    "listening create --from DIR --name NAME`")
        else:
            row = conn.execute("SELECT * FROM tests WHERE name = ? OR id = ?", (ref, ref)).fetchone()
            if row is None:
                raise BadInputError(f"no listening test named {ref!r} (see `python -m restoration listening list`)")
    return dict(row)


def active_test(path=None) -> dict | None:
    """The test participants currently see, or ``None``."""
    try:
        return get_test(None, path)
    except BadInputError:
        return None


def set_active(test_ref: str, path=None) -> dict:
    """Make ``test_ref`` (name or id) the test participants see."""
    test = get_test(test_ref, path)
    with connect(path) as conn, transaction(conn):
        conn.execute("UPDATE tests SET active = (id = ?)", (test["id"],))
    return test


def add_to_pool(folder, *, prompt: str, genre: str, path=None) -> tuple[bool, int]:
    """Record a clip folder as a candidate for the next test; returns (newly added, pool size)."""
    with connect(path) as conn, transaction(conn):
        cur = conn.execute("INSERT INTO pool (folder, prompt, genre, added_at) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (folder) DO NOTHING", (str(folder), prompt, genre, now_iso()))
        count = conn.execute("SELECT COUNT(*) FROM pool").fetchone()[0]
    return cur.rowcount == 1, int(count)


def pool_folders(path=None) -> list[Path]:
    """Clip folders added with "Add to listening test", oldest first (missing ones skipped)."""
    with connect(path) as conn:
        rows = conn.execute("SELECT folder FROM pool ORDER BY id").fetchall()
    return [Path(r[0]) for r in rows if Path(r[0]).is_dir()]



# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Player:
    """One player of a step, as the browser gets it: a letter and an alias (no condition, no file name)."""

    letter: str  # "A"…"D"; "" for the calibration sound
    alias: str
    heard: bool


@dataclass(frozen=True)
class Step:
    """Where a session stands, as the server knows it (no conditions in here)."""

    session_id: str
    stage: str  # calibration, training, trials, done
    nonce: str | None
    position: int  # 1-based number of the current scored trial (0 outside "trials")
    total: int  # number of scored trials
    completed: int  # scored trials done
    players: tuple  # (Player, …)
    duration_s: float  # length of every stimulus of the step


def find_session(participant: str, test_id: str, path=None) -> str | None:
    """The session of ``participant`` (a database key from :func:`auth.known_participant`) in ``test_id``."""
    with connect(path) as conn:
        row = conn.execute("SELECT id FROM sessions WHERE participant = ? AND test_id = ?",
                           (participant, test_id)).fetchone()
    return row[0] if row else None


def _alias() -> str:
    return secrets.token_urlsafe(16)


def create_session(participant: str, test_id: str, *, device: str, experience: str, seed: int | None = None,
                   path=None) -> str:
    """Start (or return the existing) session of ``participant`` in ``test_id``.

    The trial order and every trial's letters are drawn from ``seed`` (a fresh one by default)
    and stored, with the seed and a fresh alias per trial and letter, before the call returns.
    """
    seed = new_seed() if seed is None else int(seed)
    with connect(path) as conn, transaction(conn):
        row = conn.execute("SELECT id FROM sessions WHERE participant = ? AND test_id = ?",
                           (participant, test_id)).fetchone()
        if row:
            return row[0]
        trials = conn.execute("SELECT id, is_training FROM trials WHERE test_id = ?", (test_id,)).fetchall()
        if not trials:
            raise BadInputError("this listening test has no trials")
        main = [r["id"] for r in trials if not r["is_training"]]
        training = next((r["id"] for r in trials if r["is_training"]), None)
        plan = plan_session(seed, main, CONDITIONS, training_id=training)
        session_id = secrets.token_hex(12)
        conn.execute(
            "INSERT INTO sessions (id, participant, test_id, seed, device, experience, stage, step_nonce, "
            "step_served_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'calibration', ?, ?, ?)",
            (session_id, participant, test_id, seed, device, experience, new_nonce(), time.time(), now_iso()),
        )
        ordered = ([training] if training else []) + list(plan.order)
        first = 0 if training else 1
        for position, trial_id in enumerate(ordered, start=first):
            conn.execute("INSERT INTO presentations (session_id, trial_id, position) VALUES (?, ?, ?)",
                         (session_id, trial_id, position))
            stimuli = {r["condition"]: r["id"] for r in conn.execute(
                "SELECT id, condition FROM stimuli WHERE trial_id = ?", (trial_id,))}
            for letter, condition in plan.letters[trial_id].items():
                conn.execute("INSERT INTO letters (session_id, trial_id, letter, condition, stimulus_id) "
                             "VALUES (?, ?, ?, ?, ?)", (session_id, trial_id, letter, condition, stimuli[condition]))
                conn.execute("INSERT INTO aliases (alias, session_id, trial_id, letter, stimulus_id) "
                             "VALUES (?, ?, ?, ?, ?)", (_alias(), session_id, trial_id, letter, stimuli[condition]))
        # The volume check plays the practice clip's calibration mix (or the first trial's letter A).
        calibration_trial = ordered[0]
        calibration = conn.execute("SELECT id FROM stimuli WHERE trial_id = ? AND condition = 'calibration'",
                                   (calibration_trial,)).fetchone()
        if calibration is None:
            calibration = conn.execute("SELECT stimulus_id FROM letters WHERE session_id = ? AND trial_id = ? "
                                       "AND letter = 'A'", (session_id, calibration_trial)).fetchone()
        conn.execute("INSERT INTO aliases (alias, session_id, trial_id, letter, stimulus_id) VALUES (?, ?, ?, '', ?)",
                     (_alias(), session_id, calibration_trial, calibration[0]))
    return session_id


def _session_row(conn, session_id: str):
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise BadInputError("unknown listening session; reload the page to start again")
    return row


def _current_trial(conn, session_id: str, stage: str) -> tuple[str, int] | None:
    """(trial id, position) of the step a session is at; the calibration step uses its sound's trial."""
    if stage == "calibration":
        row = conn.execute("SELECT trial_id FROM aliases WHERE session_id = ? AND letter = ''",
                           (session_id,)).fetchone()
        return (row[0], 0) if row else None
    if stage == "training":
        row = conn.execute("SELECT trial_id, position FROM presentations WHERE session_id = ? AND position = 0",
                           (session_id,)).fetchone()
    elif stage == "trials":
        row = conn.execute("SELECT trial_id, position FROM presentations WHERE session_id = ? AND position > 0 "
                           "AND completed_at IS NULL ORDER BY position LIMIT 1", (session_id,)).fetchone()
    else:
        return None
    return (row[0], int(row[1])) if row else None


def _duration_s(conn, trial_id: str) -> float:
    row = conn.execute("SELECT frames, sample_rate FROM trials WHERE id = ?", (trial_id,)).fetchone()
    return float(row["frames"]) / float(row["sample_rate"])


def _heard(conn, session_id: str, trial_id: str, letters, *, stage: str) -> dict[str, bool]:
    """Letter → heard, from the recorded play events (the calibration sound only needs to be played)."""
    rows = conn.execute("SELECT letter, kind, position_s, to_s, at_s FROM plays WHERE session_id = ? "
                        "AND trial_id = ? ORDER BY at_s, id", (session_id, trial_id)).fetchall()
    if stage == "calibration":
        played = {r["letter"] for r in rows if r["kind"] == heard.PLAY}
        return {letter: letter in played for letter in letters}
    events = [heard.PlayEvent(r["letter"], r["kind"], r["position_s"], r["at_s"], r["to_s"]) for r in rows]
    return heard.heard_letters(events, letters=letters, duration_s=_duration_s(conn, trial_id))


def _step(conn, session_id: str) -> Step:
    s = _session_row(conn, session_id)
    total = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0",
                         (session_id,)).fetchone()[0]
    completed = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0 "
                             "AND completed_at IS NOT NULL", (session_id,)).fetchone()[0]
    players: tuple = ()
    position, duration = 0, 0.0
    current = _current_trial(conn, session_id, s["stage"])
    if current is not None:
        trial_id, position = current
        if s["stage"] == "calibration":
            rows = conn.execute("SELECT letter, alias FROM aliases WHERE session_id = ? AND letter = ''",
                                (session_id,)).fetchall()
        else:
            rows = conn.execute("SELECT letter, alias FROM aliases WHERE session_id = ? AND trial_id = ? "
                                "AND letter != '' ORDER BY letter", (session_id, trial_id)).fetchall()
        done = _heard(conn, session_id, trial_id, [r["letter"] for r in rows], stage=s["stage"])
        players = tuple(Player(r["letter"], r["alias"], done[r["letter"]]) for r in rows)
        duration = _duration_s(conn, trial_id)
    return Step(session_id=session_id, stage=s["stage"], nonce=s["step_nonce"], position=position,
                total=int(total), completed=int(completed), players=players, duration_s=duration)


def current_step(session_id: str, path=None) -> Step:
    """The step a session is at (derived from the database, so a reload resumes)."""
    with connect(path) as conn:
        return _step(conn, session_id)


# --------------------------------------------------------------------------- serving and hearing


@dataclass(frozen=True)
class Served:
    """What an alias resolves to on the server (never sent to a browser)."""

    session_id: str
    trial_id: str
    letter: str
    file: Path


def resolve_alias(alias, path=None) -> Served | None:
    """The file behind a participant's alias, or ``None`` for an unknown alias."""
    if not isinstance(alias, str) or not 16 <= len(alias) <= 64:
        return None
    with connect(path) as conn:
        row = conn.execute(
            "SELECT a.session_id, a.trial_id, a.letter, st.file_name, te.folder FROM aliases a "
            "JOIN stimuli st ON st.id = a.stimulus_id JOIN trials tr ON tr.id = a.trial_id "
            "JOIN tests te ON te.id = tr.test_id WHERE a.alias = ?", (alias,)).fetchone()
    if row is None:
        return None
    return Served(row["session_id"], row["trial_id"], row["letter"], stimuli_root() / row["folder"] / row["file_name"])


def record_play(alias, *, kind, position_s, to_s=None, at_s: float | None = None, path=None) -> bool:
    """Record a play event of the version behind ``alias``; returns whether that version now counts as heard.

    ``at_s`` is the server's arrival time (now by default). Refused (:class:`BadInputError`)
    for an unknown alias, a malformed event, or a version that is not on the session's current step.
    """
    at_s = time.time() if at_s is None else float(at_s)
    if kind not in heard.KINDS:
        raise BadInputError(f"unknown play event {kind!r}")
    values = []
    for value in (position_s, to_s):
        if value is None:
            values.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise BadInputError("a play event's position must be a number of seconds ≥ 0")
        values.append(float(value))
    if values[0] is None or (kind == heard.SEEK and values[1] is None):
        raise BadInputError("a play event needs its position")
    served = resolve_alias(alias, path)
    if served is None:
        raise BadInputError("unknown sound")
    with connect(path) as conn:
        with transaction(conn):
            s = _session_row(conn, served.session_id)
            current = _current_trial(conn, served.session_id, s["stage"])
            on_step = current is not None and current[0] == served.trial_id and (
                (s["stage"] == "calibration") == (served.letter == ""))
            if not on_step:
                raise BadInputError(STALE_MESSAGE)
            conn.execute("INSERT INTO plays (session_id, trial_id, letter, kind, position_s, to_s, at_s) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (served.session_id, served.trial_id, served.letter, kind, values[0], values[1], at_s))
        return _heard(conn, served.session_id, served.trial_id, [served.letter], stage=s["stage"])[served.letter]


# --------------------------------------------------------------------------- submissions


def finish_calibration(session_id: str, nonce: str, path=None) -> Step:
    """Leave the calibration step (the practice trial comes next, or the first trial); its sound must have played."""
    with connect(path) as conn:
        with transaction(conn):
            s = _session_row(conn, session_id)
            check_nonce(s["step_nonce"], nonce)
            if s["stage"] != "calibration":
                raise BadInputError(STALE_MESSAGE)
            trial_id, _ = _current_trial(conn, session_id, "calibration")
            if not _heard(conn, session_id, trial_id, [""], stage="calibration")[""]:
                raise BadInputError("play the sound and set your volume before going on")
            has_training = conn.execute("SELECT 1 FROM presentations WHERE session_id = ? AND position = 0",
                                        (session_id,)).fetchone()
            conn.execute("UPDATE sessions SET stage = ?, step_nonce = ?, step_served_at = ? WHERE id = ?",
                         ("training" if has_training else "trials", new_nonce(), time.time(), session_id))
        return _step(conn, session_id)


def validate_ratings(ratings, letters) -> dict[str, float]:
    """Check a submission: exactly one rating per letter, each a finite number in 0–100."""
    if not isinstance(ratings, dict):
        raise BadInputError("ratings must map each letter to a number from 0 to 100")
    expected = set(letters)
    got = set(ratings)
    if got != expected:
        missing = sorted(expected - got)
        extra = sorted(str(x) for x in got - expected)
        parts = []
        if missing:
            parts.append(f"missing a rating for {', '.join(missing)}")
        if extra:
            parts.append(f"unknown version {', '.join(extra)}")
        raise BadInputError("rate every version of this trial: " + "; ".join(parts))
    out = {}
    for letter in sorted(expected):
        value = ratings[letter]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInputError(f"the rating of {letter} must be a number from 0 to 100, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 100.0:
            raise BadInputError(f"the rating of {letter} must be from 0 to 100, got {value:g}")
        out[letter] = value
    return out


def upsert_ratings(conn: sqlite3.Connection, *, session_id: str, trial_id: str, position: int, rows,
                   response_s: float | None = None, stamp: str | None = None) -> None:
    """Write one trial's ratings inside the caller's transaction.

    ``rows`` are ``(letter, condition, stimulus_id, sha256, rating)``. The key
    ``(session_id, trial_id, condition)`` is unique: writing a trial again updates its rows
    (``revision`` counts the writes) and never adds any.
    """
    stamp = stamp or now_iso()
    for letter, condition, stimulus_id, sha256, value in rows:
        conn.execute(
            "INSERT INTO ratings (session_id, trial_id, condition, letter, position, rating, stimulus_id, "
            "sha256, response_s, submitted_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (session_id, trial_id, condition) DO UPDATE SET rating = excluded.rating, "
            "letter = excluded.letter, updated_at = excluded.updated_at, response_s = excluded.response_s, "
            "revision = ratings.revision + 1",
            (session_id, trial_id, condition, letter, position, float(value), stimulus_id, sha256, response_s,
             stamp, stamp),
        )


def submit_ratings(session_id: str, nonce: str, ratings: dict, path=None) -> Step:
    """Save the ratings of the current trial (training or scored) and move to the next step.

    ``ratings`` maps each letter of the trial to 0–100. Every version must have been heard by
    the server's measure (:mod:`.heard`). Everything is checked inside one ``BEGIN IMMEDIATE``
    transaction; on any error nothing is written.
    """
    with connect(path) as conn:
        with transaction(conn):
            s = _session_row(conn, session_id)
            check_nonce(s["step_nonce"], nonce)
            if s["stage"] not in ("training", "trials"):
                raise BadInputError(STALE_MESSAGE)
            current = _current_trial(conn, session_id, s["stage"])
            if current is None:
                raise BadInputError(STALE_MESSAGE)
            trial_id, position = current
            rows = conn.execute(
                "SELECT l.letter, l.condition, l.stimulus_id, st.sha256 FROM letters l "
                "JOIN stimuli st ON st.id = l.stimulus_id WHERE l.session_id = ? AND l.trial_id = ?",
                (session_id, trial_id),
            ).fetchall()
            by_letter = {r["letter"]: r for r in rows}
            values = validate_ratings(ratings, by_letter)
            done = _heard(conn, session_id, trial_id, sorted(by_letter), stage=s["stage"])
            unheard = [letter for letter, ok in done.items() if not ok]
            if unheard:
                raise BadInputError(f"play {', '.join(unheard)} to the end before rating: the server has not "
                                    f"heard {'it' if len(unheard) == 1 else 'them'} played through")
            stamp = now_iso()
            response_s = time.time() - s["step_served_at"] if s["step_served_at"] else None
            upsert_ratings(conn, session_id=session_id, trial_id=trial_id, position=position,
                           rows=[(letter, by_letter[letter]["condition"], by_letter[letter]["stimulus_id"],
                                  by_letter[letter]["sha256"], value) for letter, value in values.items()],
                           response_s=response_s, stamp=stamp)
            conn.execute("UPDATE presentations SET completed_at = ? WHERE session_id = ? AND trial_id = ?",
                         (stamp, session_id, trial_id))
            left = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0 "
                                "AND completed_at IS NULL", (session_id,)).fetchone()[0]
            if left:
                conn.execute("UPDATE sessions SET stage = 'trials', step_nonce = ?, step_served_at = ? WHERE id = ?",
                             (new_nonce(), time.time(), session_id))
            else:
                conn.execute("UPDATE sessions SET stage = 'done', step_nonce = NULL, finished_at = ? WHERE id = ?",
                             (stamp, session_id))
        return _step(conn, session_id)


def reveal(session_id: str, path=None) -> list[dict]:
    """The letter → condition mapping of a *finished* session (refused before the end)."""
    with connect(path) as conn:
        s = _session_row(conn, session_id)
        if s["stage"] != "done":
            raise BadInputError("the mapping is shown only after the last trial")
        rows = conn.execute(
            "SELECT p.position, t.prompt, t.genre, l.letter, l.condition, r.rating FROM letters l "
            "JOIN presentations p ON p.session_id = l.session_id AND p.trial_id = l.trial_id "
            "JOIN trials t ON t.id = l.trial_id "
            "LEFT JOIN ratings r ON r.session_id = l.session_id AND r.trial_id = l.trial_id "
            "AND r.condition = l.condition WHERE l.session_id = ? AND p.position > 0 "
            "ORDER BY p.position, l.letter", (session_id,)
        ).fetchall()
    return [dict(r) for r in rows]

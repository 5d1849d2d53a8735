"""SQLite storage of listening tests: tests, trials, stimuli, sessions, ratings, the run pool.

One file, ``data_dir()/listening.sqlite3`` (``RESTORATION_DATA_DIR``; ``/data`` on a Space, the
only place that survives a restart). Rules from shared/LISTENING.md, "Storage":

- ``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (a commit is on
  disk before it returns), a 30 s busy timeout, and ``BEGIN IMMEDIATE`` for every write, so two
  writers queue instead of failing half-way.
- One connection per call: every public function opens its own and closes it. Nothing about a
  participant lives in module globals.
- Every trial is written the moment it is submitted, in one transaction with the step it unlocks.
  ``UNIQUE(session_id, trial_id, condition)`` plus ``INSERT … ON CONFLICT DO UPDATE`` makes a
  resubmission update the row instead of duplicating it.
- A submission names the one-time *step nonce* it was served with. The nonce changes when the step
  is saved, so a replayed or forged submission (old nonce, another session's nonce, unknown trial)
  is refused and changes nothing.
- Export reads a consistent snapshot made with SQLite's backup API, never the live file (commits
  may still sit in the WAL), and writes a long-format CSV (a row per rating) with :mod:`csv`.

The condition of a stimulus is stored here and only here; what a participant's browser gets is
built by :mod:`restoration.listening.session` from letters and uuid file names.
"""

from __future__ import annotations

import csv
import json
import math
import secrets
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BadInputError
from ..paths import data_dir
from .design import new_seed, plan_session
from .stimuli import CONDITIONS

BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tests (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    folder        TEXT NOT NULL,
    source        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 0,
    settings_json TEXT NOT NULL,
    log_json      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id              TEXT PRIMARY KEY,
    test_id         TEXT NOT NULL REFERENCES tests(id),
    is_training     INTEGER NOT NULL,
    clip_folder     TEXT NOT NULL,
    prompt          TEXT NOT NULL,
    genre           TEXT NOT NULL,
    clip_seed       INTEGER,
    model           TEXT NOT NULL,
    sample_rate     INTEGER NOT NULL,
    frames          INTEGER NOT NULL,
    excerpt_start_s REAL NOT NULL,
    source_seconds  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stimuli (
    id          TEXT PRIMARY KEY,
    trial_id    TEXT NOT NULL REFERENCES trials(id),
    condition   TEXT NOT NULL,
    file_name   TEXT NOT NULL UNIQUE,
    sha256      TEXT NOT NULL,
    lufs_before REAL,
    lufs_after  REAL NOT NULL,
    gain_db     REAL NOT NULL,
    peak_dbfs   REAL NOT NULL,
    target_lufs REAL NOT NULL,
    UNIQUE (trial_id, condition)
);
CREATE TABLE IF NOT EXISTS sessions (
    id             TEXT PRIMARY KEY,
    participant    TEXT NOT NULL,
    test_id        TEXT NOT NULL REFERENCES tests(id),
    seed           INTEGER NOT NULL,
    device         TEXT NOT NULL,
    experience     TEXT NOT NULL,
    stage          TEXT NOT NULL,
    step_nonce     TEXT,
    step_served_at REAL,
    created_at     TEXT NOT NULL,
    finished_at    TEXT,
    UNIQUE (participant, test_id)
);
CREATE TABLE IF NOT EXISTS presentations (
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    trial_id     TEXT NOT NULL REFERENCES trials(id),
    position     INTEGER NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (session_id, trial_id),
    UNIQUE (session_id, position)
);
CREATE TABLE IF NOT EXISTS letters (
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    trial_id    TEXT NOT NULL REFERENCES trials(id),
    letter      TEXT NOT NULL,
    condition   TEXT NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli(id),
    PRIMARY KEY (session_id, trial_id, letter),
    UNIQUE (session_id, trial_id, condition)
);
CREATE TABLE IF NOT EXISTS ratings (
    id           INTEGER PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    trial_id     TEXT NOT NULL REFERENCES trials(id),
    condition    TEXT NOT NULL,
    letter       TEXT NOT NULL,
    position     INTEGER NOT NULL,
    rating       REAL NOT NULL CHECK (rating >= 0 AND rating <= 100),
    stimulus_id  TEXT NOT NULL REFERENCES stimuli(id),
    sha256       TEXT NOT NULL,
    response_s   REAL,
    submitted_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revision     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (session_id, trial_id, condition)
);
CREATE TABLE IF NOT EXISTS pool (
    id       INTEGER PRIMARY KEY,
    folder   TEXT NOT NULL UNIQUE,
    prompt   TEXT NOT NULL,
    genre    TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_by_trial ON ratings (trial_id);
CREATE INDEX IF NOT EXISTS sessions_by_test ON sessions (test_id);
"""

_initialised: set[str] = set()  # database files whose schema exists (infrastructure, not user state)
_init_lock = threading.Lock()


def db_path() -> Path:
    """The database file: ``data_dir()/listening.sqlite3``."""
    return data_dir() / "listening.sqlite3"


def stimuli_root() -> Path:
    """Folder of served stimulus files (uuid names only; one sub-folder per test id)."""
    path = data_dir() / "listening"
    path.mkdir(parents=True, exist_ok=True)
    return path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    key = str(path.resolve())
    with _init_lock:
        if key in _initialised and path.exists():
            return
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BadInputError(f"cannot switch {path} to WAL mode (got {mode}); is it on a network drive?")
        conn.executescript(SCHEMA)
        _initialised.add(key)


@contextmanager
def connect(path=None):
    """A fresh connection to the database (schema created on first use); closed on exit."""
    path = Path(path) if path is not None else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _open(path)
    try:
        _ensure_schema(conn, path)
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
class Step:
    """Where a session stands, as the server knows it (no conditions in here)."""

    session_id: str
    stage: str  # calibration, training, trials, done
    nonce: str | None
    position: int  # 1-based number of the current scored trial (0 outside "trials")
    total: int  # number of scored trials
    completed: int  # scored trials done
    players: tuple  # ((letter, Path of the served file), …)


def _nonce() -> str:
    return secrets.token_urlsafe(18)


def find_session(participant: str, test_id: str, path=None) -> str | None:
    with connect(path) as conn:
        row = conn.execute("SELECT id FROM sessions WHERE participant = ? AND test_id = ?",
                           (participant, test_id)).fetchone()
    return row[0] if row else None


def create_session(participant: str, test_id: str, *, device: str, experience: str, seed: int | None = None,
                   path=None) -> str:
    """Start (or return the existing) session of ``participant`` in ``test_id``.

    The trial order and every trial's letters are drawn from ``seed`` (a fresh one by default)
    and stored, with the seed, before the call returns.
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
            (session_id, participant, test_id, seed, device, experience, _nonce(), time.time(), now_iso()),
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
    return session_id


def _session_row(conn, session_id: str):
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise BadInputError("unknown listening session; reload the page to start again")
    return row


def _current_presentation(conn, session_id: str, stage: str):
    if stage == "training":
        return conn.execute("SELECT * FROM presentations WHERE session_id = ? AND position = 0",
                            (session_id,)).fetchone()
    if stage == "trials":
        return conn.execute("SELECT * FROM presentations WHERE session_id = ? AND position > 0 "
                            "AND completed_at IS NULL ORDER BY position LIMIT 1", (session_id,)).fetchone()
    return None


def _step(conn, session_id: str) -> Step:
    s = _session_row(conn, session_id)
    folder = stimuli_root() / conn.execute("SELECT folder FROM tests WHERE id = ?", (s["test_id"],)).fetchone()[0]
    total = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0",
                         (session_id,)).fetchone()[0]
    completed = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0 "
                             "AND completed_at IS NOT NULL", (session_id,)).fetchone()[0]
    players: tuple = ()
    position = 0
    if s["stage"] == "calibration":
        row = conn.execute(
            "SELECT st.file_name FROM stimuli st JOIN presentations p ON p.trial_id = st.trial_id "
            "WHERE p.session_id = ? AND st.condition = 'calibration' ORDER BY p.position LIMIT 1", (session_id,)
        ).fetchone()
        if row is None:  # no practice clip: calibrate with the first trial's letter A
            row = conn.execute(
                "SELECT st.file_name FROM letters l JOIN stimuli st ON st.id = l.stimulus_id "
                "JOIN presentations p ON p.session_id = l.session_id AND p.trial_id = l.trial_id "
                "WHERE l.session_id = ? AND l.letter = 'A' ORDER BY p.position LIMIT 1", (session_id,)
            ).fetchone()
        players = (("", folder / row[0]),)
    elif s["stage"] in ("training", "trials"):
        pres = _current_presentation(conn, session_id, s["stage"])
        position = int(pres["position"])
        rows = conn.execute(
            "SELECT l.letter, st.file_name FROM letters l JOIN stimuli st ON st.id = l.stimulus_id "
            "WHERE l.session_id = ? AND l.trial_id = ? ORDER BY l.letter", (session_id, pres["trial_id"])
        ).fetchall()
        players = tuple((r["letter"], folder / r["file_name"]) for r in rows)
    return Step(session_id=session_id, stage=s["stage"], nonce=s["step_nonce"], position=position,
                total=int(total), completed=int(completed), players=players)


def current_step(session_id: str, path=None) -> Step:
    """The step a session is at (derived from the database, so a reload resumes)."""
    with connect(path) as conn:
        return _step(conn, session_id)


STALE_MESSAGE = ("This page is out of date: that step was already saved, or it was opened in another tab. "
                 "Reload the page to continue where you left off.")


def _check_nonce(session, nonce) -> None:
    if not isinstance(nonce, str) or not session["step_nonce"] or not secrets.compare_digest(
            nonce.encode(), session["step_nonce"].encode()):
        raise BadInputError(STALE_MESSAGE)


def finish_calibration(session_id: str, nonce: str, path=None) -> Step:
    """Leave the calibration step (the practice trial comes next, or the first trial)."""
    with connect(path) as conn:
        with transaction(conn):
            s = _session_row(conn, session_id)
            _check_nonce(s, nonce)
            if s["stage"] != "calibration":
                raise BadInputError(STALE_MESSAGE)
            has_training = conn.execute("SELECT 1 FROM presentations WHERE session_id = ? AND position = 0",
                                        (session_id,)).fetchone()
            conn.execute("UPDATE sessions SET stage = ?, step_nonce = ?, step_served_at = ? WHERE id = ?",
                         ("training" if has_training else "trials", _nonce(), time.time(), session_id))
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


def submit_ratings(session_id: str, nonce: str, ratings: dict, *, played: dict | None = None, path=None) -> Step:
    """Save the ratings of the current trial (training or scored) and move to the next step.

    ``ratings`` maps each letter of the trial to 0–100; ``played`` (letter → bool), when given,
    must say every version was played to the end. Everything is checked inside one
    ``BEGIN IMMEDIATE`` transaction; on any error nothing is written.
    """
    with connect(path) as conn:
        with transaction(conn):
            s = _session_row(conn, session_id)
            _check_nonce(s, nonce)
            if s["stage"] not in ("training", "trials"):
                raise BadInputError(STALE_MESSAGE)
            pres = _current_presentation(conn, session_id, s["stage"])
            if pres is None:
                raise BadInputError(STALE_MESSAGE)
            rows = conn.execute(
                "SELECT l.letter, l.condition, l.stimulus_id, st.sha256 FROM letters l "
                "JOIN stimuli st ON st.id = l.stimulus_id WHERE l.session_id = ? AND l.trial_id = ?",
                (session_id, pres["trial_id"]),
            ).fetchall()
            by_letter = {r["letter"]: r for r in rows}
            values = validate_ratings(ratings, by_letter)
            if played is not None:
                if not isinstance(played, dict) or not all(played.get(letter) is True for letter in by_letter):
                    raise BadInputError("play every version to the end before going on")
            stamp = now_iso()
            response_s = time.time() - s["step_served_at"] if s["step_served_at"] else None
            upsert_ratings(conn, session_id=session_id, trial_id=pres["trial_id"], position=int(pres["position"]),
                           rows=[(letter, by_letter[letter]["condition"], by_letter[letter]["stimulus_id"],
                                  by_letter[letter]["sha256"], value) for letter, value in values.items()],
                           response_s=response_s, stamp=stamp)
            conn.execute("UPDATE presentations SET completed_at = ? WHERE session_id = ? AND trial_id = ?",
                         (stamp, session_id, pres["trial_id"]))
            left = conn.execute("SELECT COUNT(*) FROM presentations WHERE session_id = ? AND position > 0 "
                                "AND completed_at IS NULL", (session_id,)).fetchone()[0]
            if left:
                conn.execute("UPDATE sessions SET stage = 'trials', step_nonce = ?, step_served_at = ? WHERE id = ?",
                             (_nonce(), time.time(), session_id))
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


# --------------------------------------------------------------------------- analysis and export

EXPORT_COLUMNS = (
    "test", "test_id", "session", "device", "experience", "session_seed", "session_finished",
    "trial", "is_training", "position", "genre", "prompt", "clip_seed", "clip_folder",
    "condition", "letter", "rating", "stimulus_file", "sha256", "response_s", "submitted_at", "updated_at",
    "revision",
)

_EXPORT_SQL = """
SELECT te.name AS test, te.id AS test_id, se.id AS session, se.device, se.experience,
       se.seed AS session_seed, (se.stage = 'done') AS session_finished,
       r.trial_id AS trial, tr.is_training, r.position, tr.genre, tr.prompt, tr.clip_seed, tr.clip_folder,
       r.condition, r.letter, r.rating, st.file_name AS stimulus_file, r.sha256, r.response_s,
       r.submitted_at, r.updated_at, r.revision
FROM ratings r
JOIN sessions se ON se.id = r.session_id
JOIN tests te ON te.id = se.test_id
JOIN trials tr ON tr.id = r.trial_id
JOIN stimuli st ON st.id = r.stimulus_id
WHERE te.id = ?
ORDER BY se.created_at, se.id, r.position, r.letter
"""


def rating_rows(test_id: str, path=None, *, conn: sqlite3.Connection | None = None) -> list[dict]:
    """Every rating of a test as long-format dicts (training ratings included, flagged)."""
    if conn is not None:
        return [dict(r) for r in conn.execute(_EXPORT_SQL, (test_id,))]
    with connect(path) as c:
        return [dict(r) for r in c.execute(_EXPORT_SQL, (test_id,))]


def session_counts(test_id: str, path=None, *, conn: sqlite3.Connection | None = None) -> dict[str, int]:
    """Session id → number of scored trials completed (every recruited session, even with none)."""
    sql = ("SELECT se.id, COUNT(p.completed_at) FROM sessions se LEFT JOIN presentations p "
           "ON p.session_id = se.id AND p.position > 0 WHERE se.test_id = ? GROUP BY se.id")
    if conn is not None:
        return {r[0]: int(r[1]) for r in conn.execute(sql, (test_id,))}
    with connect(path) as c:
        return {r[0]: int(r[1]) for r in c.execute(sql, (test_id,))}


@contextmanager
def snapshot(path=None):
    """A consistent read-only copy of the database (SQLite backup API), deleted on exit."""
    source = Path(path) if path is not None else db_path()
    with tempfile.TemporaryDirectory(prefix="listening-snapshot-") as tmp:
        copy = Path(tmp) / "snapshot.sqlite3"
        with connect(source) as live:
            dest = sqlite3.connect(str(copy))
            try:
                live.backup(dest)
            finally:
                dest.close()
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()


def export_csv(out, test_ref: str | None = None, path=None, *, annotate=None,
               extra_columns: tuple[str, ...] = ()) -> tuple[Path, int]:
    """Write a long-format CSV (a row per rating) of one test from a snapshot; returns (file, rows).

    ``annotate(snapshot_connection, test) -> {session id: {column: value}}``, when given, adds
    ``extra_columns`` per listener, computed from the same snapshot as the rows.
    """
    test = get_test(test_ref, path)
    out = Path(out)
    if out.is_dir():
        raise BadInputError(f"--out {out} is a folder; give a file name such as results.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with snapshot(path) as snap:
        rows = rating_rows(test["id"], conn=snap)
        per_session = annotate(snap, test) if annotate is not None else {}
    columns = EXPORT_COLUMNS + tuple(extra_columns)
    tmp = out.with_name(f".{out.name}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            row = {**row, **per_session.get(row["session"], {})}
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    tmp.replace(out)
    return out, len(rows)



"""The listening test's SQLite database: schema, connections and transactions.

One file, ``data_dir()/listening.sqlite3`` (``RESTORATION_DATA_DIR``; ``/data`` on a Space, the
only place that survives a restart). Rules from docs/LISTENING.md, "Storage":

- ``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (a commit is on
  disk before it returns), a 30 s busy timeout, and ``BEGIN IMMEDIATE`` for every write, so two
  writers queue instead of failing half-way.
- One connection per call: every public function opens its own and closes it. Nothing about a
  participant lives in module globals.

The condition of a stimulus is stored here and only here. A participant's browser gets letters
and per-session aliases (``aliases``), never a stimulus id or file name.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BadInputError
from ..paths import data_dir

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
CREATE TABLE IF NOT EXISTS participants (
    token_sha256 TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id             TEXT PRIMARY KEY,
    participant    TEXT NOT NULL REFERENCES participants(token_sha256),
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
CREATE TABLE IF NOT EXISTS aliases (
    alias       TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    trial_id    TEXT NOT NULL REFERENCES trials(id),
    letter      TEXT NOT NULL,
    stimulus_id TEXT NOT NULL REFERENCES stimuli(id),
    UNIQUE (session_id, trial_id, letter)
);
CREATE TABLE IF NOT EXISTS plays (
    id         INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    trial_id   TEXT NOT NULL REFERENCES trials(id),
    letter     TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('play', 'stop', 'seek')),
    position_s REAL NOT NULL,
    to_s       REAL,
    at_s       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS export_tickets (
    ticket_sha256 TEXT PRIMARY KEY,
    test_id       TEXT NOT NULL REFERENCES tests(id),
    expires_at    REAL NOT NULL
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
CREATE INDEX IF NOT EXISTS plays_by_step ON plays (session_id, trial_id);
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
    """The current UTC time, ISO 8601 with milliseconds."""
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

"""Export of a listening test: long-format rows (a row per rating) from a consistent snapshot.

Export reads a copy made with SQLite's backup API, never the live file (commits may still sit in
the WAL), and writes CSV with :func:`restoration.csvfiles.write_rows`. The same writer serves the
CLI (a file, replaced atomically) and the organiser's download (text produced on demand, nothing
left on disk).
"""

from __future__ import annotations

import io
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..csvfiles import write_rows
from ..errors import BadInputError
from .db import connect, db_path
from .store import get_test

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


def write_csv(fh, test: dict, path=None, *, annotate=None, extra_columns: tuple[str, ...] = ()) -> int:
    """Write ``test``'s CSV (a row per rating) to the text file ``fh`` from a snapshot; returns the row count.

    ``annotate(snapshot_connection, test) -> {session id: {column: value}}``, when given, adds
    ``extra_columns`` per listener, computed from the same snapshot as the rows.
    """
    with snapshot(path) as snap:
        rows = rating_rows(test["id"], conn=snap)
        per_session = annotate(snap, test) if annotate is not None else {}
    rows = [{**row, **per_session.get(row["session"], {})} for row in rows]
    return write_rows(fh, rows, columns=EXPORT_COLUMNS + tuple(extra_columns))


def export_csv(out, test_ref: str | None = None, path=None, *, annotate=None,
               extra_columns: tuple[str, ...] = ()) -> tuple[Path, int]:
    """Write a test's CSV to the file ``out`` (replaced atomically); returns (file, rows). See :func:`write_csv`."""
    test = get_test(test_ref, path)
    out = Path(out)
    if out.is_dir():
        raise BadInputError(f"--out {out} is a folder; give a file name such as results.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            n = write_csv(fh, test, path, annotate=annotate, extra_columns=extra_columns)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, n


def csv_text(test_ref: str | None = None, path=None, *, annotate=None,
             extra_columns: tuple[str, ...] = ()) -> tuple[str, str, int]:
    """A test's CSV as text, for a download: (test name, text, rows). Nothing is written to disk."""
    test = get_test(test_ref, path)
    buffer = io.StringIO(newline="")
    n = write_csv(buffer, test, path, annotate=annotate, extra_columns=extra_columns)
    return test["name"], buffer.getvalue(), n

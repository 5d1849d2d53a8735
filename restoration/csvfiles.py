"""CSV tables as this package writes them: rows of dicts, a header line, ``\\n`` line ends.

A ``None`` value is written as an empty cell (the JSON files beside a CSV say why a value is
undefined). Every CSV the package writes (``metrics.csv``, a batch's ``clips.csv`` and
``summary.csv``, the listening test's export) goes through :func:`write_rows`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, TextIO


def write_rows(handle: TextIO, rows: Iterable[dict], *, columns: Iterable[str] | None = None) -> int:
    """Write ``rows`` to the text file ``handle`` under a header of ``columns``; returns the row count.

    ``columns`` defaults to the keys of the first row; keys a row lacks are empty cells. With no
    rows and no ``columns`` nothing is written.
    """
    rows = list(rows)
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if not columns:
        return 0
    writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return len(rows)


def csv_text(rows: Iterable[dict], *, columns: Iterable[str] | None = None) -> str:
    """:func:`write_rows` into a string."""
    buffer = io.StringIO()
    write_rows(buffer, rows, columns=columns)
    return buffer.getvalue()


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

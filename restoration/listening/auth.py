"""Who may do what in a listening test: participant tokens, step nonces, the admin token, export tickets.

Nothing here is ever sent to a browser except what a browser is meant to hold:

- **Participant token.** A random bearer token (144 bits) the server issues to a new browser,
  which keeps it in its local storage. The database stores only its SHA-256
  (``participants.token_sha256``); a token the database does not know is refused, and the page
  gets a fresh one. There is no server secret to leak: identity survives a server restart
  because the database does.
- **Step nonce.** One-time, per session step; a replayed or forged submission is refused.
- **Admin token.** ``LISTENING_ADMIN_TOKEN`` on the server, typed by the organiser; checked on
  every organiser call in constant time. Unset or empty: nobody is admin.
- **Export ticket.** A one-time, five-minute download ticket issued only after the admin token
  was checked; the CSV is produced when the ticket is redeemed, and nothing is left on disk.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time

from ..errors import BadInputError
from ..hashing import text_sha256
from ..paths import data_dir
from .db import connect, db_path, now_iso, transaction

ADMIN_ENV = "LISTENING_ADMIN_TOKEN"
EXPORT_TICKET_S = 300.0
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

STALE_MESSAGE = ("This page is out of date: that step was already saved, or it was opened in another tab. "
                 "Reload the page to continue where you left off.")


# --------------------------------------------------------------------------- participants


def valid_token_format(value) -> bool:
    """True for a string that could be a participant token (the database decides whether it is one)."""
    return isinstance(value, str) and bool(_TOKEN_RE.match(value))


def participant_key(token: str) -> str:
    """What the database stores for a participant token: its SHA-256, hex."""
    return text_sha256(token)


def issue_participant(path=None) -> str:
    """A fresh participant token, recorded (hashed) in the database; the caller hands it to the browser."""
    token = secrets.token_urlsafe(18)
    with connect(path) as conn, transaction(conn):
        conn.execute("INSERT INTO participants (token_sha256, created_at) VALUES (?, ?)",
                     (participant_key(token), now_iso()))
    return token


def known_participant(token, path=None) -> str | None:
    """The database key of ``token`` when the server issued it, else ``None``."""
    if not valid_token_format(token):
        return None
    key = participant_key(token)
    with connect(path) as conn:
        row = conn.execute("SELECT 1 FROM participants WHERE token_sha256 = ?", (key,)).fetchone()
    return key if row else None


# --------------------------------------------------------------------------- step nonces


def new_nonce() -> str:
    """A one-time step nonce (144 random bits)."""
    return secrets.token_urlsafe(18)


def check_nonce(expected: str | None, given) -> None:
    """Refuse (:class:`BadInputError`, "out of date") unless ``given`` equals the session's current nonce."""
    if not isinstance(given, str) or not expected or not secrets.compare_digest(given.encode(), expected.encode()):
        raise BadInputError(STALE_MESSAGE)


# --------------------------------------------------------------------------- the organiser


def admin_ok(token) -> bool:
    """True when ``token`` equals ``LISTENING_ADMIN_TOKEN`` (unset or empty env: nobody is admin)."""
    expected = os.environ.get(ADMIN_ENV, "")
    if not expected or not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def check_admin(token) -> None:
    """Refuse (:class:`BadInputError`) unless ``token`` is the admin token; a refusal waits 0.25 s."""
    if admin_ok(token):
        return
    time.sleep(0.25)  # slows guessing
    if not os.environ.get(ADMIN_ENV):
        raise BadInputError(f"Admin functions are off: set {ADMIN_ENV} on the server.")
    if not str(token or "").strip():
        raise BadInputError("Type the admin token first.")
    raise BadInputError("Wrong admin token.")


def issue_export_ticket(admin_token, test_id: str, path=None) -> str:
    """A one-time ticket to download ``test_id``'s CSV within :data:`EXPORT_TICKET_S` (admin token checked)."""
    check_admin(admin_token)
    ticket = secrets.token_urlsafe(32)
    now = time.time()
    with connect(path) as conn, transaction(conn):
        conn.execute("DELETE FROM export_tickets WHERE expires_at < ?", (now,))
        conn.execute("INSERT INTO export_tickets (ticket_sha256, test_id, expires_at) VALUES (?, ?, ?)",
                     (text_sha256(ticket), test_id, now + EXPORT_TICKET_S))
    return ticket


def redeem_export_ticket(ticket, path=None) -> str:
    """The test id of a valid ticket, which is used up; :class:`BadInputError` for any other."""
    if not valid_token_format(ticket):
        raise BadInputError("no such export ticket")
    with connect(path) as conn, transaction(conn):
        row = conn.execute("SELECT test_id, expires_at FROM export_tickets WHERE ticket_sha256 = ?",
                           (text_sha256(ticket),)).fetchone()
        conn.execute("DELETE FROM export_tickets WHERE ticket_sha256 = ? OR expires_at < ?",
                     (text_sha256(ticket), time.time()))
    if row is None or row["expires_at"] < time.time():
        raise BadInputError("no such export ticket, or it was used or expired; export again")
    return row["test_id"]


# --------------------------------------------------------------------------- files never served


def private_paths() -> list[str]:
    """Files a web server must never serve: the database, with its WAL, shared-memory and journal files.

    An app that passes ``allowed_paths=[data_dir()]`` to Gradio would otherwise serve them to
    anyone who types their path: ratings, and the letter → version mapping of every session.
    """
    db = db_path()
    return [str(db), f"{db}-wal", f"{db}-shm", f"{db}-journal", str(data_dir() / "listening")]

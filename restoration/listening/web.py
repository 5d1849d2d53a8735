"""The listening test's plain HTTP routes (FastAPI, no Gradio): the sounds, their play events, the export download.

Added to the FastAPI app that serves the participant page, under the page's own path
(:data:`PAGE_PATH` in the main app, ``""`` for the standalone page):

- ``GET {prefix}/audio/{alias}`` — the WAV behind one of a participant's aliases. The headers hold
  nothing derived from the file: no ``ETag``, no ``Last-Modified``, ``Cache-Control: no-store``,
  and every version of a clip has the same length, so the same size. Byte ranges are answered
  (a browser's seek asks for them).
- ``POST {prefix}/audio/{alias}/events`` — a play event, JSON ``{"kind": "play"|"stop"|"seek",
  "position_s": s, "to_s": s}``, stamped with the server's clock on arrival; answers
  ``{"heard": bool}``, the server's own verdict (:mod:`.heard`).
- ``GET {prefix}/export/{ticket}`` — a test's CSV for a one-time ticket the organiser tab issues
  after checking the admin token (:func:`auth.issue_export_ticket`). The CSV is made on demand
  from a snapshot and nothing is left on disk.

A refused request gets a 4xx status with one plain sentence, and the server logs one line.
"""

from __future__ import annotations

import logging
import re
import time

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import BadInputError

logger = logging.getLogger("restoration.listening")

#: Where the main app mounts the participant page.
PAGE_PATH = "/listening"
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def refuse_log(what: str, reason) -> None:
    """Log a refused call as one line (no traceback)."""
    logger.warning("listening: refused %s: %s", what, str(reason).splitlines()[0] if str(reason) else "")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=…`` header; ``None`` for the whole file.

    Raises ``ValueError`` for a range that cannot be satisfied.
    """
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        raise ValueError(header)
    if m.group(1) == "":  # the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise ValueError(header)
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise ValueError(header)
    return first, min(last, size - 1)


def add_routes(app, prefix: str = "") -> None:
    """Add the audio, play-event and export routes to the FastAPI ``app`` under ``prefix`` (e.g. ``/listening``).

    Call it before mounting a Gradio app on the same path: routes match in the order they were added.
    """
    from . import auth, results, store

    prefix = prefix.rstrip("/")

    def audio(alias: str, request: Request):
        served = store.resolve_alias(alias)
        if served is None or not served.file.is_file():
            refuse_log("a sound", "unknown alias")
            return PlainTextResponse("No such sound.", status_code=404, headers=_NO_STORE)
        body = served.file.read_bytes()
        headers = {**_NO_STORE, "Accept-Ranges": "bytes"}
        try:
            wanted = _byte_range(request.headers.get("range"), len(body))
        except ValueError:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(body)}"})
        if wanted is None:
            return Response(body, media_type="audio/wav", headers=headers)
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        return Response(body[first:last + 1], status_code=206, media_type="audio/wav", headers=headers)

    async def events(alias: str, request: Request):
        at_s = time.time()  # the server's clock, on arrival
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            refuse_log("a play event", "not a JSON object")
            return JSONResponse({"error": "A play event is a JSON object."}, status_code=400, headers=_NO_STORE)
        try:
            heard = await run_in_threadpool(store.record_play, alias, kind=data.get("kind"),
                                            position_s=data.get("position_s"), to_s=data.get("to_s"), at_s=at_s)
        except BadInputError as exc:
            refuse_log("a play event", exc)
            return JSONResponse({"error": str(exc)}, status_code=409, headers=_NO_STORE)
        return JSONResponse({"heard": heard}, headers=_NO_STORE)

    def export(ticket: str):
        try:
            test_id = auth.redeem_export_ticket(ticket)
            name, text, _ = results.export_text(test_id)
        except BadInputError as exc:
            refuse_log("an export download", exc)
            return PlainTextResponse(str(exc), status_code=403, headers=_NO_STORE)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "test"
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="listening-{safe}.csv"'})

    app.add_api_route(f"{prefix}/audio/{{alias}}", audio, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{prefix}/audio/{{alias}}/events", events, methods=["POST"], include_in_schema=False)
    app.add_api_route(f"{prefix}/export/{{ticket}}", export, methods=["GET"], include_in_schema=False)

"""Request guards that run before a body is read: key first, then size; and short validation errors.

``BodyGuard`` (pure ASGI middleware) answers, before the body is parsed:

* 401 to a ``/v1/`` request without a valid key (so an anonymous caller cannot make the service
  parse a large body);
* 413 when ``Content-Length`` exceeds ``ENCAISSE_SERVING_MAX_BODY_BYTES``, or when a body sent
  without one grows past it.

``validation_error`` replaces FastAPI's 422 answer: it lists at most :data:`MAX_ERRORS` errors and
never sends the input back (a 50 MB body must not come back in the answer).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from serving.auth import token_from_request
from serving.keys import verify_key

MAX_ERRORS = 20
"""Validation errors listed in a 422 answer (the count of the others is given)."""


async def _send_json(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Check the key (``/v1/``) and the body's size before any of it is read (see the module docstring)."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith("/v1/"):  # every /v1/ path needs a key; the public ones live outside /v1/
            conn = HTTPConnection(scope)
            token = token_from_request(conn)
            state = scope["app"].state.encaisse
            if token is None or verify_key(state.engine, token) is None:
                await _send_json(send, 401, "Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
                                 if token is None else "Invalid or revoked API key.",
                                 {"WWW-Authenticate": 'Bearer realm="encaisse"'})
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        limit = self.max_body_bytes
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not a number.")
                return
            if n > limit:
                await _send_json(send, 413, f"The request body has {n} bytes; the limit is {limit} "
                                            "(ENCAISSE_SERVING_MAX_BODY_BYTES). Send fewer rows per call.")
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit, then hand the body on.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                await _send_json(send, 413, f"The request body exceeds {limit} bytes "
                                            "(ENCAISSE_SERVING_MAX_BODY_BYTES). Send fewer rows per call.")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _short(value: Any, limit: int = 80) -> Any:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing where each error is and what it is; never the sent input (at most ``MAX_ERRORS``)."""
    errors = list(exc.errors())
    listed = [{"loc": list(e.get("loc", ())), "msg": _short(e.get("msg", ""), 200), "type": e.get("type")}
              for e in errors[:MAX_ERRORS]]
    out: dict[str, Any] = {"detail": listed}
    if len(errors) > MAX_ERRORS:
        out["more_errors"] = len(errors) - MAX_ERRORS
    return JSONResponse(out, status_code=422)

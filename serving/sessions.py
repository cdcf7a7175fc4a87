"""The web pages' session: a signed cookie holding an API key's row id (never the key).

The cookie is base64 JSON and its HMAC-SHA256, keyed by the session secret. The key row is read
again on every request (``serving.keys.principal_of_key_id``), so a revoked key logs out at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from fastapi import Request
from fastapi.responses import Response

SESSION_COOKIE = "encaisse_session"
LOGIN_CSRF_COOKIE = "encaisse_login_csrf"
SESSION_MAX_AGE = 12 * 3600
"""Seconds a session lasts."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_session(secret: str, payload: dict) -> str:
    """``payload`` as a cookie value: base64 JSON and its HMAC-SHA256 (keyed by the session secret)."""
    if not secret:
        raise ValueError("no session secret: nothing is signed without one")
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_session(secret: str, value: str | None, now: float | None = None) -> dict | None:
    """The payload of a cookie made by :func:`sign_session`; None when forged, malformed or expired."""
    if not secret or not value or value.count(".") != 1 or len(value) > 4096:
        return None
    body, mac = value.split(".")
    want = hmac.new(secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), want):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or (now or time.time()) - float(payload.get("iat", 0)) > SESSION_MAX_AGE:
        return None
    return payload


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")

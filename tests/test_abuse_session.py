"""Page sessions cannot be forged: no placeholder secret ever signs one, and a new secret ends old sessions."""

from __future__ import annotations

import stat
import time

import pytest

from abuse_helpers import client, key, make_store
from serving.config import SECRET_FILE, ServingSettings, resolve_session_secret
from serving.sessions import SESSION_COOKIE, sign_session


def forged(secret: str, kid: int = 1) -> str:
    return sign_session(secret, {"csrf": "f", "iat": int(time.time()), "kid": kid})


@pytest.mark.parametrize("secret", ["changethis", "CHANGETHIS", "secret", "", "short-but-random-7f3a"])
def test_placeholder_or_short_secrets_are_refused_in_every_environment(secret, monkeypatch):
    monkeypatch.setenv("ENCAISSE_SERVING_SESSION_SECRET", secret)
    for env in ("development", "production"):
        monkeypatch.setenv("ENCAISSE_SERVING_ENVIRONMENT", env)
        with pytest.raises(ValueError, match="placeholder|characters"):
            ServingSettings()


def test_a_cookie_signed_with_the_placeholder_opens_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("ENCAISSE_SERVING_SESSION_SECRET", raising=False)
    settings = make_store(tmp_path / "home")
    key(settings)  # key id 1: an admin
    with client(settings) as tc:
        tc.cookies.set(SESSION_COOKIE, forged("changethis"))
        r = tc.get("/kpis", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        real = forged(tc.app.state.encaisse.session_secret)
        tc.cookies.set(SESSION_COOKIE, real)
        assert tc.get("/kpis", follow_redirects=False).status_code == 200  # the real secret does sign sessions


def test_without_a_configured_secret_one_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("ENCAISSE_SERVING_SESSION_SECRET", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    first = resolve_session_secret(ServingSettings(), home)
    assert len(first) >= 32 and first != "changethis"
    path = home / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_session_secret(ServingSettings(), home) == first  # kept, not redrawn
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_session_secret(ServingSettings(), other) != first
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        resolve_session_secret(ServingSettings(), home)


def test_changing_the_secret_ends_every_session(tmp_path, monkeypatch):
    settings = make_store(tmp_path / "home")
    key(settings)
    old_secret, new_secret = "a" * 20 + "-old-secret-0123456789", "b" * 20 + "-new-secret-0123456789"
    with client(settings, ServingSettings(session_secret=old_secret)) as tc:
        cookie = forged(old_secret)
        tc.cookies.set(SESSION_COOKIE, cookie)
        assert tc.get("/kpis", follow_redirects=False).status_code == 200
    with client(settings, ServingSettings(session_secret=new_secret)) as tc:
        tc.cookies.set(SESSION_COOKIE, cookie)
        assert tc.get("/kpis", follow_redirects=False).status_code == 303


def test_serve_refuses_a_placeholder_secret_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from encaisse.cli import app

    monkeypatch.setenv("ENCAISSE_SERVING_SESSION_SECRET", "changethis")
    res = CliRunner().invoke(app, ["serve", "--home", str(tmp_path / "ws")])
    assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
    assert "ENCAISSE_SERVING_SESSION_SECRET is a placeholder ('changethis')" in " ".join(res.stderr.split())

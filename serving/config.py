"""Settings of the HTTP service, read from ``ENCAISSE_SERVING_*`` environment variables.

The workspace (store, registry) is ``ledger.workspace.Settings``; this adds what only the service
needs. A placeholder or short session secret is refused in every environment; with none set, a
random one is made once and kept in the workspace (``session-secret``, mode 600), see
:func:`resolve_session_secret`.
"""

from __future__ import annotations

import logging
import secrets
import stat
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.workspace import write_once

log = logging.getLogger(__name__)

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "changeme", "secret", "password", "development"})
"""Well-known values that must never sign a session."""
MIN_SECRET_CHARS = 32
"""Shortest session secret accepted (``secrets.token_urlsafe(32)`` gives 43 characters)."""
SECRET_FILE = "session-secret"
"""The file in the workspace holding the generated session secret when none is configured."""


class ServingSettings(BaseSettings):
    """How the service behaves (limits, environment, the web pages' session secret)."""

    model_config = SettingsConfigDict(env_prefix="ENCAISSE_SERVING_", extra="forbid")

    environment: Literal["development", "staging", "production"] = Field(
        default="development", description="Where the service runs (shown in logs; every environment refuses "
                                           "placeholder secrets).")
    session_secret: str | None = Field(
        default=None, description="Secret signing the web pages' session cookie (at least 32 characters). "
                                  "Unset: a random secret kept in the workspace file `session-secret`.")
    max_invoices_per_call: int = Field(default=10_000, ge=1, description="Invoices one score call may carry.")
    max_history_rows: int = Field(default=200_000, ge=1, description="History rows a stateless score call may carry.")
    max_rows_per_write: int = Field(default=50_000, ge=1, description="Rows one invoices/payments call may carry.")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="Largest request body (bytes); "
                                                                                "a larger one is a 413 before parsing.")
    write_timeout_seconds: float = Field(default=20.0, gt=0, description="How long a write waits for the store's "
                                                                         "write lock before a 503 with Retry-After.")
    client_feature_cache_days: int = Field(default=8, ge=1, description="as_of days whose client features are kept.")
    score_cache_days: int = Field(default=4, ge=1, description="as_of days whose encoded open invoices are kept "
                                                                "for score calls.")
    warm_today: bool = Field(default=True, description="Build today's open invoices for score calls at start-up "
                                                       "and, in the background, after a write.")
    sync_seconds: float = Field(default=1.0, ge=0, description="Read the store's change log this often and fold in "
                                "the rows other workers, replicas, ingests and dunning runs stored (0: never; a bulk "
                                "write reads the whole ledger again).")
    reload_seconds: float = Field(default=0.0, ge=0, description="Reload the whole ledger from the store in the "
                                  "background this often (0: only at start-up, on POST /v1/admin/reload, and after "
                                  "a bulk write seen in the change log).")

    @model_validator(mode="after")
    def _no_placeholder_secret(self) -> "ServingSettings":
        if self.session_secret is not None:
            validate_secret(self.session_secret, "ENCAISSE_SERVING_SESSION_SECRET")
        return self


def validate_secret(secret: str, where: str) -> str:
    """``secret`` if it may sign sessions.

    Raises:
        ValueError: a placeholder or well-known value, or shorter than :data:`MIN_SECRET_CHARS`.
    """
    fix = "set a random secret, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it " \
          "to use one generated in the workspace."
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{where} is a placeholder ({secret!r}): {fix}")
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{where} has {len(secret)} characters; at least {MIN_SECRET_CHARS} are needed: {fix}")
    return secret


def resolve_session_secret(serving: ServingSettings, home: Path) -> str:
    """The secret signing page sessions: the configured one, else the workspace's generated one.

    With no ``ENCAISSE_SERVING_SESSION_SECRET``, ``<home>/session-secret`` is read, or created once
    with 256 random bits (mode 600, written to a temporary file and linked into place, so workers
    starting together agree on one secret). Changing the secret (setting it, or deleting the file)
    ends every session signed with the old one.

    Raises:
        ValueError: the workspace file holds an unusable secret, or others may read it.
    """
    if serving.session_secret is not None:
        return validate_secret(serving.session_secret, "ENCAISSE_SERVING_SESSION_SECRET")
    path = Path(home) / SECRET_FILE
    if write_once(path, secrets.token_urlsafe(32) + "\n"):
        log.info("made a random session secret in %s", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} may be read by others (mode {mode:o}): `chmod 600 {path}`.")
    return validate_secret(path.read_text(encoding="utf-8").strip(), str(path))

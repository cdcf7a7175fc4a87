"""Settings of the HTTP service, read from ``ENCAISSE_SERVING_*`` environment variables.

The workspace (store, registry) is ``ledger.workspace.Settings``; this adds what only the service
needs. Outside development, a placeholder session secret is refused at start-up.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "secret"})


class ServingSettings(BaseSettings):
    """How the service behaves (limits, environment, the web pages' session secret)."""

    model_config = SettingsConfigDict(env_prefix="ENCAISSE_SERVING_", extra="forbid")

    environment: Literal["development", "staging", "production"] = Field(
        default="development", description="Where the service runs; only development accepts placeholder secrets.")
    session_secret: str = Field(
        default="changethis", description="Secret signing the web pages' session cookie.")
    max_invoices_per_call: int = Field(default=10_000, ge=1, description="Invoices one score call may carry.")
    max_history_rows: int = Field(default=200_000, ge=1, description="History rows a stateless score call may carry.")
    max_rows_per_write: int = Field(default=50_000, ge=1, description="Rows one invoices/payments call may carry.")
    client_feature_cache_days: int = Field(default=8, ge=1, description="as_of days whose client features are kept.")
    score_cache_days: int = Field(default=4, ge=1, description="as_of days whose encoded open invoices are kept "
                                                                "for score calls.")
    warm_today: bool = Field(default=True, description="Build today's open invoices for score calls at start-up "
                                                       "and, in the background, after a write.")

    @model_validator(mode="after")
    def _no_placeholder_secret(self) -> "ServingSettings":
        if self.environment != "development" and self.session_secret in PLACEHOLDER_SECRETS:
            raise ValueError(
                f"ENCAISSE_SERVING_SESSION_SECRET is a placeholder ({self.session_secret!r}) while "
                f"ENCAISSE_SERVING_ENVIRONMENT={self.environment}: set a random secret, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        return self

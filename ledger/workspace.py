"""One workspace folder holds the store, MLflow tracking and artifacts.

Defaults are embedded (SQLite files under ``./.encaisse``); PostgreSQL and a remote MLflow server
are chosen by configuration alone (``ENCAISSE_DATABASE_URL``, ``ENCAISSE_MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Encaisse keeps its state. Read from ``ENCAISSE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ENCAISSE_", extra="forbid")

    home: Path = Field(default=Path(".encaisse"), description="Workspace folder.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the ledger store.")
    mlflow_tracking_uri: str | None = Field(default=None, description="MLflow tracking URI.")
    model_name: str = Field(default="encaisse", description="Registered MLflow model name.")
    smtp_url: str | None = Field(default=None, description="SMTP server for dunning emails, e.g. "
                                 "smtp://user:pass@host:587?starttls=1 or smtps://host:465; none: the outbox folder.")
    mail_from: str = Field(default="Encaisse <encaisse@localhost>", description="From address of dunning emails.")

    @property
    def home_dir(self) -> Path:
        """The workspace folder as an absolute path, created on first use."""
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def store_url(self) -> str:
        """The ledger store URL: the configured one, or a SQLite file in the workspace."""
        return self.database_url or f"sqlite:///{self.home_dir / 'ledger.db'}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: the configured one, or a SQLite file in the workspace."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_dir(self) -> Path:
        """Where MLflow artifacts and reports go (absolute, so the current directory never matters)."""
        path = self.home_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def outbox_dir(self) -> Path:
        """Where the dunning run writes emails (without SMTP), SMS and letters: one folder per channel."""
        path = self.home_dir / "outbox"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def rejects_dir(self) -> Path:
        """Where ingest writes rejected rows."""
        path = self.home_dir / "rejects"
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_settings(home: Path | str | None = None) -> Settings:
    """Settings from the environment, with ``home`` (e.g. a ``--home`` flag) taking precedence."""
    if home is None:
        return Settings()
    return Settings(home=Path(home))


def write_once(path: Path, text: str, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True when this call made it.

    Written to a temporary file and linked into place, so processes starting together agree on one
    content: the first link wins, the others keep it.
    """
    path = Path(path)
    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)

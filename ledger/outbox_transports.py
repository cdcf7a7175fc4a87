"""Where dunning messages go: an SMTP server, or outbox folders in the workspace.

Emails go over SMTP when ``ENCAISSE_SMTP_URL`` is set (``smtp://user:pass@host:587?starttls=1``,
``smtps://host:465`` for implicit TLS), else to ``outbox/email/`` as ``.eml`` files a mail client
opens. SMS and letters have no reachable provider here: each channel is a :class:`Provider`
(a protocol), and the default one writes files under ``outbox/<channel>/``; a real SMS gateway or
print-and-post service is another class with the same ``deliver``.

A transport raises :class:`SendError` when a message did not go out; the caller records it as
failed (never as sent) and the next run tries again.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_TIMEOUT_SECONDS = 30.0
"""Seconds an SMTP connect or command waits before the message counts as failed."""


class SendError(RuntimeError):
    """A message did not go out (refused, connection lost, no server); nothing was delivered."""


class EmailTransport(Protocol):
    """Sends an email; returns where it went (a server, or a file)."""

    def send(self, message: EmailMessage) -> str: ...

    def close(self) -> None: ...


class Provider(Protocol):
    """Delivers an SMS or a letter: ``files`` are (file name, bytes); returns where it went."""

    def deliver(self, message_id: str, recipient: str | None, files: list[tuple[str, bytes]]) -> str: ...


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "message"


@dataclass
class OutboxEmail:
    """Writes each email as ``<folder>/<message id>.eml`` (RFC 5322, UTF-8), for the demo and tests."""

    folder: Path

    def send(self, message: EmailMessage) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        mid = str(message["Message-ID"] or "").strip("<>").split("@")[0]
        path = self.folder / f"{_safe(mid)}.eml"
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(message.as_bytes())
        tmp.replace(path)  # whole file or none
        return str(path)

    def close(self) -> None:
        return None


@dataclass
class OutboxProvider:
    """Writes what a provider would receive under ``<folder>/<message id>/``, one file each."""

    folder: Path

    def deliver(self, message_id: str, recipient: str | None, files: list[tuple[str, bytes]]) -> str:
        target = self.folder / _safe(message_id)
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files:
            (target / _safe(name)).write_bytes(content)
        (target / "recipient.txt").write_text((recipient or "") + "\n", encoding="utf-8")
        return str(target)


@dataclass(frozen=True)
class SmtpConfig:
    """An SMTP server from ``ENCAISSE_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False
    timeout: float = SMTP_TIMEOUT_SECONDS

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse ``smtp://[user:pass@]host[:port][?starttls=1&timeout=30]`` or ``smtps://...``.

        Raises:
            ValueError: not an smtp:// or smtps:// URL, or no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("ENCAISSE_SMTP_URL must look like smtp://user:pass@host:587?starttls=1 or "
                             f"smtps://user:pass@host:465; got scheme {parts.scheme!r}, host {parts.hostname!r}.")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        return cls(host=parts.hostname, port=parts.port or (465 if implicit else 25),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   implicit_tls=implicit, starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
                   timeout=float(query.get("timeout", SMTP_TIMEOUT_SECONDS)))


class SmtpTransport:
    """Sends over one SMTP connection, opened on the first message and reopened after a failure."""

    def __init__(self, config: SmtpConfig):
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        if c.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
            if c.starttls:
                smtp.starttls(context=context)
        if c.username:
            smtp.login(c.username, c.password or "")
        return smtp

    def send(self, message: EmailMessage) -> str:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            code = getattr(exc, "smtp_code", None)
            text = getattr(exc, "smtp_error", b"")
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            detail = f"{code} {text}".strip() if code else f"{exc.__class__.__name__}: {exc}"
            raise SendError(f"SMTP {self.config.host}:{self.config.port}: {detail}") from exc
        if refused:  # some recipients refused: for a one-recipient message, not delivered
            raise SendError(f"SMTP {self.config.host}:{self.config.port} refused {sorted(refused)}")
        return f"smtp://{self.config.host}:{self.config.port}"

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def email_transport(smtp_url: str | None, outbox_dir: Path) -> EmailTransport:
    """SMTP when a URL is set, else the outbox folder's ``email/``."""
    if smtp_url:
        return SmtpTransport(SmtpConfig.from_url(smtp_url))
    return OutboxEmail(outbox_dir / "email")

"""API keys: create, list, revoke and verify, against the ``api_keys`` table of the ledger store.

A key is ``enc_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored, with its
first :data:`PREFIX_CHARS` characters to find the row; the token is shown once, at creation. A
plain hash (no salt, no slow KDF) is the standard for API keys: the token is random and long, so
there is nothing to guess, and checking it stays a sub-millisecond look-up on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import sqlalchemy as sa

from ledger.schema import api_keys, clients

Role = Literal["collector", "treasurer", "system", "admin"]
ROLES: tuple[str, ...] = get_args(Role)

TOKEN_PREFIX = "enc_"
PREFIX_CHARS = 12
"""Characters of the token kept in clear (``enc_`` + 8): enough to be unique, useless to an attacker."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified, unrevoked key.

    Attributes:
        key_id: the key's row id.
        prefix: the key's clear prefix (safe to log).
        role: ``collector``, ``treasurer``, ``system`` or ``admin``.
        collector: for a collector key, the collector whose portfolio it may see.
        name: the key's label.
    """

    key_id: int
    prefix: str
    role: str
    collector: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``token`` is shown once and never stored."""

    token: str
    principal: Principal


def hash_token(token: str) -> str:
    """SHA-256 of the token, hex (64 characters)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(engine: sa.Engine, role: str, collector: str | None = None, name: str | None = None,
               now: datetime | None = None) -> NewKey:
    """Create a key with ``role`` (a collector key names its collector).

    Raises:
        ValueError: unknown role, or a collector key without a collector.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}.")
    collector = (collector or "").strip() or None
    if role == "collector" and collector is None:
        raise ValueError("a collector key needs --collector NAME: the collector whose portfolio it sees.")
    if role != "collector" and collector is not None:
        raise ValueError(f"only collector keys name a collector; a {role} key sees every portfolio.")
    for _ in range(5):  # a prefix collision (2^-48 per pair) is retried, not an error
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = token[:PREFIX_CHARS]
        with engine.begin() as conn:
            if conn.execute(sa.select(api_keys.c.id).where(api_keys.c.prefix == prefix)).first():
                continue
            key_id = conn.execute(api_keys.insert().values(
                prefix=prefix, key_hash=hash_token(token), name=name, role=role, collector=collector,
                created_at=now or datetime.now(UTC),
            )).inserted_primary_key[0]
        return NewKey(token=token, principal=Principal(int(key_id), prefix, role, collector, name))
    raise RuntimeError("could not draw a unique key prefix in 5 tries")


def verify_key(engine: sa.Engine, token: str | None) -> Principal | None:
    """The principal of a valid, unrevoked key; None for anything else (missing, unknown, revoked)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) < PREFIX_CHARS + 8 or len(token) > 256:
        return None
    prefix = token[:PREFIX_CHARS]
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["key_hash"], hash_token(token)):
        return None
    return _principal(row)


def principal_of_key_id(engine: sa.Engine, key_id: object) -> Principal | None:
    """The principal of the unrevoked key with row id ``key_id`` (what a page session holds); else None."""
    if not isinstance(key_id, int):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    return _principal(row)


def _principal(row) -> Principal:
    return Principal(int(row["id"]), row["prefix"], row["role"], row["collector"], row["name"])


def list_keys(engine: sa.Engine) -> list[dict]:
    """Every key (never the token or its hash): id, prefix, name, role, collector, created, revoked."""
    cols = [api_keys.c[n] for n in ("id", "prefix", "name", "role", "collector", "created_at", "revoked_at")]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(*cols).order_by(api_keys.c.id)).mappings()]


def revoke_key(engine: sa.Engine, key: str, now: datetime | None = None) -> dict:
    """Revoke the key with id or prefix ``key``; return its row (``already_revoked``: it was before this call).

    Raises:
        LookupError: no such key.
    """
    cond = api_keys.c.prefix == key
    if key.isdigit():
        cond = sa.or_(cond, api_keys.c.id == int(key))
    with engine.begin() as conn:
        row = conn.execute(sa.select(api_keys).where(cond)).mappings().first()
        if row is None:
            raise LookupError(f"No API key has id or prefix {key!r}; `encaisse keys list` shows them.")
        if row["revoked_at"] is None:
            conn.execute(api_keys.update().where(api_keys.c.id == row["id"]).values(revoked_at=now or datetime.now(UTC)))
        out = dict(conn.execute(sa.select(api_keys).where(api_keys.c.id == row["id"])).mappings().one())
    out.pop("key_hash", None)
    out["already_revoked"] = row["revoked_at"] is not None
    return out


def collector_has_clients(engine: sa.Engine, collector: str) -> bool:
    """Whether a stored client is assigned to ``collector`` (a collector key for anyone else sees nothing)."""
    query = sa.select(clients.c.client_id).where(clients.c.collector == collector).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None

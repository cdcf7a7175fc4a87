"""Who is held back as a control: a salted hash of the client and the step, the same everywhere.

The dunning run (``models.dunning_run``), the synthetic generator (``ledger.synth``) and an auditor
recomputing an assignment all call :func:`held_back`, so the three cannot disagree. Nothing about
the client (risk, amount, history) enters the draw: the groups are randomized.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ledger.workspace import write_once

HELD_BACK = "held_back"
"""``outcome`` of the action row that records a decision held back as a control."""


def control_draw(client_ids: Iterable[str], steps: Iterable[str], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per (client, step), fixed by the salt: SHA-256 of the three."""
    out = []
    for c, s in zip(client_ids, steps):
        digest = hashlib.sha256(f"{salt}\x1f{c}\x1f{s}".encode("utf-8")).digest()
        out.append(int.from_bytes(digest[:8], "big") / 2.0 ** 64)
    return np.asarray(out, dtype=float)


def held_back(client_ids: Iterable[str], steps: Iterable[str], *, salt: str, share: float,
              testable: Iterable[str]) -> np.ndarray:
    """True where the (client, step) decision is a control: a testable step whose draw is below ``share``."""
    clients, steps = list(client_ids), list(steps)
    draw = control_draw(clients, steps, salt)
    test = np.isin(np.asarray(steps, dtype=object), list(testable))
    return test & (draw < share)


SALT_FILE = "control-salt"


def control_salt(configured: str | None, home) -> str:
    """The salt of the control-group draw: the policy's, else a random one made once in the workspace
    (``<home>/control-salt``) and kept, so that a client stays in its group from run to run."""
    if configured:
        return configured
    path = Path(home) / SALT_FILE
    write_once(path, secrets.token_hex(16) + "\n", mode=0o644)
    return path.read_text(encoding="utf-8").strip()

"""Who is held back as a control: a salted hash of the client and the step, the same everywhere.

The dunning run (``models.dunning_run``), the synthetic generator (``ledger.synth``) and an auditor
recomputing an assignment all call :func:`held_back`, so the three cannot disagree. Nothing about
the client (risk, amount, history) enters the draw: the groups are randomized.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import numpy as np

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
"""The workspace file holding the random salt of a policy whose ``control.salt`` is empty."""


def workspace_salt(home: Path) -> str:
    """The workspace's control-group salt: read from ``home/control-salt``, created (random) on first use.

    The salt keeps the assignment unpredictable from outside while every run of this workspace
    draws the same groups; deleting the file re-randomizes them (and mixes the estimate's arms).
    """
    path = Path(home) / SALT_FILE
    if path.exists():
        salt = path.read_text(encoding="utf-8").strip()
        if len(salt) >= 8:
            return salt
    salt = secrets.token_hex(16)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(salt + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # first writer wins when two runs start together
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()

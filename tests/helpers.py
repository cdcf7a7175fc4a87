"""What several test modules share that is not a fixture."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str, in_ci: str = "this must be available in CI") -> None:
    """Fail under CI (where the resource must be there, ``in_ci`` says how), skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: {in_ci})")
    pytest.skip(reason)

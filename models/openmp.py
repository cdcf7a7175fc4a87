"""OpenMP waiting, set by the processes that fit or serve models (the CLI, the tests, the benchmarks)."""

from __future__ import annotations

import os


def use_passive_waiting() -> None:
    """Let LightGBM's idle OpenMP threads sleep instead of spinning (a value already in the environment wins).

    On shared cores (API workers beside a batch job, a loaded CI machine) spinning threads take the
    CPU the working ones need, and multi-threaded fits collapse under load (bench/RESULTS.md,
    threads). The OpenMP runtime reads the setting when it loads, so call this before anything
    imports LightGBM.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

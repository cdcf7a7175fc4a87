"""Control groups in the synthetic ledger, with the true effect of each testable step.

With :class:`ControlSim`, the generator's dunning holds back the (client, step) decisions that
:func:`ledger.control_groups.held_back` picks, as the dunning run does: a held-back decision is an
action row with outcome ``held_back``; it gets no effect, no promise and no answer. Its random draws
are *paired*: every call draws one number per invoice from a stream fixed by (seed, step, call), so
the ladder can be replayed with one step forced sent, or forced held back, for every decision, with
everything else equal. The difference of the two replays, decision by decision, is the true effect
(:func:`true_uplift`), the hidden answer the estimator (``models.uplift``) is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ControlSim:
    """Control groups to simulate: the share held back, the salt, the testable steps, and the steps
    that change nothing when sent (``inert``: no shorter delay, no promise, no answer), so that an
    estimator can be shown to find no effect where there is none."""

    share: float = 0.10
    salt: str = "synthetic-control"
    testable: tuple[str, ...] = ("preventive", "reminder_1", "reminder_2")
    inert: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 0.5:
            raise ValueError(f"control share must be in [0, 0.5]. Got {self.share!r} instead.")
        unknown = sorted((set(self.testable) | set(self.inert)) - {"preventive", "reminder_1", "reminder_2"})
        if unknown:
            raise ValueError(f"control steps must be among preventive, reminder_1, reminder_2. Got {unknown}.")


class SequentialDraws:
    """The generator's usual draws: one stream, as many numbers as elements asked for."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def start_step(self, name: str) -> None:
        pass

    def random(self, idx: np.ndarray) -> np.ndarray:
        return self.rng.random(len(idx))

    def integers(self, lo: int, hi: int, idx: np.ndarray) -> np.ndarray:
        return self.rng.integers(lo, hi, len(idx))

    def uniform(self, lo: float, hi: float, idx: np.ndarray) -> np.ndarray:
        return self.rng.uniform(lo, hi, len(idx))


class PairedDraws:
    """One number per invoice per call, from a stream fixed by (seed, step, call number), indexed by
    the invoices asked for: two replays of the ladder draw the same number for the same invoice."""

    def __init__(self, seed: int, n: int):
        self.seed, self.n = seed, n
        self.step, self.call = 0, 0

    def start_step(self, name: str) -> None:
        self.step, self.call = self.step + 1, 0

    def _stream(self) -> np.random.Generator:
        self.call += 1
        return np.random.default_rng([self.seed, self.step, self.call])

    def random(self, idx: np.ndarray) -> np.ndarray:
        return self._stream().random(self.n)[idx]

    def integers(self, lo: int, hi: int, idx: np.ndarray) -> np.ndarray:
        return self._stream().integers(lo, hi, self.n)[idx]

    def uniform(self, lo: float, hi: float, idx: np.ndarray) -> np.ndarray:
        return self._stream().uniform(lo, hi, self.n)[idx]


def true_uplift(decisions: pd.DataFrame, as_of, windows: Iterable[int] = (7, 14, 30),
                by: Iterable[str] = ("step",)) -> pd.DataFrame:
    """The true effect of sending, per group (``step`` by default, or ``step, profile``) and window.

    ``decisions`` is ``SyntheticLedger.control_truth`` (one row per invoice of a decision, with its
    clearing day if the step is sent and if it is held back). A decision (client, step, day) is paid
    within ``w`` days when all its invoices are; only decisions whose window ended before ``as_of``
    count, as in the estimate. Returns one row per group: ``n`` and ``uplift_<w>`` (the mean, over
    decisions, of paid-if-sent minus paid-if-held).
    """
    d = pd.Timestamp(as_of).normalize()
    by = list(by)
    keys = ["client_id", "step", "decision_date"]
    never = pd.Timestamp("2262-01-01")  # a never-paid invoice keeps its decision unpaid
    decisions = decisions.assign(cleared_if_sent=decisions["cleared_if_sent"].fillna(never),
                                 cleared_if_held=decisions["cleared_if_held"].fillna(never))
    last = decisions.groupby(keys).agg(profile=("profile", "first"), sent=("cleared_if_sent", "max"),
                                       held=("cleared_if_held", "max")).reset_index()
    out = []
    for w in windows:
        end = last["decision_date"] + pd.Timedelta(days=int(w))
        known = last[end < d]
        end = end[end < d]
        diff = (known["sent"] <= end).astype(float) - (known["held"] <= end).astype(float)
        g = diff.groupby([known[c] for c in by]).agg(["mean", "size"])
        g.columns = [f"uplift_{w}", f"n_{w}"]
        out.append(g)
    return pd.concat(out, axis=1).reset_index()

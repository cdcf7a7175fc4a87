"""How the generator's day numbers and codes become table columns: ids, labels, dates."""

from __future__ import annotations

import numpy as np

from ledger.synth.params import NEVER


def _labels(values: tuple, codes: np.ndarray) -> np.ndarray:
    return np.array(values, dtype=object)[codes]


def _ids(prefix: str, n: int, width: int | None = None) -> np.ndarray:
    width = max(width or 0, len(str(n)))
    return np.strings.add(prefix, np.strings.zfill(np.arange(1, n + 1).astype("U"), width)).astype(object)


def _dates(days: np.ndarray) -> np.ndarray:
    out = days.astype("datetime64[D]").astype("datetime64[s]")
    out[days >= NEVER] = np.datetime64("NaT")
    return out

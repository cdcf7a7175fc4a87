"""Reasons: the facts that push an invoice's P(very late) up the most, in the reader's words.

``EncaisseModel`` reads the very-late model's contributions (log-odds, per invoice and feature) and
asks here which of them to say; ``features.descriptions.describe`` has the words.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.descriptions import DESCRIBED_FEATURES as _DESCRIBED, describe


def speakable_cells(f: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Which (invoice, feature) cells ``describe`` has words for: decided per feature, not per cell."""
    speakable = np.zeros((len(f), len(names)), dtype=bool)
    for j, name in enumerate(names):
        if name not in f.columns or not (name in _DESCRIBED or name.startswith("a_")):
            continue
        col = f[name]
        if col.dtype == np.float64:
            speakable[:, j] = ~np.isnan(col.to_numpy())
        else:
            speakable[:, j] = [_has_value(x, name) for x in col.to_numpy(dtype=object)]
    return speakable


def pick_reasons(contrib: np.ndarray, names: list[str], f: pd.DataFrame, speakable: np.ndarray, n: int,
                  lang: str, at: np.ndarray | None = None) -> list[str]:
    """Per row, the words for the features that push P(very late) up the most (``contrib``: log-odds).

    ``at``: row i of ``contrib`` is row ``at[i]`` of ``f`` (None: row i).
    """
    m = len(contrib)
    if n <= 0:
        return [""] * m
    order = np.argsort(-contrib, axis=1)
    # Walk each row's features by falling contribution, as a reader would: stop at the first
    # non-positive one or after n reasons, skip the ones without words.
    rows = np.arange(m)
    said = np.zeros(m, dtype=int)
    picks: list[tuple[np.ndarray, np.ndarray, int]] = []  # (rows, features, slot)
    for k in range(order.shape[1]):
        j = order[:, k]
        live = (contrib[rows, j] > 0) & (said < n)
        if not live.any():
            break
        take = live & speakable[rows, j]
        if take.any():
            picks.append((rows[take], j[take], said[take]))
            said[take] += 1
    slots = [[""] * m for _ in range(n)]
    for r, j, s in picks:
        for jj in np.unique(j):  # format grouped by feature, values converted only for the picked cells
            sel = j == jj
            name = names[jj]
            # The column's array, not the Series: a Series take builds an index per call.
            values = f[name].array.take(r[sel] if at is None else at[r[sel]]).to_numpy(dtype=object)
            for i, slot, value in zip(r[sel], s[sel], values):
                slots[slot][i] = describe(name, value, lang)
    return ["; ".join(t for t in parts if t) for parts in zip(*slots)]


def _has_value(value, feature: str) -> bool:
    """Whether ``describe(feature, value)`` says something (the value is present)."""
    if feature.startswith("a_") and feature not in _DESCRIBED:
        return value is not None and bool(value == value)
    return not (value is None or (isinstance(value, float) and math.isnan(value)))

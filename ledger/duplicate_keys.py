"""Duplicate keys in a file: found by a digest of every key as the rows go by, settled among the
staged rows once the whole file is read (identical copies dropped, conflicting rows rejected)."""

from __future__ import annotations


import numpy as np
import pandas as pd

from ledger.contracts import Table
from ledger.parsing import split_duplicates
from ledger.staged_upsert import StagedUpsert


class KeyIndex:
    """A 64-bit digest of every staged row's key (and its source row), to find duplicate keys.

    16 bytes per row instead of the rows themselves; candidates are checked exactly against the
    staged keys and hashes, so a digest collision never rejects a row.
    """

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.seen = np.empty(0, dtype="uint64")  # sorted digests so far, kept by add(check=True)

    def add(self, key: pd.Series, source_row: pd.Series, check: bool = False) -> bool:
        """Record a chunk's keys; with ``check``, only if no digest repeats within the chunk or an
        earlier checked one. Whether they were recorded."""
        # categorize=False: keys are mostly distinct, so factorizing first only costs (10x here).
        digests = pd.util.hash_array(key.to_numpy(dtype=object), categorize=False)
        if check:
            new = np.sort(digests)
            repeated = bool((new[1:] == new[:-1]).any())
            if len(self.seen) and not repeated:
                at = np.minimum(np.searchsorted(self.seen, new), len(self.seen) - 1)
                repeated = bool((self.seen[at] == new).any())
            if repeated:
                return False
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self.seen = np.sort(np.concatenate([self.seen, new]), kind="stable")
        self.keys.append(digests)
        self.rows.append(source_row.to_numpy(dtype="int64"))
        return True

    def source_rows(self) -> list[int]:
        """The source rows recorded, in the order recorded."""
        return np.concatenate(self.rows).tolist() if self.rows else []

    def candidates(self) -> list[int]:
        """Source rows whose key digest appears more than once."""
        if not self.keys:
            return []
        keys = np.concatenate(self.keys)
        rows = np.concatenate(self.rows)
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        same = k[1:] == k[:-1]
        if not same.any():
            return []
        hit = np.zeros(len(k), dtype=bool)
        hit[1:] |= same
        hit[:-1] |= same
        return sorted(rows[order][hit].tolist())


def settle_duplicates(table: Table, staged: StagedUpsert, index: KeyIndex, tally: dict,
                       examples: dict) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Drop identical copies and reject conflicting duplicate keys among the staged rows.

    Returns:
        (conflicting rows as (source_row, reason), their (key, reason), number of identical copies
        dropped).
    """
    candidates = index.candidates()
    empty = pd.DataFrame(columns=["source_row", "reason"])
    no_keys = pd.DataFrame(columns=["key", "reason"])
    if not candidates:
        return empty, no_keys, 0
    d = staged.fetch(candidates).sort_values("source_row", kind="stable").reset_index(drop=True)
    key = d[table.key]
    d = d[key.duplicated(keep=False)]
    if not len(d):
        return empty, no_keys, 0
    conflict, same, rej = split_duplicates(table, d, tally, examples)
    copies = same[same[table.key].duplicated()]
    staged.discard(sorted(conflict["source_row"].tolist() + copies["source_row"].tolist()))
    keys = pd.DataFrame({"key": conflict[table.key].to_numpy(), "reason": rej["reason"].to_numpy()})
    return rej, keys, len(copies)

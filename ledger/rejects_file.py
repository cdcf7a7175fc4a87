"""The rejects file of an ingest: every rejected or filtered row with its source row number, its reason
and its original values, in source order (``<rejects_dir>/<file>-<timestamp>.rejects.csv``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ledger.mapping import SourceOptions
from ledger.sources import read_source


def _rejects_path(rejects_dir: Path, source: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = rejects_dir / f"{source.name}-{stamp}.rejects.csv"
    i = 1
    while path.exists():
        path = rejects_dir / f"{source.name}-{stamp}-{i}.rejects.csv"
        i += 1
    return path


def reread_rows(path: Path, opts: SourceOptions, wanted: set[int], chunk_rows: int) -> pd.DataFrame:
    """The original values of the source rows ``wanted`` (conflicting duplicate keys, found once the
    whole file was staged): the one case that reads a file a second time."""
    parts, first = [], 1
    for raw in read_source(path, opts, chunk_rows):
        rows = np.arange(first, first + len(raw))
        hit = np.isin(rows, list(wanted))
        if hit.any():
            part = raw.reset_index(drop=True)[hit].copy()
            part.insert(0, "source_row", rows[hit])
            parts.append(part)
        first += len(raw)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["source_row"])


class RejectsFile:
    """The rejects file, written a chunk at a time (rows in source order), created on first use."""

    def __init__(self, rejects_dir: Path, source: Path) -> None:
        self.rejects_dir, self.source = rejects_dir, source
        self.path: Path | None = None
        self.rejected = 0
        self.filtered = 0

    def write(self, rejected: pd.DataFrame, filtered: pd.DataFrame) -> None:
        self.rejected += len(rejected)
        self.filtered += len(filtered)
        both = [x for x in (rejected, filtered) if len(x)]
        if not both:
            return
        rows = pd.concat(both, ignore_index=True) if len(both) > 1 else both[0]
        rows = rows.sort_values("source_row", kind="stable")
        if self.path is None:
            self.rejects_dir.mkdir(parents=True, exist_ok=True)
            self.path = _rejects_path(self.rejects_dir, self.source)
            rows.to_csv(self.path, index=False)
        else:
            rows.to_csv(self.path, index=False, header=False, mode="a")

    def add_late(self, rejected: pd.DataFrame) -> None:
        """Rows rejected after the whole file was read (duplicate keys): merge them in, in order."""
        if not len(rejected):
            return
        self.rejected += len(rejected)
        if self.path is None:
            self.rejects_dir.mkdir(parents=True, exist_ok=True)
            self.path = _rejects_path(self.rejects_dir, self.source)
            rejected.sort_values("source_row", kind="stable").to_csv(self.path, index=False)
            return
        earlier = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        earlier["source_row"] = earlier["source_row"].astype("int64")
        both = pd.concat([earlier, rejected], ignore_index=True)
        both.sort_values("source_row", kind="stable").to_csv(self.path, index=False)

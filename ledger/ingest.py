"""Mapped ingest: read an export, map it to a canonical table, validate it, upsert it atomically.

Every input row ends up either stored (inserted, updated or unchanged) or in the rejects file
``<rejects_dir>/<file>-<timestamp>.rejects.csv`` with its source row number (1-based, counting data
rows, header excluded), the reason and its original values. Rows dropped by a mapping ``filters``
rule are written there too, with the reason ``filtered by mapping``, and counted as ``filtered``
(they are intended: they do not make the ingest fail). So ``read == inserted + updated + unchanged
+ rejected + filtered``.

Reasons a row is rejected: a missing required value, an unparsable date, amount or boolean, an
amount that is zero or negative, ``due_date`` before ``issue_date``, an unknown currency or
``doc_type``, and an id that appears more than once in the file with different values (every
such row is rejected: which one is right is the sender's call). Identical duplicates are stored
once and the copies counted unchanged.

By default an ingest with rejected rows stores nothing and raises ``IngestRejected`` (fix the
file and send it again); with ``allow_rejects=True`` the good rows are stored. Either way the
store changes in one transaction: a failure mid-file leaves it as it was.

Zero amounts (the SAP extract): 3,681 SAP invoice rows, and 222 other items, carry
``VALUE_EUR == 0`` (none is negative: the amounts are transformed integers, and small items round
to 0). The contract wants amounts > 0 and a zero-amount item owes nothing and cannot be late in any
way that matters for cash, so they are rejected with their reason rather than invented a value;
the SAP mapping is ingested with ``allow_rejects``. A negative amount is also rejected: the sign
of a movement belongs in ``doc_type`` (map it with ``values:``).

Without a mapping, a file in the canonical layout is accepted (its table from the file name,
``invoices*``, ``payments*``, ``clients*``, ``actions*``, or given); a missing ``doc_type`` column
means every row is an invoice. Actions without ``action_id`` get an id hashed from their content,
so sending them again is idempotent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import TABLES, Table, coerce_frame
from ledger.mapping import FALSE_VALUES, TRUE_VALUES, ColumnSpec, Mapping, SourceOptions, load_mapping
from ledger.rules import _check_rules, _Problems, _summaries
from ledger.schema import ingest_runs
from ledger.sources import CsvLayoutError as _CsvLayoutError
from ledger.sources import MALFORMED, SourceError, resolve_options, read_source
from ledger.hashing import content_ids, row_hashes
from ledger.writers import DirectInsert, StagedUpsert

log = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
"""Source rows read at a time."""

FILTERED = "filtered by mapping"

ProgressFn = Callable[[str, int, int | None], None]
"""Progress callback: (stage, done, total or None)."""


class IngestError(ValueError):
    """The file cannot be ingested at all (not found, unknown table, columns missing)."""


class IngestRejected(Exception):
    """Rows were rejected and ``allow_rejects`` was not given: nothing was stored."""

    def __init__(self, result: "IngestResult") -> None:
        self.result = result
        super().__init__(result.summary())


@dataclass
class IngestResult:
    """What became of a file's rows. ``read = inserted + updated + unchanged + rejected + filtered``."""

    table: str
    source: str
    mapping: str | None
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    filtered: int = 0
    rejects_file: str | None = None
    stored: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The result line for scripts: the six stable keys first, then details."""
        d = asdict(self)
        keys = ["read", "inserted", "updated", "unchanged", "rejected", "rejects_file",
                "filtered", "table", "source", "mapping", "stored", "seconds"]
        out = {k: d[k] for k in keys}
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        head = (f"{self.source}: read {self.read}, inserted {self.inserted}, updated {self.updated}, "
                f"unchanged {self.unchanged}, rejected {self.rejected}, filtered {self.filtered}")
        lines = [head] + self.problems
        if self.rejects_file:
            lines.append(f"rejected and filtered rows with their reasons: {self.rejects_file}")
        return "\n".join(lines)


# --- parsing (the row rules and their reasons: ledger.rules) -------------------------------------


def _text(s: pd.Series) -> pd.Series:
    """Source values as stripped text; empty and null become NA."""
    if isinstance(s.dtype, pd.StringDtype):
        # Text as the CSV readers give it: strip and blank out without a Python call per value.
        t = s.str.strip()
        return t.where(t != "").astype("object")
    if pd.api.types.is_float_dtype(s):
        # 18724.0 read from a typed source is the id 18724.
        t = s.map(lambda v: repr(int(v)) if v == v and float(v).is_integer() else repr(v), na_action="ignore")
    else:
        t = s.astype("object").where(s.notna())
        t = t.map(str, na_action="ignore")
    if not pd.api.types.is_object_dtype(t):
        t = t.astype("object")  # an all-missing column maps to floats; pandas' .str needs objects
    t = t.str.strip()
    return t.where(t != "")


_TRAILING_ZERO = re.compile(r"\.0+$")


def _shown(s: pd.Series) -> pd.Series:
    """Source values quoted for a reason ('2024-13-45')."""
    return "'" + _text(s).astype("object").fillna("") + "'"


def _stripped(s: pd.Series) -> pd.Series:
    """``_text`` without the conversion to Python strings: CSV text stays Arrow-backed."""
    if isinstance(s.dtype, pd.StringDtype):
        t = s.str.strip()
        return t.where(t != "")
    return _text(s)


def _parse_date(s: pd.Series, fmt: str | None) -> tuple[pd.Series, pd.Series]:
    """(dates, unparsable mask) for one source column.

    Each distinct text is parsed once (a column of dates repeats a few hundred days): parsing is
    value by value, so the dates are those of parsing every cell.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        d = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
        return d.dt.normalize().astype("datetime64[s]"), pd.Series(False, index=s.index)
    codes, uniques = pd.factorize(_stripped(s))  # missing -> code -1
    t = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    if fmt is None or fmt.lower() == "iso":
        parsed = pd.to_datetime(t, format="ISO8601", errors="coerce")
    else:
        if "." not in fmt:
            t2 = t.str.replace(_TRAILING_ZERO, "", regex=True)  # 20180109.0 from a float column
        else:
            t2 = t
        parsed = pd.to_datetime(t2, format=fmt, errors="coerce")
    days = parsed.dt.normalize().astype("datetime64[s]").to_numpy()
    days = np.append(days, np.datetime64("NaT", "s"))[codes]  # code -1: the NaT appended last
    out = pd.Series(days, index=s.index, dtype="datetime64[s]")
    return out, pd.Series((codes >= 0) & np.isnat(days), index=s.index)


def _parse_amount(s: pd.Series, opts: SourceOptions) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype("float64")
        return v, pd.Series(False, index=s.index)
    t = _text(s)
    t2 = t
    if opts.thousands:
        t2 = t2.str.replace(opts.thousands, "", regex=False)
    if opts.decimal != ".":
        t2 = t2.str.replace(opts.decimal, ".", regex=False)
    v = pd.to_numeric(t2, errors="coerce").astype("float64")
    return v, t.notna() & v.isna()


def _ambiguous_amounts(s: pd.Series, opts: SourceOptions) -> np.ndarray:
    """Text amounts holding a '.' when the decimal mark is another and '.' is no declared thousands
    separator: "1.234" could be 1234 or 1.234, so it is rejected rather than guessed."""
    if opts.decimal == "." or opts.thousands == "." or pd.api.types.is_numeric_dtype(s):
        return np.zeros(len(s), dtype=bool)
    return _text(s).str.contains(".", regex=False, na=False).to_numpy(dtype=bool)


def _parse_bool(s: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean"), pd.Series(False, index=s.index)
    t = _text(s).str.lower()
    true = set(TRUE_VALUES) | {v.lower() for v in spec.true_values or ()}
    false = set(FALSE_VALUES) | {v.lower() for v in spec.false_values or ()}
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[t.isin(true).to_numpy()] = True
    out[t.isin(false).to_numpy()] = False
    return out, t.notna() & out.isna()


def _source_series(raw: pd.DataFrame, spec: ColumnSpec) -> pd.Series:
    if spec.column is None:
        return pd.Series([spec.value] * len(raw), index=raw.index, dtype="object")
    s = raw[spec.column]
    if spec.values is not None:
        t = _text(s)
        mapped = t.map(spec.values)
        unmapped = t.notna() & mapped.isna()
        fallback = spec.default if spec.default is not None else None
        mapped = mapped.astype("object")
        mapped[unmapped.to_numpy()] = fallback if fallback is not None else t[unmapped]
        return mapped
    return s


def _per_distinct(t: pd.Series, fn: Callable[[str], str]) -> pd.Series:
    """``fn`` of each text (missing kept), called once per distinct value: a currency or doc_type
    column holds a handful of them."""
    codes, uniques = pd.factorize(t)
    done = np.array([fn(u) for u in uniques] + [None], dtype=object)
    out = pd.Series(done[codes], index=t.index, dtype=object)
    return out.where(codes >= 0, t)  # missing values as they were (None or NaN)


def _values_as_text(s: pd.Series) -> pd.Series:
    return _text(s).astype("object")


def _identity_mapping(table: Table, header: list[str]) -> Mapping:
    present = [n for n in table.names if n in header]
    cols: dict[str, Any] = {n: {"column": n} for n in present}
    if table.name == "invoices" and "doc_type" not in present:
        cols["doc_type"] = {"value": "invoice"}
    ignored = [c for c in header if c not in table.names and c != "source_row"]
    if ignored:
        log.warning("ignoring columns outside the %s contract: %s (declare them as `extra` in a "
                    "mapping to keep them)", table.name, ignored)
    try:
        return Mapping.model_validate({"table": table.name, "columns": cols})
    except Exception:
        missing = [n for n in table.required if n not in cols and not (table.name == "actions" and n == table.key)]
        hint = ""
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if len(header) == 1 and sep in str(header[0]):
                hint = (f" Its header looks separated by {name}, not commas: pass --delimiter {sep!r} (or "
                        "`delimiter` under `source` in a mapping).")
                break
        raise IngestError(
            f"The {table.name} file lacks required columns: {', '.join(missing)}. Add them, or ingest "
            f"with --mapping to say where they come from.{hint}"
        ) from None


def _map_chunk(
    mapping: Mapping, raw: pd.DataFrame, rows: np.ndarray, problems: _Problems
) -> pd.DataFrame:
    """Source rows -> a typed canonical frame (extras after), recording parse problems."""
    table = TABLES[mapping.table]
    out = pd.DataFrame(index=raw.index)
    for name in table.names:
        spec = mapping.columns.get(name)
        kind = table.column(name).kind
        if spec is None:
            out[name] = None
            continue
        s = _source_series(raw, spec)
        if kind == "date":
            parsed, bad = _parse_date(s, spec.format)
            fmt = spec.format or "ISO (YYYY-MM-DD)"
            problems.add("unparsable_date", name, bad,
                         lambda: f"unparsable {name} " + _shown(s) + f" (expected {fmt})", rows)
            out[name] = parsed
        elif kind in ("amount", "int"):
            parsed, bad = _parse_amount(s, mapping.source)
            problems.add("unparsable_amount", name, bad, lambda: f"unparsable {name} " + _shown(s), rows)
            ambiguous = _ambiguous_amounts(s, mapping.source) & ~bad.to_numpy()
            problems.add("ambiguous_amount", name, ambiguous, lambda: (
                f"ambiguous {name} " + _shown(s) + f": '.' is not the decimal mark ({mapping.source.decimal!r}) "
                "nor a declared thousands separator"), rows)
            out[name] = parsed if kind == "amount" else parsed.round().astype("Int64")
        elif kind == "bool":
            parsed, bad = _parse_bool(s, spec)
            problems.add("unparsable_bool", name, bad, lambda: f"unparsable {name} " + _shown(s), rows)
            out[name] = parsed
        else:
            t = _values_as_text(s)
            if name == "currency":
                t = _per_distinct(t, str.upper)
            elif name == "doc_type" and spec.values is None:
                t = _per_distinct(t, str.lower)
            out[name] = t
    for name, spec in mapping.columns.items():
        if spec.not_after:
            dates = out[[name, *spec.not_after]]
            out[name] = dates.min(axis=1, skipna=True).astype("datetime64[s]").where(out[name].notna())
    for name, spec in mapping.extra.items():
        s = _source_series(raw, spec)
        if spec.type == "number":
            out[name] = _parse_amount(s, mapping.source)[0]
        elif spec.type == "bool":
            out[name] = _parse_bool(s, spec)[0]
        elif spec.type == "date":
            out[name] = _parse_date(s, spec.format)[0].dt.strftime("%Y-%m-%d")
        else:
            out[name] = _values_as_text(s)
    return out


@dataclass
class _Chunk:
    good: pd.DataFrame  # typed canonical + extras + source_row
    rejects: pd.DataFrame  # source_row, reason, original columns
    filtered: pd.DataFrame


def _layout_rejects(raw: pd.DataFrame, rows: np.ndarray, malformed: dict[int, tuple[int, int]], tally: dict,
                    examples: dict) -> pd.DataFrame:
    """Rows with more fields than the header (``ledger.sources``), as rejects with their line number."""
    if not malformed:
        return pd.DataFrame(columns=["source_row", "reason"])
    at = sorted(malformed)
    out = raw.iloc[at].copy()
    reasons = [f"line {malformed[p][1]} has {malformed[p][0]} fields where the header has {raw.shape[1]} "
               "(an unquoted separator in a value?)" for p in at]
    out.insert(0, "reason", reasons)
    out.insert(0, "source_row", rows[at])
    tally.setdefault(("malformed", "row"), []).append(rows[at])
    examples.setdefault(("malformed", "row"), reasons[0])
    return out


def _process(mapping: Mapping, raw: pd.DataFrame, first_row: int,
             tally: dict, examples: dict) -> _Chunk:
    table = TABLES[mapping.table]
    malformed = raw.attrs.get(MALFORMED) or {}
    raw = raw.reset_index(drop=True)
    rows = np.arange(first_row, first_row + len(raw))
    layout = _layout_rejects(raw, rows, malformed, tally, examples)
    if len(layout):
        ok = ~np.isin(np.arange(len(raw)), list(malformed))
        raw, rows = raw[ok].reset_index(drop=True), rows[ok]
    keep = np.ones(len(raw), dtype=bool)
    for f in mapping.filters:
        t = _text(raw[f.column]).fillna("")
        keep &= t.isin(f.in_).to_numpy() if f.in_ is not None else ~t.isin(f.not_in).to_numpy()
    filtered = raw[~keep].copy()
    filtered.insert(0, "reason", FILTERED)
    filtered.insert(0, "source_row", rows[~keep])
    raw, rows = raw[keep].reset_index(drop=True), rows[keep]

    problems = _Problems(len(raw))
    df = _map_chunk(mapping, raw, rows, problems)
    allow_missing_key = table.name == "actions"
    _check_rules(table, df, rows, problems, allow_missing_key)
    for key, parts in problems.tally.items():
        tally.setdefault(key, []).extend(parts)
        examples.setdefault(key, problems.examples[key])
    bad = problems.bad
    rejects = raw[bad].copy()
    rejects.insert(0, "reason", problems.reasons[bad])
    rejects.insert(0, "source_row", rows[bad])
    if len(layout):
        rejects = pd.concat([layout, rejects], ignore_index=True).sort_values("source_row", kind="stable")
    good = df[~bad].copy()
    good["source_row"] = rows[~bad]
    return _Chunk(good=good, rejects=rejects, filtered=filtered)


def _prepare(table: Table, good: pd.DataFrame, hashed: bool = True) -> pd.DataFrame:
    """Give actions without an id their content id, and every row its ``row_hash`` if ``hashed``."""
    if table.name == "actions":
        missing = good["action_id"].isna()
        if missing.any():
            good.loc[missing, "action_id"] = content_ids(table, good[missing], "A").to_numpy()
    if not hashed:
        return good
    body = good.drop(columns=["source_row"])
    good["row_hash"] = row_hashes(table, coerce_frame(body, table)).to_numpy()
    return good


def _split_duplicates(table: Table, d: pd.DataFrame, tally: dict, examples: dict
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Rows sharing a key, split into conflicting ones (different values: rejected, with the rows
    named) and identical copies. Returns (conflicting rows, identical rows, rejects)."""
    n_hashes = d.groupby(table.key)["row_hash"].transform("nunique")
    conflict = d[n_hashes > 1]
    same = d[n_hashes == 1]
    if not len(conflict):
        return conflict, same, pd.DataFrame(columns=["source_row", "reason"])
    rows_by_key = conflict.groupby(table.key)["source_row"].apply(lambda r: ", ".join(map(str, sorted(r))))
    reason = conflict[table.key].map(
        lambda k: f"{table.key} {k} appears more than once with different values (rows {rows_by_key[k]})")
    rej = pd.DataFrame({"source_row": conflict["source_row"].to_numpy(), "reason": reason.to_numpy()})
    tally.setdefault(("duplicate", table.key), []).append(conflict["source_row"].to_numpy())
    examples.setdefault(("duplicate", table.key), f"{table.key} {conflict[table.key].iloc[0]}")
    return conflict, same, rej


def _finish(table: Table, good: pd.DataFrame, tally: dict, examples: dict) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Give actions their content ids, hash rows, and settle duplicate keys.

    Returns:
        (rows to upsert with ``row_hash``, conflicting duplicates as (source_row, reason), number
        of identical copies dropped).
    """
    good = _prepare(table, good)
    key = good[table.key]
    dup = key.duplicated(keep=False)
    if not dup.any():
        return good, pd.DataFrame(columns=["source_row", "reason"]), 0
    d = good[dup]
    conflict, same, rej = _split_duplicates(table, d, tally, examples)
    identical_copies = int(same[table.key].duplicated().sum())
    drop = good.index.isin(conflict.index) | (dup & key.duplicated(keep="first")).to_numpy()
    return good[~drop], rej, identical_copies


def validate_frame(table: str | Table, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate loosely typed canonical rows (e.g. from JSON) with the ingest's rules.

    Args:
        table: canonical table name or contract.
        df: rows with canonical column names; dates as ISO text or datetimes, amounts as numbers or
            text with a '.' decimal mark. Unknown columns are ignored.

    Returns:
        ``(good, rejects)``: ``good`` typed with ``contracts.coerce_frame`` (index kept, one row per
        key, ``row_hash`` added); ``rejects`` with ``source_row`` (1-based position in ``df``),
        ``reason`` and the original values.
    """
    spec = TABLES[table] if isinstance(table, str) else table
    mapping = _identity_mapping(spec, list(df.columns))
    tally: dict = {}
    examples: dict = {}
    original = df.reset_index(drop=True)
    chunk = _process(mapping, original, 1, tally, examples)
    good, dup_rej, _ = _finish(spec, chunk.good, tally, examples)
    if len(dup_rej):
        dup_rej = dup_rej.merge(original.assign(source_row=np.arange(1, len(original) + 1)), on="source_row")
    rejects = pd.concat([x for x in (chunk.rejects, dup_rej) if len(x)] or [chunk.rejects], ignore_index=True)
    rejects = rejects.sort_values("source_row", kind="stable").reset_index(drop=True)
    positions = good.pop("source_row").to_numpy() - 1
    good = coerce_frame(good, spec)
    good.index = df.index[positions]
    return good, rejects


# --- reading (ledger.sources) ------------------------------------------------------------------


def infer_table(path: Path) -> str:
    """The canonical table a file's name announces (``invoices_2024.csv`` -> invoices)."""
    name = path.name.lower()
    for t in TABLES:
        if name.startswith(t):
            return t
    raise IngestError(
        f"Cannot tell which table {path.name} holds: name it invoices*, payments*, clients* or "
        "actions*, or pass --table, or give a --mapping."
    )


def _rejects_path(rejects_dir: Path, source: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = rejects_dir / f"{source.name}-{stamp}.rejects.csv"
    i = 1
    while path.exists():
        path = rejects_dir / f"{source.name}-{stamp}-{i}.rejects.csv"
        i += 1
    return path


def _reread_rows(path: Path, opts: SourceOptions, wanted: set[int], chunk_rows: int,
                 fast_csv: bool) -> pd.DataFrame:
    parts, first = [], 1
    for raw in read_source(path, opts, chunk_rows, fast_csv=fast_csv):
        rows = np.arange(first, first + len(raw))
        hit = np.isin(rows, list(wanted))
        if hit.any():
            part = raw.reset_index(drop=True)[hit].copy()
            part.insert(0, "source_row", rows[hit])
            parts.append(part)
        first += len(raw)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["source_row"])


class _RejectsFile:
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


class _KeyRepeated(Exception):
    """A file going straight into its table repeats a key, or holds one already stored: stage it."""


class _KeyIndex:
    """A 64-bit digest of every staged row's key (and its source row), to find duplicate keys.

    16 bytes per row instead of the rows themselves; candidates are checked exactly against the
    staged keys and hashes, so a digest collision never rejects a row.
    """

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.seen = np.empty(0, dtype="uint64")  # sorted digests so far, kept by add(check=True)

    def add(self, key: pd.Series, source_row: pd.Series, check: bool = False) -> None:
        """Record a chunk's keys.

        Raises:
            _KeyRepeated: with ``check``, when a digest repeats within the chunk or an earlier
                checked one (nothing is recorded then).
        """
        # categorize=False: keys are mostly distinct, so factorizing first only costs (10x here).
        digests = pd.util.hash_array(key.to_numpy(dtype=object), categorize=False)
        if check:
            new = np.sort(digests)
            repeated = bool((new[1:] == new[:-1]).any())
            if len(self.seen) and not repeated:
                at = np.minimum(np.searchsorted(self.seen, new), len(self.seen) - 1)
                repeated = bool((self.seen[at] == new).any())
            if repeated:
                raise _KeyRepeated()
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self.seen = np.sort(np.concatenate([self.seen, new]), kind="stable")
        self.keys.append(digests)
        self.rows.append(source_row.to_numpy(dtype="int64"))

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


def _settle_duplicates(table: Table, staged: StagedUpsert, index: _KeyIndex, tally: dict,
                       examples: dict) -> tuple[pd.DataFrame, int]:
    """Drop identical copies and reject conflicting duplicate keys among the staged rows.

    Returns:
        (conflicting rows as (source_row, reason), number of identical copies dropped).
    """
    candidates = index.candidates()
    empty = pd.DataFrame(columns=["source_row", "reason"])
    if not candidates:
        return empty, 0
    d = staged.fetch(candidates).sort_values("source_row", kind="stable").reset_index(drop=True)
    key = d[table.key]
    d = d[key.duplicated(keep=False)]
    if not len(d):
        return empty, 0
    conflict, same, rej = _split_duplicates(table, d, tally, examples)
    copies = same[same[table.key].duplicated()]
    staged.discard(sorted(conflict["source_row"].tolist() + copies["source_row"].tolist()))
    return rej, len(copies)


def _unknown_invoices(conn: sa.Connection, stamp: datetime, source: str) -> list[str]:
    """A line naming the payments just written whose invoice is not in the store (stored all the same:
    the invoice may come in a later file)."""
    from ledger.schema import invoices, payments

    orphan = (sa.select(payments.c.payment_id, payments.c.invoice_id)
              .where(payments.c.updated_at == stamp)
              .where(~sa.exists().where(invoices.c.invoice_id == payments.c.invoice_id))
              .order_by(payments.c.payment_id))
    rows = conn.execute(orphan.limit(11)).all()
    if not rows:
        return []
    n = conn.execute(sa.select(sa.func.count()).select_from(orphan.subquery())).scalar_one()
    shown = ", ".join(sorted({str(r.invoice_id) for r in rows[:10]})) + (", ..." if n > 10 else "")
    noun = "payment names an invoice" if n == 1 else "payments name invoices"
    return [f"{n} {noun} not in the store: {shown} (stored all the same; ingest the invoices of {source}, "
            "or check the ids)"]


def _undo(staged: StagedUpsert | None) -> None:
    """Remove what a direct ingest committed batch by batch (a staged one commits nothing before its end)."""
    if isinstance(staged, DirectInsert):
        staged.undo()


def _record_run(conn: sa.Connection, result: IngestResult, started: datetime, status: str) -> None:
    conn.execute(ingest_runs.insert().values(
        started_at=started, finished_at=datetime.now(UTC), source=result.source,
        mapping=result.mapping, table_name=result.table, status=status, read=result.read,
        inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
        rejected=result.rejected, filtered=result.filtered, rejects_file=result.rejects_file,
    ))


def ingest_file(
    engine: sa.Engine,
    path: Path | str,
    mapping: Mapping | Path | str | None = None,
    rejects_dir: Path | str | None = None,
    *,
    table: str | None = None,
    allow_rejects: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: ProgressFn | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> IngestResult:
    """Ingest one CSV (``.csv``, ``.csv.gz``) or Parquet file into the store, atomically.

    The file is read, validated and staged a chunk at a time (memory stays bounded by
    ``chunk_rows``, whatever the file size), then merged into the ledger table with one statement;
    staging, merge and the ``ingest_runs`` record share one transaction.

    Args:
        engine: the store (``ledger.engine.open_store``).
        path: the file.
        mapping: a ``Mapping``, a mapping YAML path, or None for a file in the canonical layout.
        rejects_dir: where the rejects file goes (default: beside the file).
        table: the canonical table, when there is no mapping and the file name does not say.
        allow_rejects: store the good rows even if some were rejected.
        chunk_rows: source rows read at a time.
        on_progress: called with (stage, done, total) as rows are read and written.
        encoding: the CSV's encoding (default: the mapping's, else detected: ``ledger.sources``).
        delimiter: the CSV's separator (default: the mapping's, else ',').

    Returns:
        The counts and the rejects file.

    Raises:
        IngestError: the file cannot be read as the table (missing, empty, undecodable, columns
            missing).
        IngestRejected: rows were rejected and ``allow_rejects`` is False; nothing was stored.
    """
    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"File not found: {path}.")
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    try:
        opts = resolve_options(path, mapping.source if mapping is not None else SourceOptions(), encoding,
                               delimiter)
        rejects_dir = Path(rejects_dir) if rejects_dir is not None else path.parent
        args = (engine, path, mapping, opts, rejects_dir, table, allow_rejects, chunk_rows, on_progress)
        try:
            result = _ingest_once(args, fast_csv=True)
        except _CsvLayoutError as exc:
            log.info("reading %s again row by row: %s", path.name, exc)
            result = _ingest_once(args, fast_csv=False)
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    result.seconds = time.perf_counter() - t0
    log.info("%s", result.summary().splitlines()[0])
    return result


def _ingest_once(args: tuple, fast_csv: bool) -> IngestResult:
    """``_ingest`` straight into the table if its keys are new, else (or once one repeats) staged."""
    try:
        return _ingest(*args, fast_csv=fast_csv, direct=True)
    except _KeyRepeated:
        log.info("%s repeats keys: staging it to settle them", args[1].name)
    except sa.exc.IntegrityError:
        # A key written by someone else between two of the direct path's batches (its lock is
        # released between them); what it had written is undone, the staged path settles the keys.
        log.info("a key of %s was stored meanwhile: staging it to settle them", args[1].name)
    return _ingest(*args, fast_csv=fast_csv, direct=False)


def _ingest(engine: sa.Engine, path: Path, mapping: Mapping | None, opts: SourceOptions, rejects_dir: Path,
            table: str | None, allow_rejects: bool, chunk_rows: int, on_progress: ProgressFn | None,
            fast_csv: bool, direct: bool = False) -> IngestResult:
    """``ingest_file``'s work, with one CSV reader.

    With ``direct``, rows go straight into the ledger table (SQLite: ``DirectInsert``) if none of
    the first chunk's keys is stored; a later key seen twice or already stored raises
    ``_KeyRepeated`` before its chunk is written, and the caller starts over staged (the
    transaction rolled back, the rejects file removed).
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    chunks = read_source(path, opts, chunk_rows, fast_csv=fast_csv)
    first = next(chunks, None)
    if first is None:
        mapping_used = mapping or _identity_mapping(TABLES[table or infer_table(path)], [])
    elif mapping is None:
        mapping_used = _identity_mapping(TABLES[table or infer_table(path)], list(first.columns))
    else:
        mapping_used = mapping
        absent = [c for c in mapping.source_columns() if c not in first.columns]
        if absent:
            raise IngestError(
                f"Mapping {mapping.name!r} reads columns missing from {path.name}: "
                f"{', '.join(absent)}. The file has: {', '.join(map(str, first.columns))}."
            )
    spec = TABLES[mapping_used.table]
    result = IngestResult(table=spec.name, source=str(path), mapping=mapping.name if mapping else None)
    rejects = _RejectsFile(rejects_dir, path)
    index = _KeyIndex()
    tally: dict = {}
    examples: dict = {}

    with engine.connect() as conn:
        trans = conn.begin()
        staged = None
        try:
            for raw in itertools.chain([first] if first is not None else [], chunks):
                chunk = _process(mapping_used, raw, result.read + 1, tally, examples)
                good = _prepare(spec, chunk.good, hashed=False)
                keys = good[spec.key]
                if staged is None:  # the first chunk's keys decide: all new -> straight in
                    direct = direct and DirectInsert.usable(conn, spec, keys.tolist())
                    staged = (DirectInsert(conn, spec, list(mapping_used.extra)) if direct
                              else StagedUpsert(conn, spec, list(mapping_used.extra), lock_at_merge=True))
                elif direct and staged.any_stored(keys.tolist()):
                    raise _KeyRepeated()
                index.add(keys, good["source_row"], check=direct)
                staged.stage_frame(good)
                rejects.write(chunk.rejects, chunk.filtered)
                result.read += len(raw)
                del raw, chunk, good
                if on_progress:
                    on_progress("read", result.read, None)
            if staged is None:  # no row at all
                direct = False
                staged = StagedUpsert(conn, spec, list(mapping_used.extra), lock_at_merge=True)
            if direct:  # every key was checked new and unique as it came
                dup_rej, identical = pd.DataFrame(columns=["source_row", "reason"]), 0
            else:
                dup_rej, identical = _settle_duplicates(spec, staged, index, tally, examples)
            del index
            if len(dup_rej):
                originals = _reread_rows(path, opts, set(dup_rej["source_row"].tolist()), chunk_rows, fast_csv)
                rejects.add_late(dup_rej.merge(originals, on="source_row", how="left"))
            result.rejected, result.filtered = rejects.rejected, rejects.filtered
            result.rejects_file = str(rejects.path) if rejects.path is not None else None
            result.problems = _summaries(tally, examples, spec, path.name)
            if result.rejected and not allow_rejects:
                trans.rollback()
                _undo(staged)
                staged.close()
                result.seconds = time.perf_counter() - t0
                _record_run(conn, result, started, "rejected")
                conn.commit()
            else:
                if on_progress:
                    on_progress("write", 0, staged.staged)
                inserted, updated, unchanged = staged.merge()
                if on_progress:
                    on_progress("write", staged.staged, staged.staged)
                result.inserted, result.updated = inserted, updated
                result.unchanged = unchanged + identical
                if spec.name == "payments" and (inserted or updated):
                    result.problems += _unknown_invoices(conn, staged.now, path.name)
                result.stored = True
                result.seconds = time.perf_counter() - t0
                _record_run(conn, result, started, "stored")
                trans.commit()
        except BaseException as exc:
            if trans.is_active:
                trans.rollback()
            with contextlib.suppress(Exception):
                _undo(staged)
            if isinstance(exc, _CsvLayoutError | _KeyRepeated) and rejects.path is not None:
                rejects.path.unlink(missing_ok=True)
            if staged is not None:
                with contextlib.suppress(Exception):
                    staged.close()
                    conn.commit()
            raise
    if not result.stored:
        raise IngestRejected(result)
    assert result.read == (result.inserted + result.updated + result.unchanged
                           + result.rejected + result.filtered), result
    return result

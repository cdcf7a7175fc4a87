"""Rows of an export mapped to a canonical table and checked: parsed values, or rejects with their reasons.

Reasons a row is rejected: a missing required value, an unparsable date, amount or boolean, an
amount that is zero or negative, ``due_date`` before ``issue_date``, an unknown currency or
``doc_type``, and an id that appears more than once in the file with different values (every
such row is rejected: which one is right is the sender's call). Identical duplicates are stored
once and the copies counted unchanged. The row rules and their reasons: ``ledger.rules``.

A zero amount owes nothing and cannot be late in any way that matters for cash, so such rows are
rejected with their reason rather than given an invented value (ERP extracts that round small
items to 0 have those rows rejected and the others stored). A negative amount is also rejected: the sign of a
movement belongs in ``doc_type`` (map it with ``values:``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ledger.contracts import TABLES, Table, coerce_frame
from ledger.hashing import content_ids, row_hashes
from ledger.mapping import FALSE_VALUES, TRUE_VALUES, ColumnSpec, Mapping, SourceOptions
from ledger.rules import _check_rules, _Problems
from ledger.sources import MALFORMED

log = logging.getLogger(__name__)

FILTERED = "filtered by mapping"
"""The reason of a row a mapping's ``filters`` dropped (counted as filtered, not rejected)."""


class IngestError(ValueError):
    """The file cannot be ingested at all (not found, unknown table, columns missing)."""


def identity_mapping(table: Table, header: list[str]) -> Mapping:
    """The mapping of a file in the canonical layout (``header``: its columns).

    Raises:
        IngestError: required columns are missing.
    """
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
    rejected_keys: pd.DataFrame  # key, reason: the keys of the rejected rows that have one


RowCheck = Callable[[pd.DataFrame, np.ndarray, _Problems], None]
"""A further check of a typed canonical chunk (its source rows), flagging rows in the problems."""


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


def map_rows(mapping: Mapping, raw: pd.DataFrame, first_row: int,
             tally: dict, examples: dict, check: RowCheck | None = None) -> _Chunk:
    """A chunk of source rows (the first numbered ``first_row``) mapped and checked: good rows,
    rejects, filtered rows, and the keys of the rejected rows. ``check`` adds a rule."""
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
    if check is not None:
        check(df, rows, problems)
    for key, parts in problems.tally.items():
        tally.setdefault(key, []).extend(parts)
        examples.setdefault(key, problems.examples[key])
    bad = problems.bad
    rejects = raw[bad].copy()
    rejects.insert(0, "reason", problems.reasons[bad])
    rejects.insert(0, "source_row", rows[bad])
    if len(layout):
        rejects = pd.concat([layout, rejects], ignore_index=True).sort_values("source_row", kind="stable")
    keys = pd.DataFrame({"key": df.loc[bad, table.key].astype("object").to_numpy(),
                         "reason": problems.reasons[bad]})
    if len(layout):
        keys = pd.concat([_layout_keys(mapping, layout), keys], ignore_index=True)
    good = df[~bad].copy()
    good["source_row"] = rows[~bad]
    return _Chunk(good=good, rejects=rejects, filtered=filtered, rejected_keys=keys)


def _layout_keys(mapping: Mapping, layout: pd.DataFrame) -> pd.DataFrame:
    """The keys of malformed rows, as their source column holds them (none when the key is not a column)."""
    spec = mapping.columns.get(TABLES[mapping.table].key)
    if spec is None or spec.column is None or spec.column not in layout.columns:
        return pd.DataFrame(columns=["key", "reason"])
    return pd.DataFrame({"key": _text(layout[spec.column]).to_numpy(), "reason": layout["reason"].to_numpy()})


def prepare_rows(table: Table, good: pd.DataFrame, hashed: bool = True) -> pd.DataFrame:
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


def split_duplicates(table: Table, d: pd.DataFrame, tally: dict, examples: dict
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
    good = prepare_rows(table, good)
    key = good[table.key]
    dup = key.duplicated(keep=False)
    if not dup.any():
        return good, pd.DataFrame(columns=["source_row", "reason"]), 0
    d = good[dup]
    conflict, same, rej = split_duplicates(table, d, tally, examples)
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
    mapping = identity_mapping(spec, list(df.columns))
    tally: dict = {}
    examples: dict = {}
    original = df.reset_index(drop=True)
    chunk = map_rows(mapping, original, 1, tally, examples)
    good, dup_rej, _ = _finish(spec, chunk.good, tally, examples)
    if len(dup_rej):
        dup_rej = dup_rej.merge(original.assign(source_row=np.arange(1, len(original) + 1)), on="source_row")
    rejects = pd.concat([x for x in (chunk.rejects, dup_rej) if len(x)] or [chunk.rejects], ignore_index=True)
    rejects = rejects.sort_values("source_row", kind="stable").reset_index(drop=True)
    positions = good.pop("source_row").to_numpy() - 1
    good = coerce_frame(good, spec)
    good.index = df.index[positions]
    return good, rejects

"""The row rules of ingest: what makes a row rejected, the reason it carries, and the summary lines.

Bounds match the API's (``serving.schemas``): amounts finite and at most :data:`MAX_AMOUNT` in
absolute value, dates between :data:`FIRST_DAY` and :data:`LAST_DAY`, ids at most
:data:`MAX_ID_CHARS` characters without control characters, other text at most
:data:`MAX_TEXT_CHARS`. ``_Problems`` gathers each row's reasons one vectorised check at a time;
``_summaries`` turns them into one line per kind naming the rows and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ledger.contracts import ACTION_STEPS, CURRENCIES, DOC_TYPES, LANGUAGES, Table

MAX_AMOUNT = 1e12
"""Largest amount accepted, in absolute value (the API's bound too)."""
MAX_ID_CHARS = 64
"""Longest id (the store's ``VARCHAR(64)``, the API's bound)."""
MAX_TEXT_CHARS = 255
"""Longest other text value (the store's ``VARCHAR(255)``, the API's bound)."""
FIRST_DAY, LAST_DAY = pd.Timestamp("1900-01-01"), pd.Timestamp("2199-12-31")
"""Dates outside these days are rejected (the API's bounds)."""
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_iso_day(text: str) -> pd.Timestamp | None:
    """``text`` as a day if it is written YYYY-MM-DD and lies in ``FIRST_DAY`` .. ``LAST_DAY``; else None.

    Only that form: 01/02/2025 is the 1st of February to some users and the 2nd of January to others.
    """
    text = str(text).strip()
    if not _ISO_DAY.fullmatch(text):
        return None
    try:
        day = pd.Timestamp(date.fromisoformat(text))
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


ID_REFUSED = r"\x00-\x1f\x7f" + "\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""What an id may not hold, as the inside of a character class: the C0 and C1 control characters, and the
marks and overrides of text direction, which make an id look like another. The last ones are the characters
themselves, not escapes, so that Python and Arrow's RE2 read the class alike."""
_CONTROL = re.compile(f"[{ID_REFUSED}]")
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
"""One plain address (local part, '@', a dotted domain): what an SMTP ``RCPT TO`` accepts without
quoting. Display names, lists and internationalised addresses are rejected."""
_CONTACT_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters refused in contact text; a postal address keeps its line breaks."""

_FIXES = {
    "missing": "fill the values in, or map {col} to another source column or a constant `value`",
    "unparsable_date": "fix the values, or set the column's `format` in the mapping (e.g. \"%m/%d/%Y\")",
    "unparsable_amount": "fix the values, or set `decimal`/`thousands` under `source` in the mapping",
    "unparsable_bool": "use Yes/No, 1/0 or true/false, or list yours with `true_values`/`false_values`",
    "not_positive": "amounts are positive; give the sign with doc_type (e.g. credit_note) or drop "
                    "the rows with a mapping filter",
    "due_before_issue": "fix the dates or map issue_date with not_after (if the source date is a "
                        "period stamp)",
    "currency": "use ISO 4217 codes (EUR, USD, ...) or map them with `values:`",
    "doc_type": f"use one of {', '.join(DOC_TYPES)}, or map the source values with `values:` and a "
                "`default`",
    "duplicate": "keep one row per {key}",
    "malformed": "quote values holding the separator, or fix the rows",
    "ambiguous_amount": "with `decimal: \",\"`, a '.' is ambiguous: set `thousands: \".\"` under `source` if it "
                        "separates thousands, or fix the values",
    "not_finite": "amounts are finite numbers: fix the values (inf and NaN are not amounts)",
    "too_large": f"amounts are at most {MAX_AMOUNT:.0e} in absolute value: fix the values (a unit or decimal "
                 "mark mix-up?), or set `decimal`/`thousands` under `source` in the mapping",
    "too_long": "ids have at most {id_chars} characters and other text at most {text_chars}, without control "
                "characters: fix the values, or map {col} to another source column",
    "date_range": "dates lie between {first} and {last}: fix the values, or the column's `format` in the mapping",
    "email": "give one plain address per client (name@domain.tld, no display name, no list), or leave it "
             "empty",
    "language": f"use {' or '.join(LANGUAGES)} (empty = {LANGUAGES[0]}), or map the source values with `values:`",
    "contact": "remove the control characters (a postal address may hold line breaks, nothing else)",
}

_PHRASES = {
    "missing": "miss {col}",
    "unparsable_date": "have an unparsable {col}",
    "unparsable_amount": "have an unparsable {col}",
    "unparsable_bool": "have an unparsable {col}",
    "not_positive": "have a zero or negative {col}",
    "due_before_issue": "have due_date before issue_date",
    "currency": "have an unknown currency",
    "doc_type": "have an unknown doc_type",
    "duplicate": "share a {key} with another row holding different values",
    "malformed": "have more fields than the header",
    "ambiguous_amount": "have an ambiguous {col}",
    "not_finite": "have a non-finite {col}",
    "too_large": "have an absurdly large {col}",
    "too_long": "have a malformed {col} (too long, or control characters)",
    "date_range": "have {col} out of range",
    "email": "have a malformed email",
    "language": "have an unknown language",
    "contact": "have control characters in {col}",
}


class _Problems:
    """Row reasons, built one vectorized check at a time, and their summaries."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reasons = np.full(n, "", dtype=object)
        self.flagged = np.zeros(n, dtype=bool)
        self.tally: dict[tuple[str, str], list[np.ndarray]] = {}
        self.examples: dict[tuple[str, str], str] = {}
        self.unparsable: dict[str, np.ndarray] = {}

    def add(self, code: str, col: str, mask: Any, messages: Callable[[], pd.Series] | str,
            rows: np.ndarray) -> None:
        """Flag the rows in ``mask``; ``messages`` (one per row) is only built if a row is flagged."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        if callable(messages):
            messages = messages()
        if isinstance(messages, str):
            msgs = np.full(int(mask.sum()), messages, dtype=object)
        else:
            msgs = np.asarray(messages, dtype=object)[mask]
        if code.startswith("unparsable"):
            self.unparsable[col] = self.unparsable.get(col, np.zeros(self.n, dtype=bool)) | mask
        current = self.reasons[mask]
        self.reasons[mask] = np.where(self.flagged[mask], current + "; " + msgs, msgs)
        self.flagged |= mask
        self.tally.setdefault((code, col), []).append(rows[mask])
        self.examples.setdefault((code, col), str(msgs[0]))

    @property
    def bad(self) -> np.ndarray:
        return self.flagged


def _summaries(tally: dict[tuple[str, str], list[np.ndarray]], examples: dict[tuple[str, str], str],
               table: Table, source: str) -> list[str]:
    out = []
    for (code, col), parts in tally.items():
        rows = np.sort(np.concatenate(parts))
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        noun = table.name if len(rows) != 1 else table.name.rstrip("s")
        verb = _PHRASES[code].format(col=col, key=table.key)
        if len(rows) == 1:
            verb = verb.replace("have ", "has ", 1).replace("miss ", "misses ", 1).replace("share ", "shares ", 1)
        fix = _FIXES[code].format(col=col, key=table.key, id_chars=MAX_ID_CHARS, text_chars=MAX_TEXT_CHARS,
                                  first=FIRST_DAY.date(), last=LAST_DAY.date())
        out.append(f"{len(rows)} {noun} {verb}: row{'s' if len(rows) != 1 else ''} {shown} of {source}; "
                   f"{fix} (first: {examples[(code, col)]})")
    return out



def _check_rules(table: Table, df: pd.DataFrame, rows: np.ndarray, problems: _Problems,
                 allow_missing_key: bool) -> None:
    """The contract's row rules, on a typed canonical frame."""
    for name in table.required:
        if name == table.key and allow_missing_key:
            continue
        problems.add("missing", name, df[name].isna().to_numpy() & ~_flagged(problems, name), f"missing {name}", rows)
    for c in table.columns:
        if c.kind == "str":
            _check_text(table, c.name, df[c.name], rows, problems)
        elif c.kind == "date":
            d = df[c.name]
            bad = (d.notna() & ((d < FIRST_DAY) | (d > LAST_DAY))).to_numpy()
            problems.add("date_range", c.name, bad, lambda: f"{c.name} " + d.dt.strftime("%Y-%m-%d").astype("object")
                         + f" outside {FIRST_DAY.date()}..{LAST_DAY.date()}", rows)
        if c.kind != "amount":
            continue
        v = df[c.name].astype("float64")
        finite = np.isfinite(v.to_numpy(dtype="float64", na_value=np.nan))
        infinite = v.notna().to_numpy() & ~finite
        problems.add("not_finite", c.name, infinite, lambda: f"{c.name} is not finite (" + v.astype("str") + ")", rows)
        huge = finite & (v.abs() > MAX_AMOUNT).fillna(False).to_numpy()
        problems.add("too_large", c.name, huge, lambda: f"{c.name} is beyond {MAX_AMOUNT:.0e} (" + v.astype("str") + ")",
                     rows)
        bad = (v < 0) if c.name == "credit_limit" else (v <= 0)
        bad = bad.fillna(False).to_numpy() & ~infinite
        problems.add("not_positive", c.name, bad, lambda: f"{c.name} is zero or negative (" + v.astype("str") + ")", rows)
    if table.name == "invoices":
        bad = (df["due_date"] < df["issue_date"]).fillna(False).to_numpy()
        problems.add("due_before_issue", "due_date", bad, lambda: (
            "due_date " + df["due_date"].dt.strftime("%Y-%m-%d").astype("object").fillna("")
            + " before issue_date " + df["issue_date"].dt.strftime("%Y-%m-%d").astype("object").fillna("")), rows)
        cur = df["currency"]
        bad = (cur.notna() & ~cur.isin(CURRENCIES)).to_numpy()
        problems.add("currency", "currency", bad, lambda: "unknown currency '" + cur.astype("object").fillna("") + "'", rows)
        dt = df["doc_type"]
        bad = (dt.notna() & ~dt.isin(DOC_TYPES)).to_numpy()
        problems.add("doc_type", "doc_type", bad, lambda: "unknown doc_type '" + dt.astype("object").fillna("") + "'", rows)
    if table.name == "clients":
        _check_contacts(df, rows, problems)


def _check_contacts(df: pd.DataFrame, rows: np.ndarray, problems: _Problems) -> None:
    """Billing contacts: one plain email address, a known language, no control characters."""
    email = df["email"].astype("object")
    present = email.notna()
    if present.any():
        ok = email[present].map(lambda v: bool(EMAIL.match(str(v))))
        bad = present.to_numpy().copy()
        bad[present.to_numpy()] = ~ok.to_numpy(dtype=bool)
        problems.add("email", "email", bad, lambda: "malformed email '" + email.fillna("").str.slice(0, 60) + "'",
                     rows)
    lang = df["language"].astype("object")
    bad = (lang.notna() & ~lang.isin(LANGUAGES)).to_numpy()
    problems.add("language", "language", bad, lambda: "unknown language '" + lang.fillna("").str.slice(0, 20) + "'",
                 rows)
    for name in ("phone", "postal_address"):
        text = df[name].astype("object")
        bad = text.map(lambda v: v is not None and v == v and bool(_CONTACT_CONTROL.search(str(v)))).to_numpy(dtype=bool)
        problems.add("contact", name, bad, f"{name} holds control characters", rows)


def _check_text(table: Table, name: str, t: pd.Series, rows: np.ndarray, problems: _Problems) -> None:
    """Ids: at most ``MAX_ID_CHARS`` characters, no control character; other text: ``MAX_TEXT_CHARS``.

    Lengths and the control-character search run in Arrow (a Python call per value cost ~2 s per
    million invoices).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    is_id = name == table.key or name.endswith("_id")
    limit = MAX_ID_CHARS if is_id else MAX_TEXT_CHARS
    if not t.notna().any():
        return
    try:
        arr = pa.array(t.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(t.astype("object").map(str, na_action="ignore").to_numpy(dtype=object), type=pa.string(),
                       from_pandas=True)
    lengths = pc.utf8_length(arr)
    bad = pc.fill_null(pc.greater(lengths, limit), False)
    if is_id:
        bad = pc.or_(bad, pc.fill_null(pc.match_substring_regex(arr, _CONTROL.pattern), False))
    mask = bad.to_numpy(zero_copy_only=False)
    if not mask.any():
        return
    text = t.astype("object")
    problems.add("too_long", name, mask, lambda: (
        f"{name} of " + pd.Series(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False), index=t.index).astype("str")
        + f" characters (at most {limit}) or with control characters: '" + text.fillna("").str.slice(0, 40) + "...'"),
        rows)


def _flagged(problems: _Problems, col: str) -> np.ndarray:
    """Rows already flagged as unparsable in ``col`` (so they are not also 'missing')."""
    return problems.unparsable.get(col, np.zeros(problems.n, dtype=bool))


# --- rows stored, but worth a look ----------------------------------------------------------------

_ODD_ROWS = {
    "invoices": (("paid_date", "issue_date", "paid_date before issue_date",
                  "check them at the source; if the export's issue day is a period stamp, map issue_date with "
                  "not_after: [due_date, paid_date]"),),
    "actions": (("promise_date", "action_date", "promise_date before action_date",
                 "check the promised day"),),
}
"""Per table: (earlier column, later column, what it is, what to do). Such rows pass the contract (they happen:
a clearing date before a month-stamped issue day) and are stored, and reported so that a user can look."""


class OddRows:
    """Rows stored although one of their dates comes before another it normally follows, and actions with a
    step nothing reads, counted over chunks."""

    def __init__(self, table: str, examples: int = 5, policy_steps: Iterable[str] = ()) -> None:
        """``policy_steps``: the step names the dunning policy uses (read as ladder steps, not reported)."""
        self.table, self.examples = table, examples
        self.found: dict[str, tuple[int, list[str], str]] = {}
        self.known_steps = set(ACTION_STEPS) | set(policy_steps)
        self.steps: dict[str, int] = {}  # actions: the steps nothing reads, and how many rows

    def add(self, good: pd.DataFrame, key: str) -> None:
        """Count the rows of ``good`` (typed canonical rows, ``key`` their id column)."""
        if self.table == "actions" and "step" in good.columns:
            steps = good["step"].astype(str)
            for step, n in steps[~steps.isin(self.known_steps)].value_counts().items():
                self.steps[step] = self.steps.get(step, 0) + int(n)
        for early, late, what, fix in _ODD_ROWS.get(self.table, ()):
            if early not in good.columns or late not in good.columns:
                continue
            mask = (pd.to_datetime(good[early]) < pd.to_datetime(good[late])).fillna(False).to_numpy(dtype=bool)
            if mask.any():
                n, keys, _ = self.found.get(what, (0, [], fix))
                keys = keys + good.loc[mask, key].astype(str).head(self.examples - len(keys)).tolist()
                self.found[what] = (n + int(mask.sum()), keys, fix)

    def lines(self) -> list[str]:
        """One line per kind: how many, the first ids, and what to check."""
        out = [f"{n} {self.table} row{'' if n == 1 else 's'} stored with {what} ({', '.join(keys)}"
               f"{', ...' if n > len(keys) else ''}): {fix}." for what, (n, keys, fix) in self.found.items()]
        if self.steps:
            n = sum(self.steps.values())
            shown = sorted(self.steps.items(), key=lambda kv: (-kv[1], kv[0]))
            listed = ", ".join(f"{step!r} x{count}" for step, count in shown[:self.examples])
            out.append(f"{n} action{'' if n == 1 else 's'} stored with a step neither the product nor the dunning "
                       f"policy reads ({listed}{', ...' if len(shown) > self.examples else ''}): client features and "
                       f"next steps count them as no known step. Map them (a mapping's step: values:) to one of "
                       f"{', '.join(ACTION_STEPS)}, or to a step of the policy.")
        return out

"""What a message template sees: one client, its open invoices at a step, totals, legal amounts.

:func:`build_message_context` is the one place where a message's figures are assembled; the
templates only format them. Legal amounts are not computed here: they are the rows of
:func:`features.legal.build_legal_amounts` for the same day, joined on ``invoice_id``.
"""

from __future__ import annotations

import datetime as dt
import math
import weakref
from collections.abc import Mapping
from typing import Any

import pandas as pd

from features.legal import PENALTY_MARGIN_POINTS, RECOVERY_INDEMNITY_EUR
from ledger.contracts import LANGUAGES
from models.messages.company import DEMO_COMPANY, Company
from models.messages.references import format_reference, invoice_reference
from models.policy import DEFAULT_POLICY_PATH, load_policy

REQUIRED_INVOICE_COLUMNS = ("invoice_id", "issue_date", "due_date", "amount")
LEGAL_COLUMNS = ("invoice_id", "late_penalty", "recovery_indemnity", "penalty_rate")
NEEDS_LEGAL = frozenset({"formal_notice", "agency"})
"""Steps whose message must carry the legal amounts of every overdue invoice (a ``legal`` frame)."""
_CLIENT_TEXT = ("client_id", "name", "email", "phone", "postal_address", "language")
_CENT = 0.005

_DEFAULT_NOTICE_DAYS: int | None = None


def _default_notice_days() -> int:
    global _DEFAULT_NOTICE_DAYS
    if _DEFAULT_NOTICE_DAYS is None:
        _DEFAULT_NOTICE_DAYS = load_policy(DEFAULT_POLICY_PATH).formal_notice_days
    return _DEFAULT_NOTICE_DAYS


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).strip()


def _day(value: Any, what: str) -> dt.date:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} must be a date like '2025-12-31'. Got {value!r} instead.") from exc
    if pd.isna(ts):
        raise ValueError(f"{what} must be a date like '2025-12-31'. Got {value!r} instead.")
    return ts.date()


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None if pd.isna(value) else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts.date()


def _as_amount(value: Any) -> float | None:
    try:
        v = float(value)
    except (ValueError, TypeError):
        return None
    return v if math.isfinite(v) else None


_LEGAL_CACHE: dict[int, tuple[weakref.ref, dict[str, tuple[float, float, float]]]] = {}


def _legal_index(legal: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """``invoice_id -> (late_penalty, recovery_indemnity, penalty_rate)``, built once per frame.

    A run passes the same day's frame for every client; indexing it once keeps a message's cost
    independent of the ledger's size. The frame is read, not copied: do not change it in between.
    """
    key = id(legal)
    hit = _LEGAL_CACHE.get(key)
    if hit is not None and hit[0]() is legal:
        return hit[1]
    lmissing = [c for c in LEGAL_COLUMNS if c not in legal.columns]
    if lmissing:
        raise ValueError(f"legal lacks column(s) {', '.join(lmissing)}: pass the frame of "
                         "features.legal.build_legal_amounts(ledger, as_of).")
    index = {str(i): (float(p), float(r), float(rate)) for i, p, r, rate in zip(
        legal["invoice_id"].tolist(), legal["late_penalty"].tolist(), legal["recovery_indemnity"].tolist(),
        legal["penalty_rate"].tolist())}
    _LEGAL_CACHE.clear()  # one day's frame at a time
    _LEGAL_CACHE[key] = (weakref.ref(legal), index)
    return index


def client_context(client: Mapping) -> dict:
    """The client as templates see it: text fields ('' when missing), address lines, language."""
    out = {k: _text(client.get(k)) for k in _CLIENT_TEXT}
    if not out["client_id"]:
        raise ValueError("client has no client_id: pass a row of the ledger's clients table (or a dict with "
                         "client_id, name, email, phone, postal_address, language, opt_out).")
    out["name"] = out["name"] or out["client_id"]
    lang = out["language"].lower()
    out["language"] = lang if lang in LANGUAGES else LANGUAGES[0]
    out["address_lines"] = [line.strip() for line in out["postal_address"].splitlines() if line.strip()]
    opt_out = client.get("opt_out")
    out["opt_out"] = bool(opt_out) if opt_out is not None and not pd.isna(opt_out) else False
    return out


def build_message_context(client: Mapping, invoices: pd.DataFrame, as_of, *, step: str,
                          company: Mapping | Company | None = None, legal: pd.DataFrame | None = None,
                          formal_notice_days: int | None = None, instalment: Mapping | None = None) -> dict:
    """Everything a template sees for one message: one client, one step, its open invoices.

    Args:
        client: the client's row of ``ledger.clients`` (a Series or a dict): ``client_id``, ``name``,
            ``email``, ``phone``, ``postal_address``, ``language`` ('fr' or 'en'; other or empty =
            'fr'), ``opt_out``. Missing fields are empty.
        invoices: that client's open invoices at this step, one row each: ``invoice_id``,
            ``issue_date``, ``due_date``, ``amount`` (gross, currency units), optional ``currency``
            (default EUR) and what is still owed: ``outstanding`` (as in
            ``features.kpis.build_open_items``), else ``amount - paid_amount``, else ``amount``.
            Rows owing less than a cent are dropped.
        as_of: the day of the message (start of day); days overdue are ``as_of - due_date``.
        step: the ladder step (``reminder_1``, ``formal_notice``, ...), as in the policy.
        company: the creditor (a :class:`Company`, or a mapping of its fields); default the
            demo company (``models.messages.company.DEMO_COMPANY``), which letters flag as such.
        legal: rows of ``features.legal.build_legal_amounts(ledger, as_of)`` (any clients): each
            overdue invoice gets its ``late_penalty``, ``recovery_indemnity`` (EUR) and
            ``penalty_rate``. Required, with a row for every overdue invoice, for the steps in
            :data:`NEEDS_LEGAL`.
        formal_notice_days: days a formal notice gives to pay; default the policy's
            (``formal_notice_days`` of ``models/policies/default.yaml``).
        instalment: for the payment-plan steps, the instalment concerned: ``date`` and ``amount``
            (optional ``currency``, default EUR), e.g. from the plan's ``payment_plan`` action
            (``promise_date``, ``promise_amount``). Templates show it when given.

    Returns:
        A dict of plain values (numbers, ``datetime.date``, text, lists, dicts): ``language``,
        ``step``, ``as_of``, ``client``, ``company``, ``invoices`` (due date order; each with
        ``invoice_id, issue_date, due_date, currency, amount, paid, outstanding, days_overdue``
        (negative before the due date), ``is_overdue, reference`` (ISO 11649, grouped by four),
        ``late_penalty, recovery_indemnity, penalty_rate`` (None without legal amounts)),
        ``overdue`` (the overdue ones), ``totals`` (one dict per currency: ``currency,
        outstanding, overdue_outstanding, late_penalty, recovery_indemnity, claimed`` = overdue
        principal + penalties + indemnities),
        ``has_legal_amounts``, ``penalty_rate``, ``indemnity_per_invoice``, ``formal_notice_days``,
        ``deadline`` (``as_of`` + those days), ``oldest_due_date`` and ``instalment`` (``date,
        amount, currency``, or None).

    Raises:
        ValueError: a column is missing, a value is not a date or an amount, no invoice is left, or
            ``legal`` lacks an overdue invoice at a step that needs it; the message names them.
    """
    day = _day(as_of, "as_of")
    cl = client_context(client)
    if company is None:
        company = DEMO_COMPANY
    elif not isinstance(company, Company):
        company = Company.model_validate(dict(company))
    missing = [c for c in REQUIRED_INVOICE_COLUMNS if c not in invoices.columns]
    if missing:
        raise ValueError(f"invoices lack column(s) {', '.join(missing)}; a message needs {', '.join(REQUIRED_INVOICE_COLUMNS)}"
                         " and what is still owed (outstanding, or paid_amount).")
    # Plain Python over the (few) rows: a run builds one context per client, and pandas' per-call
    # overhead on a handful of rows is what would dominate.
    col = {c: invoices[c].tolist() for c in (*REQUIRED_INVOICE_COLUMNS, "client_id", "currency", "outstanding",
                                            "paid_amount") if c in invoices.columns}
    ids = [str(v) for v in col["invoice_id"]]
    others = sorted({str(v) for v in col.get("client_id", [])} - {cl["client_id"]})
    if others:
        raise ValueError(f"invoices of other clients ({', '.join(others[:5])}) passed for client {cl['client_id']}: "
                         "one message is for one client.")
    issue = [_as_date(v) for v in col["issue_date"]]
    due = [_as_date(v) for v in col["due_date"]]
    for name, values in (("issue_date", issue), ("due_date", due)):
        bad = [i for i, v in zip(ids, values) if v is None]
        if bad:
            raise ValueError(f"invoices {', '.join(bad[:10])} have no valid {name}.")
    amount = [_as_amount(v) for v in col["amount"]]
    if "outstanding" in col:
        left = [_as_amount(v) for v in col["outstanding"]]
    elif "paid_amount" in col:
        left = [None if a is None else max(a - (_as_amount(p) or 0.0), 0.0) for a, p in zip(amount, col["paid_amount"])]
    else:
        left = list(amount)
    bad = [i for i, a, o in zip(ids, amount, left) if a is None or o is None]
    if bad:
        raise ValueError(f"invoices {', '.join(bad[:10])} have no valid amount or outstanding amount.")
    currency = [_text(v) or "EUR" for v in col["currency"]] if "currency" in col else ["EUR"] * len(ids)
    keep = sorted((i for i in range(len(ids)) if left[i] > _CENT), key=lambda i: (due[i], ids[i]))
    if not keep:
        raise ValueError(f"client {cl['client_id']} has no invoice left to pay at step {step!r}: "
                         "a message lists at least one open invoice.")
    overdue_ids = [ids[i] for i in keep if (day - due[i]).days > 0]
    legal_rows = _legal_index(legal) if legal is not None else {}
    if step in NEEDS_LEGAL and overdue_ids:
        lacking = [i for i in overdue_ids if i not in legal_rows]
        if lacking:
            raise ValueError(f"step {step!r} states the legal amounts, but legal has no row for overdue invoice(s) "
                             f"{', '.join(lacking[:10])}: pass features.legal.build_legal_amounts(ledger, as_of) "
                             "for the same day.")

    plan = None
    if instalment is not None:  # its own name: ``amount`` holds the invoices' amounts
        due_now = pd.to_numeric(pd.Series([instalment.get("amount")]), errors="coerce").iloc[0]
        if pd.isna(due_now) or due_now <= 0:
            raise ValueError(f"instalment amount must be a positive number. Got {instalment.get('amount')!r} instead.")
        plan = {"date": _day(instalment.get("date"), "instalment date"), "amount": round(float(due_now), 2),
                "currency": _text(instalment.get("currency")) or "EUR"}

    rows = []
    for i in keep:
        iid, days = ids[i], (day - due[i]).days
        lg = legal_rows.get(iid) if days > 0 else None
        outstanding = round(left[i], 2)
        rows.append({
            "invoice_id": iid,
            "issue_date": issue[i],
            "due_date": due[i],
            "currency": currency[i],
            "amount": round(amount[i], 2),
            "paid": round(max(amount[i] - outstanding, 0.0), 2),
            "outstanding": outstanding,
            "days_overdue": days,
            "is_overdue": days > 0,
            "reference": format_reference(invoice_reference(iid)),
            "late_penalty": round(lg[0], 2) if lg else None,
            "recovery_indemnity": round(lg[1], 2) if lg else None,
            "penalty_rate": lg[2] if lg else None,
        })
    has_legal = any(r["late_penalty"] is not None for r in rows)
    rates = [r["penalty_rate"] for r in rows if r["penalty_rate"] is not None]
    notice_days = _default_notice_days() if formal_notice_days is None else int(formal_notice_days)
    overdue = [r for r in rows if r["is_overdue"]]
    return {
        "language": cl["language"],
        "step": step,
        "template": None,
        "as_of": day,
        "client": cl,
        "company": company.as_context(),
        "invoices": rows,
        "overdue": overdue,
        "totals": _totals(rows),
        "has_legal_amounts": has_legal,
        "penalty_rate": max(rates) if rates else None,
        "penalty_margin_points": PENALTY_MARGIN_POINTS,
        "indemnity_per_invoice": RECOVERY_INDEMNITY_EUR,
        "formal_notice_days": notice_days,
        "deadline": day + dt.timedelta(days=notice_days),
        "oldest_due_date": min(r["due_date"] for r in rows),
        "instalment": plan,
    }


def _totals(rows: list[dict]) -> list[dict]:
    """Sums per currency; the indemnities are EUR whatever the invoice currency.

    ``claimed`` is what a formal notice can demand: the overdue principal, its penalties and the
    indemnities (an invoice not yet due is owed, not claimable).
    """
    by: dict[str, dict] = {}

    def slot(cur: str) -> dict:
        return by.setdefault(cur, {"currency": cur, "outstanding": 0.0, "overdue_outstanding": 0.0,
                                   "late_penalty": 0.0, "recovery_indemnity": 0.0})

    for r in rows:
        t = slot(r["currency"])
        t["outstanding"] += r["outstanding"]
        if r["is_overdue"]:
            t["overdue_outstanding"] += r["outstanding"]
        if r["late_penalty"] is not None:
            t["late_penalty"] += r["late_penalty"]
            slot("EUR")["recovery_indemnity"] += r["recovery_indemnity"]
    out = []
    for t in sorted(by.values(), key=lambda t: (t["currency"] != "EUR", t["currency"])):
        for k in ("outstanding", "overdue_outstanding", "late_penalty", "recovery_indemnity"):
            t[k] = round(t[k], 2)
        t["claimed"] = round(t["overdue_outstanding"] + t["late_penalty"] + t["recovery_indemnity"], 2)
        out.append(t)
    return out

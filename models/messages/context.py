"""What a message template sees: one client, its open invoices at a step, totals, legal amounts.

:func:`build_message_context` is the one place where a message's figures are assembled; the
templates only format them. Legal amounts are not computed here: they are the rows of
:func:`features.legal.build_legal_amounts` for the same day, joined on ``invoice_id``.
"""

from __future__ import annotations

import datetime as dt
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


def _remaining(invoices: pd.DataFrame) -> pd.Series:
    amount = pd.to_numeric(invoices["amount"], errors="coerce").astype("float64")
    if "outstanding" in invoices.columns:
        return pd.to_numeric(invoices["outstanding"], errors="coerce").astype("float64")
    if "paid_amount" in invoices.columns:
        paid = pd.to_numeric(invoices["paid_amount"], errors="coerce").fillna(0.0).astype("float64")
        return (amount - paid).clip(lower=0.0)
    return amount


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
        outstanding, overdue_outstanding, late_penalty, recovery_indemnity, claimed``),
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
    inv = invoices.copy()
    inv["outstanding"] = _remaining(inv)
    others = sorted(set(invoices["client_id"].astype(str)) - {cl["client_id"]}) if "client_id" in invoices.columns else []
    if others:
        raise ValueError(f"invoices of other clients ({', '.join(others[:5])}) passed for client {cl['client_id']}: "
                         "one message is for one client.")
    for col in ("issue_date", "due_date"):
        parsed = pd.to_datetime(inv[col], errors="coerce")
        bad = inv.loc[parsed.isna(), "invoice_id"].astype(str).tolist()
        if bad:
            raise ValueError(f"invoices {', '.join(bad[:10])} have no valid {col}.")
        inv[col] = parsed
    bad = inv.loc[inv["outstanding"].isna() | pd.to_numeric(inv["amount"], errors="coerce").isna(),
                  "invoice_id"].astype(str).tolist()
    if bad:
        raise ValueError(f"invoices {', '.join(bad[:10])} have no valid amount or outstanding amount.")
    inv = inv[inv["outstanding"] > _CENT]
    if inv.empty:
        raise ValueError(f"client {cl['client_id']} has no invoice left to pay at step {step!r}: "
                         "a message lists at least one open invoice.")
    inv["currency"] = inv["currency"].map(_text).replace("", "EUR") if "currency" in inv.columns else "EUR"
    inv["days_overdue"] = (pd.Timestamp(day) - inv["due_date"].dt.normalize()).dt.days.astype("int64")
    inv = inv.sort_values(["due_date", "invoice_id"], kind="stable")

    legal_rows: dict[str, dict] = {}
    if legal is not None:
        lmissing = [c for c in LEGAL_COLUMNS if c not in legal.columns]
        if lmissing:
            raise ValueError(f"legal lacks column(s) {', '.join(lmissing)}: pass the frame of "
                             "features.legal.build_legal_amounts(ledger, as_of).")
        sub = legal[legal["invoice_id"].astype(str).isin(set(inv["invoice_id"].astype(str)))]
        legal_rows = {str(r["invoice_id"]): r for r in sub[list(LEGAL_COLUMNS)].to_dict("records")}
    overdue_ids = inv.loc[inv["days_overdue"] > 0, "invoice_id"].astype(str).tolist()
    if step in NEEDS_LEGAL and overdue_ids:
        lacking = [i for i in overdue_ids if i not in legal_rows]
        if lacking:
            raise ValueError(f"step {step!r} states the legal amounts, but legal has no row for overdue invoice(s) "
                             f"{', '.join(lacking[:10])}: pass features.legal.build_legal_amounts(ledger, as_of) "
                             "for the same day.")

    plan = None
    if instalment is not None:
        amount = pd.to_numeric(pd.Series([instalment.get("amount")]), errors="coerce").iloc[0]
        if pd.isna(amount) or amount <= 0:
            raise ValueError(f"instalment amount must be a positive number. Got {instalment.get('amount')!r} instead.")
        plan = {"date": _day(instalment.get("date"), "instalment date"), "amount": round(float(amount), 2),
                "currency": _text(instalment.get("currency")) or "EUR"}

    rows = []
    for r in inv.to_dict("records"):
        iid = str(r["invoice_id"])
        lg = legal_rows.get(iid) if r["days_overdue"] > 0 else None
        amount, outstanding = float(r["amount"]), round(float(r["outstanding"]), 2)
        rows.append({
            "invoice_id": iid,
            "issue_date": r["issue_date"].date(),
            "due_date": r["due_date"].date(),
            "currency": r["currency"],
            "amount": round(amount, 2),
            "paid": round(max(amount - outstanding, 0.0), 2),
            "outstanding": outstanding,
            "days_overdue": int(r["days_overdue"]),
            "is_overdue": bool(r["days_overdue"] > 0),
            "reference": format_reference(invoice_reference(iid)),
            "late_penalty": round(float(lg["late_penalty"]), 2) if lg else None,
            "recovery_indemnity": round(float(lg["recovery_indemnity"]), 2) if lg else None,
            "penalty_rate": float(lg["penalty_rate"]) if lg else None,
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
    """Sums per currency; the indemnities are EUR whatever the invoice currency."""
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
        t["claimed"] = round(t["outstanding"] + t["late_penalty"] + t["recovery_indemnity"], 2)
        out.append(t)
    return out

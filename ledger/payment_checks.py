"""Invoices whose payments disagree with them: a payment dated before the invoice's issue day, or payments
beyond its amount (a credit owed to the client, or a payment sent twice under two ids).

Such rows are stored (they happen, and the other side may be fixed later) and reported: by ``encaisse
ingest`` for the invoices a file touched (``payment_problems``, on the store), and by the API for those a
write changed (on the ledger it serves, this write folded in: no store read on the write's path), both in
``problem_lines``' words.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ledger.schema import invoices, payments

OVERPAID_TOLERANCE = 0.005
"""Payments may exceed their invoice's amount by this much (currency units) before it counts as overpaid."""
_IDS_PER_QUERY = 10_000  # bound parameters per statement stay under SQLite's limit


def invoices_written(table: str, stamp: datetime) -> sa.Select:
    """The invoice ids of the rows of ``table`` (payments or invoices) a write stamped ``stamp``."""
    if table == "payments":
        return sa.select(payments.c.invoice_id).where(payments.c.updated_at == stamp).distinct()
    return sa.select(invoices.c.invoice_id).where(invoices.c.updated_at == stamp)  # the key: distinct already


def payment_problems(conn: sa.Connection, touched: sa.Select | list[str], examples: int = 5) -> list[str]:
    """Lines naming the ``touched`` invoices (a query of invoice ids, or the ids) that have a payment dated
    before their issue day, and those paid beyond their amount; none when all agree.

    One grouped pass over their payments, with an invoice look-up each (bench/RESULTS.md, the payment checks).
    """
    if isinstance(touched, list):
        parts = [touched[i:i + _IDS_PER_QUERY] for i in range(0, len(touched), _IDS_PER_QUERY)]
    else:
        parts = [touched]
    early: list[str] = []
    over: list[str] = []
    for part in parts:
        paid = (sa.select(payments.c.invoice_id, sa.func.min(payments.c.paid_date).label("first_paid"),
                          sa.func.sum(payments.c.amount).label("paid"))
                .where(payments.c.invoice_id.in_(part)).group_by(payments.c.invoice_id).subquery())
        flags = (sa.select(paid.c.invoice_id, (paid.c.first_paid < invoices.c.issue_date).label("early"),
                           (paid.c.paid > invoices.c.amount + OVERPAID_TOLERANCE).label("over"))
                 .select_from(paid.join(invoices, invoices.c.invoice_id == paid.c.invoice_id)).subquery())
        for invoice_id, is_early, is_over in conn.execute(
                sa.select(flags.c.invoice_id, flags.c.early, flags.c.over).where(sa.or_(flags.c.early, flags.c.over))):
            if is_early:
                early.append(str(invoice_id))
            if is_over:
                over.append(str(invoice_id))
    return problem_lines(early, over, examples)


def problem_lines(early: list[str], over: list[str], examples: int = 5) -> list[str]:
    """What is said of the invoices paid before their issue day (``early``) and beyond their amount (``over``)."""
    return _lines(sorted(early), "paid before {its} issue_date", "check the payments' paid_date or the invoice",
                  examples) + \
        _lines(sorted(over), "now paid more than {its} amount", "the excess is a credit owed to the client (refund it "
               "or allocate it to another invoice), or a payment was sent twice under two ids", examples)


def _lines(ids: list[str], what: str, fix: str, examples: int) -> list[str]:
    if not ids:
        return []
    n = len(ids)
    listed = ", ".join(ids[:examples]) + (", ..." if n > examples else "")
    return [f"{n} invoice{'' if n == 1 else 's'} {what.format(its='its' if n == 1 else 'their')} ({listed}): "
            f"stored all the same; {fix}."]

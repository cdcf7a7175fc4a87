"""French legal amounts against values computed by hand. As of D = 2025-06-01, ECB 2.15 % + 10 = 12.15 %.

    id  issue       due         amount  state                                days late at D
    L1  2025-03-01  2025-04-30  1000    open, terms 31 + 29 = 60 days        Apr 30 -> May 1 = 1, + 31 = 32
    L2  2025-01-10  2025-03-20  2000    open, terms 31 + 28 + 10 = 69 days   Mar 20 -> Jun 1 = 31 + 30 + 12 = 73
    L3  2025-01-10  2025-03-15   500    open, terms 64 days                  Mar 15 -> Jun 1 = 78
    L4  2020-08-01  2020-09-15   800    open                                 1720 (see test)
    L5  2020-01-01  2020-01-31   300    open                                 (prescribed)
    L6  2020-01-01  2020-01-31   300    100 paid 2021-03-01 -> 200 open
    L7  2025-05-01  2025-06-01   700    due on D: not late
    L8  2025-03-01  2025-03-31   900    paid 2025-04-10
    C1  credit note 2025-03-01   100    not an invoice
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.legal import build_legal_amounts, build_terms_flags
from ledger.contracts import Ledger

D = "2025-06-01"


def make_ledger() -> Ledger:
    rows = [
        ("L1", "A", "invoice", "2025-03-01", "2025-04-30", 1000.0, None),
        ("L2", "A", "invoice", "2025-01-10", "2025-03-20", 2000.0, None),
        ("L3", "B", "invoice", "2025-01-10", "2025-03-15", 500.0, None),
        ("L4", "B", "invoice", "2020-08-01", "2020-09-15", 800.0, None),
        ("L5", "C", "invoice", "2020-01-01", "2020-01-31", 300.0, None),
        ("L6", "C", "invoice", "2020-01-01", "2020-01-31", 300.0, None),
        ("L7", "C", "invoice", "2025-05-01", "2025-06-01", 700.0, None),
        ("L8", "C", "invoice", "2025-03-01", "2025-03-31", 900.0, "2025-04-10"),
        ("C1", "C", "credit_note", "2025-03-01", "2025-03-01", 100.0, None),
    ]
    inv = pd.DataFrame(rows, columns=["invoice_id", "client_id", "doc_type", "issue_date", "due_date", "amount",
                                      "paid_date"])
    pay = pd.DataFrame([("P1", "L6", "2021-03-01", 100.0), ("P2", "L8", "2025-04-10", 900.0)],
                       columns=["payment_id", "invoice_id", "paid_date", "amount"])
    return Ledger.from_frames(inv, pay)


def test_penalties_and_indemnity():
    res = build_legal_amounts(make_ledger(), D).set_index("invoice_id")
    assert sorted(res.index) == ["L1", "L2", "L3", "L4", "L5", "L6"]
    assert res["days_late"].to_dict() == {"L1": 32, "L2": 73, "L3": 78, "L4": 1720, "L5": 1948, "L6": 1948}
    assert (res["penalty_rate"] == 12.15).all()
    # L1: 1000 * 0.1215 * 32 / 365 = 3888 / 365 = 10.6521 -> 10.65
    assert res.loc["L1", "late_penalty"] == 10.65
    # L2: 2000 * 0.1215 * 73 / 365 = 243 * 0.2 = 48.60
    assert res.loc["L2", "late_penalty"] == 48.60
    # L3: 500 * 0.1215 * 78 / 365 = 4738.5 / 365 = 12.98219 -> 12.98
    assert res.loc["L3", "late_penalty"] == 12.98
    # L4: 2020-09-15 -> 2025-09-15 is 5 * 365 + 1 (29 Feb 2024) = 1826 days; 2025-06-01 -> 09-15 is
    # 30 + 31 + 31 + 14 = 106 days; 1826 - 106 = 1720. 800 * 0.1215 * 1720 / 365 = 167184 / 365 = 458.0384
    assert res.loc["L4", "late_penalty"] == 458.04
    # L6 penalty on the 200 still open: 200 * 0.1215 * 1948 / 365 = 47336.4 / 365 = 129.6888 -> 129.69
    # (1948 = 2020-01-31 -> 2025-01-31 = 1827 incl. 29 Feb 2020 and 2024, + 28 + 31 + 30 + 31 + 1 = 121)
    assert res.loc["L6", "outstanding"] == 200.0
    assert res.loc["L6", "late_penalty"] == 129.69
    assert (res["recovery_indemnity"] == 40.0).all()
    assert res["recovery_indemnity"].sum() == 240.0


def test_configurable_rate():
    # ECB 4 % + 10 = 14 %: L2 2000 * 0.14 * 73 / 365 = 280 * 0.2 = 56.00; margin 7 -> 11 %: 2000 * .11 * .2 = 44
    assert build_legal_amounts(make_ledger(), D, ecb_rate=4.0).set_index("invoice_id").loc["L2", "late_penalty"] == 56.0
    res = build_legal_amounts(make_ledger(), D, ecb_rate=4.0, margin_points=7.0, indemnity=0.0).set_index("invoice_id")
    assert res.loc["L2", "late_penalty"] == 44.0
    assert res["recovery_indemnity"].sum() == 0.0
    with pytest.raises(ValueError, match="ecb_rate"):
        build_legal_amounts(make_ledger(), D, ecb_rate=-1.0)


def test_lme_terms_flags():
    res = build_legal_amounts(make_ledger(), D).set_index("invoice_id")
    assert res.loc["L1", "terms_days"] == 60 and not res.loc["L1", "lme_terms_exceeded"]
    # L2 issued 2025-01-10: limits 01-10 + 60 = 03-11; end of January + 45 = 03-17; 01-10 + 45 = 02-24,
    # end of month 02-28. Latest = 03-17; due 03-20 is later -> exceeded.
    assert res.loc["L2", "terms_days"] == 69
    assert res.loc["L2", "lme_limit_date"] == pd.Timestamp("2025-03-17")
    assert res.loc["L2", "lme_terms_exceeded"]
    # L3: 64 days is beyond 60 net, but 03-15 is within "45 days end of month" (03-17): not flagged.
    assert res.loc["L3", "terms_days"] == 64 and not res.loc["L3", "lme_terms_exceeded"]


def test_terms_flags_month_end_reading():
    # Issued 01-31: + 60 = 04-01; end of month + 45 = 03-17; + 45 = 03-17 then end of month = 03-31.
    # Latest is 04-01 (net 60). Due 04-02 -> exceeded; due 04-01 -> fine.
    inv = pd.DataFrame({"invoice_id": ["a", "b"], "issue_date": ["2025-01-31"] * 2,
                        "due_date": ["2025-04-01", "2025-04-02"]})
    flags = build_terms_flags(inv).set_index("invoice_id")
    assert flags["lme_limit_date"].to_dict() == {"a": pd.Timestamp("2025-04-01"), "b": pd.Timestamp("2025-04-01")}
    assert flags["lme_terms_exceeded"].to_dict() == {"a": False, "b": True}
    # Issued 2025-12-20: + 60 = 2026-02-18; end of Dec + 45 = 2026-02-14; + 45 = 2026-02-03 -> end Feb = 02-28.
    inv = pd.DataFrame({"invoice_id": ["c"], "issue_date": ["2025-12-20"], "due_date": ["2026-02-28"]})
    flags = build_terms_flags(inv).iloc[0]
    assert flags["lme_limit_date"] == pd.Timestamp("2026-02-28") and not flags["lme_terms_exceeded"]


def test_prescription():
    res = build_legal_amounts(make_ledger(), D).set_index("invoice_id")
    # L4 due 2020-09-15 -> prescribed 2025-09-15; D is within the 6 months before (from 2025-03-15).
    assert res.loc["L4", "prescription_date"] == pd.Timestamp("2025-09-15")
    assert res.loc["L4", "prescription_status"] == "prescription_within_6_months"
    # L5 due 2020-01-31 -> prescribed since 2025-01-31.
    assert res.loc["L5", "prescription_status"] == "prescribed"
    # L6: the partial payment of 2021-03-01 restarts the period: 2026-03-01, warning from 2025-09-01.
    assert res.loc["L6", "prescription_start"] == pd.Timestamp("2021-03-01")
    assert res.loc["L6", "prescription_date"] == pd.Timestamp("2026-03-01")
    assert res.loc["L6", "prescription_status"] == "ok"
    assert res.loc["L1", "prescription_status"] == "ok"


def test_no_leakage_from_payments_after_as_of():
    base = build_legal_amounts(make_ledger(), D)
    led = make_ledger()
    later_pay = pd.concat([led.payments, Ledger.from_frames(
        led.invoices.iloc[:0], pd.DataFrame([("P9", "L4", "2025-06-01", 800.0)],
                                             columns=["payment_id", "invoice_id", "paid_date", "amount"])).payments])
    led2 = Ledger(invoices=led.invoices, payments=later_pay, clients=led.clients, actions=led.actions)
    pd.testing.assert_frame_equal(build_legal_amounts(led2, D), base)
    assert "L4" not in set(build_legal_amounts(led2, "2025-06-02")["invoice_id"])


def test_a_ledger_without_payment_rows():
    # ERP extracts often carry only cleared dates (the SAP slice does): no payments table at all.
    full = make_ledger()
    bare = Ledger(invoices=full.invoices, clients=full.clients, actions=full.actions)
    res = build_legal_amounts(bare, D).set_index("invoice_id")
    assert res.loc["L1", "late_penalty"] == 10.65  # same hand-computed figure as above
    assert res.loc["L6", "outstanding"] == 300.0  # no partial payment known now
    assert res.loc["L5", "prescription_status"] == "prescribed"

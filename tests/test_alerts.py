"""Alerts: each kind fires on a hand-built case and not on its control."""

from __future__ import annotations

import pandas as pd

from ledger.contracts import Ledger
from models.alerts import build_alerts

D = pd.Timestamp("2025-03-01")


def _case():
    inv = pd.DataFrame({
        "invoice_id": ["I1", "I2", "I3", "I4", "I5", "I6"],
        "client_id": ["A", "A", "B", "A", "B", "A"],
        "issue_date": pd.to_datetime(["2025-01-01"] * 6),
        "due_date": pd.to_datetime(["2025-02-01", "2025-02-01", "2025-02-01", "2025-03-04", "2025-03-04",
                                    "2025-03-04"]),
        "amount": [1000.0, 2000.0, 500.0, 50_000.0, 50_000.0, 900.0],
        "paid_date": pd.to_datetime([None, "2025-02-22", None, None, None, None]),
    })
    act = pd.DataFrame({
        "action_id": ["a1", "a2", "a3"], "invoice_id": ["I1", "I2", "I3"], "client_id": ["A", "A", "B"],
        "action_date": pd.to_datetime(["2025-02-10", "2025-02-10", "2025-02-20"]),
        "step": ["promise", "promise", "promise"],
        "promise_date": pd.to_datetime(["2025-02-20", "2025-02-20", "2025-03-10"]),
        "promise_amount": [1000.0, 2000.0, 500.0],
    })
    clients = pd.DataFrame({"client_id": ["A", "B"], "credit_limit": [10_000.0, 100_000.0]})
    ledger = Ledger.from_frames(inv, clients=clients, actions=act)
    open_ = inv[inv["paid_date"].isna()]
    scores = pd.DataFrame({"invoice_id": open_["invoice_id"], "client_id": open_["client_id"],
                           "amount": open_["amount"], "due_date": open_["due_date"],
                           "p_very_late": [0.5, 0.2, 0.6, 0.2, 0.5]})
    cs = pd.DataFrame({"client_id": ["A", "B"], "open_amount": [51_900.0, 50_500.0],
                       "p_very_late_max": [0.6, 0.2]})
    return ledger, scores, cs


def test_each_alert_fires_on_its_case_and_not_on_the_control():
    ledger, scores, cs = _case()
    previous = pd.DataFrame({"client_id": ["A", "B"], "p_very_late_max": [0.10, 0.15]})
    a = build_alerts(cs, scores, ledger, D, previous_client_scores=previous, large_amount=10_000.0)
    got = {(r.kind, r.client_id, r.invoice_id if isinstance(r.invoice_id, str) else None)
           for r in a.itertuples(index=False)}
    assert got == {
        ("over_credit_limit", "A", None),        # 51,900 open vs 10,000; B 50,500 vs 100,000 is fine
        ("risk_jump", "A", None),                # 10 % -> 60 %; B 15 % -> 20 % is not a jump
        ("broken_promise", "A", "I1"),           # promised 02-20 + 3 days, unpaid; I2 was paid, I3 not yet due
        ("large_invoice_due_soon", "A", "I4"),   # 50,000 due 03-04, client A risky; I5 is B's (safe), I6 small
    }
    assert list(a.columns) == ["kind", "client_id", "invoice_id", "severity", "reason"]
    reasons = a.set_index("kind")["reason"]
    assert "519%" in reasons["over_credit_limit"] and "10% to 60%" in reasons["risk_jump"]
    assert "2025-02-20" in reasons["broken_promise"]
    assert set(a["severity"]) <= {"high", "medium", "low"}
    assert a["severity"].iloc[0] == "high"


def test_no_risk_jump_without_history_and_no_alert_on_a_quiet_ledger():
    ledger, scores, cs = _case()
    a = build_alerts(cs, scores, ledger, D, large_amount=10_000.0)
    assert "risk_jump" not in set(a["kind"])
    quiet = cs.assign(open_amount=[1_000.0, 1_000.0], p_very_late_max=[0.05, 0.05])
    later_promises = ledger.actions.assign(promise_date=pd.Timestamp("2025-03-20"))
    quiet_ledger = Ledger(ledger.invoices, ledger.payments, ledger.clients, later_promises)
    assert build_alerts(quiet, scores, quiet_ledger, D, large_amount=10_000.0).empty


def test_a_promise_broken_long_ago_is_not_reported_again():
    ledger, scores, cs = _case()
    a = build_alerts(cs, scores, ledger, D + pd.Timedelta(days=60), large_amount=10_000.0)
    assert "broken_promise" not in set(a["kind"])

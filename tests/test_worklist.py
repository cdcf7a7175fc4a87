"""The worklist: ranking by expected cash per minute, queues, capacity, capture. Frames built by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ledger.contracts import Ledger
from models.dunning import next_steps
from models.policy import load_policy
from models.worklist import (
    EFFORT_MINUTES,
    QUEUE_BLOCKED,
    QUEUE_DISPUTE,
    QUEUE_DUNNING,
    QUEUE_LATER,
    QUEUE_NO_CHASE,
    QUEUE_OVER_CAPACITY,
    QUEUE_PROMISE,
    UPLIFT_BY_STEP,
    build_client_scores,
    evaluate_worklist_capture,
    rank_worklist,
)

D = pd.Timestamp("2025-03-01")


def _scores(rows):
    """rows: (invoice_id, client_id, amount, due_date, p_very_late)."""
    df = pd.DataFrame(rows, columns=["invoice_id", "client_id", "amount", "due_date", "p_very_late"])
    df["due_date"] = pd.to_datetime(df["due_date"])
    df["currency"] = "EUR"
    df["p_late"] = 1.0
    df["reasons"] = "reason of " + df["invoice_id"]
    return df


def _steps(rows):
    """rows: (invoice_id, next_action, next_action_date, channel)."""
    df = pd.DataFrame(rows, columns=["invoice_id", "next_action", "next_action_date", "channel"])
    df["next_action_date"] = pd.to_datetime(df["next_action_date"])
    return df


def _assign(clients, profile="standard", scenario="standard"):
    return pd.DataFrame({"client_id": clients, "profile": profile, "scenario": scenario})


def test_prefers_expected_recoverable_cash_per_minute_over_a_bigger_safe_case():
    # BIG: 50,000 EUR, 60 days overdue, but a client who pays (P(very late) 2 %).
    # RISKY: 8,000 EUR, 20 days overdue, P(very late) 60 %. Same step (a call).
    scores = _scores([("BIG", "C1", 50_000.0, "2024-12-31", 0.02), ("RISKY", "C2", 8_000.0, "2025-02-09", 0.60)])
    steps = _steps([("BIG", "call", D, "call"), ("RISKY", "call", D, "call")])
    wl = rank_worklist(scores, None, _assign(["C1", "C2"]), steps, D).set_index("invoice_id")
    assert wl.loc["RISKY", "priority"] == 1 and wl.loc["BIG", "priority"] == 2
    u = UPLIFT_BY_STEP["call"]
    assert wl.loc["RISKY", "expected_gain"] == pytest.approx(8_000 * 0.60 * u)
    assert wl.loc["RISKY", "gain_per_minute"] == pytest.approx(8_000 * 0.60 * u / EFFORT_MINUTES["call"])
    # A static amount x age ranking would have put BIG first.
    assert 50_000 * 60 > 8_000 * 20
    why = wl.loc["RISKY", "why"]
    assert "expected gain" in why and "60%" in why and "8,000 EUR" in why and "call" in why
    assert wl.loc["RISKY", "reasons"] == "reason of RISKY"


def test_effort_counts_a_call_costs_more_minutes_than_an_email():
    # Same amount at risk; the email's smaller uplift is worth more per minute than the call's.
    scores = _scores([("CALL", "C1", 10_000.0, "2025-02-01", 0.5), ("MAIL", "C2", 10_000.0, "2025-02-01", 0.5)])
    steps = _steps([("CALL", "call", D, "call"), ("MAIL", "reminder_1", D, "email")])
    wl = rank_worklist(scores, None, _assign(["C1", "C2"]), steps, D).set_index("invoice_id")
    assert wl.loc["CALL", "expected_gain"] > wl.loc["MAIL", "expected_gain"]
    assert wl.loc["MAIL", "priority"] == 1
    # With calls made as cheap as emails, the call wins.
    wl2 = rank_worklist(scores, None, _assign(["C1", "C2"]), steps, D, effort={"call": 2.0}).set_index("invoice_id")
    assert wl2.loc["CALL", "priority"] == 1


def test_partial_payments_reduce_the_amount_at_stake():
    scores = _scores([("A", "C1", 10_000.0, "2025-02-01", 0.5), ("B", "C2", 6_000.0, "2025-02-01", 0.5)])
    feats = pd.DataFrame({"invoice_id": ["A", "B"], "client_id": ["C1", "C2"], "i_paid_share": [0.9, 0.0]})
    steps = _steps([("A", "call", D, "call"), ("B", "call", D, "call")])
    wl = rank_worklist(scores, feats, _assign(["C1", "C2"]), steps, D).set_index("invoice_id")
    assert wl.loc["A", "amount_remaining"] == pytest.approx(1_000.0)
    assert wl.loc["B", "priority"] == 1


def test_block_dispute_promise_and_trusted_payer_are_not_in_the_dunning_queue():
    policy = load_policy()
    inv = _scores([
        ("BLOCK", "C1", 9_000.0, "2025-01-15", 0.9),
        ("DISP", "C2", 8_000.0, "2025-01-15", 0.9),
        ("PROM", "C3", 7_000.0, "2025-01-15", 0.9),
        ("TRUST", "C4", 6_000.0, "2025-02-15", 0.03),
        ("FUTURE", "C5", 5_000.0, "2025-03-20", 0.4),
        ("WORK", "C5", 1_000.0, "2025-01-15", 0.4),
    ])
    inv["dunning_block"] = ["A", None, None, None, None, None]
    actions = pd.DataFrame({
        "invoice_id": ["DISP", "PROM"], "client_id": ["C2", "C3"],
        "action_date": pd.to_datetime(["2025-02-10", "2025-02-25"]), "step": ["dispute", "promise"],
        "outcome": [None, "promise"], "channel": ["call", "call"],
        "promise_date": pd.to_datetime([None, "2025-03-05"]),
    })
    assign = pd.DataFrame({"client_id": ["C1", "C2", "C3", "C4", "C5"],
                           "profile": ["high_risk", "high_risk", "high_risk", "trusted", "standard"]})
    assign["scenario"] = assign["profile"].map(lambda p: policy.profile(p).scenario)
    steps = next_steps(inv, assign, policy, D, actions=actions)
    wl = rank_worklist(inv, None, assign, steps, D).set_index("invoice_id")
    expected = {"BLOCK": QUEUE_BLOCKED, "DISP": QUEUE_DISPUTE, "PROM": QUEUE_PROMISE, "TRUST": QUEUE_NO_CHASE,
                "FUTURE": QUEUE_LATER, "WORK": QUEUE_DUNNING}
    assert wl["queue"].to_dict() == expected
    assert wl["priority"].notna().sum() == 1 and wl.loc["WORK", "priority"] == 1
    assert "dispute queue" in wl.loc["DISP", "why"]
    assert "2025-03-08" in wl.loc["PROM", "why"]  # promise 2025-03-05 + 3 days grace
    assert "not chased" in wl.loc["TRUST", "why"]
    assert "dunning block" in wl.loc["BLOCK", "why"]
    assert wl.loc["FUTURE", "next_action_date"] > D and str(wl.loc["FUTURE", "next_action_date"].date()) in wl.loc[
        "FUTURE", "why"]
    for col in ("profile", "scenario", "next_action", "next_action_date", "reasons"):
        assert col in wl.columns
    # The dunning row comes first in the frame, the rest sink below it.
    assert wl.index[0] == "WORK"
    # A trusted client whose invoice is risky is chased.
    inv.loc[inv["invoice_id"] == "TRUST", "p_very_late"] = 0.5
    wl2 = rank_worklist(inv, None, assign, steps, D).set_index("invoice_id")
    assert wl2.loc["TRUST", "queue"] in (QUEUE_DUNNING, QUEUE_LATER)


def test_capacity_cuts_each_collectors_list():
    rows, steps = [], []
    for who, client in (("ana", "C1"), ("bob", "C2")):
        for i in range(4):
            iid = f"{who}{i}"
            rows.append((iid, client, 1_000.0 * (i + 1), "2025-02-01", 0.5))
            steps.append((iid, "reminder_1", D, "email"))
    rows.append(("boss", "C3", 100.0, "2025-02-01", 0.5))
    steps.append(("boss", "reminder_1", D, "email"))
    portfolios = {"C1": "ana", "C2": "bob"}
    scores, st, assign = _scores(rows), _steps(steps), _assign(["C1", "C2", "C3"])
    minutes = EFFORT_MINUTES["email"]
    wl = rank_worklist(scores, None, assign, st, D, capacity=2.5 * minutes, portfolios=portfolios)
    listed = wl[wl["priority"].notna()]
    assert listed.groupby("collector").size().to_dict() == {"ana": 2, "bob": 2, "unassigned": 1}
    assert (listed.groupby("collector")["effort_minutes"].sum() <= 2.5 * minutes).all()
    # Each collector keeps their best cases: the two biggest of the four.
    assert set(listed.loc[listed["collector"] == "ana", "invoice_id"]) == {"ana3", "ana2"}
    over = wl[wl["queue"] == QUEUE_OVER_CAPACITY]
    assert len(over) == 4 and over["priority"].isna().all() and over["why"].str.startswith("over").all()
    assert listed["priority"].tolist() == list(range(1, 6))
    assert sorted(listed.loc[listed["collector"] == "bob", "collector_priority"]) == [1, 2]
    # Without capacity everyone's whole list is due.
    assert rank_worklist(scores, None, assign, st, D, portfolios=portfolios)["priority"].notna().sum() == 9


def test_capture_top10_matches_the_hand_computed_value():
    as_of, end = "2025-03-01", "2025-06-01"
    # invoice, amount, due, paid. t = max(due, as_of) + 30 days.
    spec = [
        ("r1", 1000.0, "2025-02-01", None),          # unpaid at end, t = 03-31 < end: very late
        ("r2", 500.0, "2025-03-10", "2025-03-15"),   # paid before t = 04-09: fine
        ("r3", 2000.0, "2025-01-01", "2025-05-01"),  # paid after t = 03-31: very late
        ("r4", 300.0, "2025-05-20", None),           # t = 06-19 >= end, unpaid: censored
        ("r5", 100.0, "2025-02-20", "2025-07-01"),   # paid after end = unpaid at end: very late
    ] + [(f"r{i}", 100.0, "2025-02-20", "2025-03-05") for i in range(6, 20)] + [
        ("r20", 4000.0, "2024-12-01", None),         # very late
    ]
    inv = pd.DataFrame(spec, columns=["invoice_id", "amount", "due_date", "paid_date"])
    inv["client_id"] = "C1"
    inv["issue_date"] = pd.to_datetime(inv["due_date"]) - pd.Timedelta(days=30)
    ledger = Ledger.from_frames(inv)
    wl = inv[["invoice_id", "client_id", "amount", "due_date"]].copy()
    wl["due_date"] = pd.to_datetime(wl["due_date"])
    wl["amount_remaining"] = wl["amount"]
    wl["rank"] = range(1, len(wl) + 1)
    res = evaluate_worklist_capture(wl.sample(frac=1, random_state=0), ledger, as_of, end)
    total = 1000 + 2000 + 100 + 4000
    assert res["n_top"] == 2  # ceil(10 % of 20)
    assert res["capture_top10"] == pytest.approx(1000 / total)  # r1, r2
    # Static: amount x days overdue puts r20 (4000 x 90) and r3 (2000 x 59) first.
    assert res["capture_top10_static"] == pytest.approx(6000 / total)
    assert (res["n_very_late"], res["n_censored"], res["very_late_amount"]) == (4, 1, total)
    with pytest.raises(ValueError, match="end must be after as_of"):
        evaluate_worklist_capture(wl, ledger, as_of, as_of)


def test_build_client_scores_from_known_facts():
    inv = pd.DataFrame({
        "invoice_id": ["A1", "A2", "B1", "P1"], "client_id": ["A", "A", "B", "P"],
        "issue_date": pd.to_datetime(["2024-11-01", "2025-02-01", "2025-01-20", "2025-01-01"]),
        "due_date": pd.to_datetime(["2024-12-01", "2025-03-03", "2025-02-19", "2025-01-31"]),
        "amount": [1000.0, 500.0, 800.0, 300.0], "paid_date": pd.NaT,
    })
    pay = pd.DataFrame({"payment_id": ["p1", "p2"], "invoice_id": ["A1", "A1"],
                        "paid_date": pd.to_datetime(["2025-02-10", "2025-03-05"]), "amount": [200.0, 100.0]})
    clients = pd.DataFrame({"client_id": ["A", "B", "P"], "strategic": [True, False, None],
                            "credit_limit": [1000.0, None, 500.0]})
    act = pd.DataFrame({"action_id": ["x", "y"], "invoice_id": [None, None], "client_id": ["P", "B"],
                        "action_date": pd.to_datetime(["2025-02-15", "2025-03-10"]),
                        "step": ["payment_plan", "payment_plan"],
                        "promise_date": pd.to_datetime(["2025-03-15", "2025-04-15"])})
    ledger = Ledger.from_frames(inv, payments=pay, clients=clients, actions=act)
    scores = pd.DataFrame({"invoice_id": ["A1", "A2", "B1", "P1"], "client_id": ["A", "A", "B", "P"],
                           "p_late": [1.0, 0.4, 1.0, 1.0], "p_very_late": [0.5, 0.1, 0.2, 0.3]})
    feats = pd.DataFrame({"invoice_id": ["A1", "A2", "B1", "P1"], "client_id": ["A", "A", "B", "P"],
                          "c_overdue_share": [0.6, 0.6, 1.0, 1.0], "c_open_amount": [1300.0, 1300.0, 800.0, 300.0],
                          "c_promises_broken": [1.0, 1.0, None, None],
                          "c_days_since_last_payment": [19.0, 19.0, None, None], "c_credit_use": [1.3, 1.3, None, 0.6]})
    cs = build_client_scores(scores, feats, ledger, D).set_index("client_id")
    assert cs.loc["A", "p_late_mean"] == pytest.approx(0.7) and cs.loc["A", "p_very_late_max"] == 0.5
    assert cs.loc["B", "broken_promises"] == 0 and math.isnan(cs.loc["B", "days_since_last_payment"])
    assert cs["strategic"].tolist() == [True, False, False]
    # A: A1 is 90 days overdue and got a partial payment 19 days ago -> difficulty.
    # P: a payment plan agreed before as_of -> difficulty and in a plan.
    # B: its plan is recorded after as_of -> unknown then.
    assert cs["in_difficulty"].to_dict() == {"A": True, "B": False, "P": True}
    assert cs["in_payment_plan"].to_dict() == {"A": False, "B": False, "P": True}
    # The partial payment after as_of is not seen: without p1 A would not be in difficulty.
    ledger2 = Ledger.from_frames(inv, payments=pay.iloc[1:], clients=clients, actions=act)
    assert not build_client_scores(scores, feats, ledger2, D).set_index("client_id").loc["A", "in_difficulty"]

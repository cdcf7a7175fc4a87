"""Point-in-time features on small ledgers at their edges: no actions, no payments, one invoice,
credit notes only, ties, promises on unknown invoices; and the training set's shared path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.clients import build_client_features
from features.invoices import build_features
from features.snapshots import add_outcomes, stack_snapshots
from ledger.contracts import Ledger
from ledger.synth import make_ledger

D = pd.Timestamp("2024-03-01")


def _ledger(with_payments: bool = True, with_actions: bool = True) -> Ledger:
    # A: two invoices paid on the same Monday (5 days late, 4 early), one open and partly paid.
    # B: a credit note only. C: one invoice paid 10 days late in two parts.
    invoices = pd.DataFrame({
        "invoice_id": ["a1", "a2", "a3", "b1", "c1"],
        "client_id": ["A", "A", "A", "B", "C"],
        "issue_date": ["2024-01-01", "2024-01-10", "2024-02-01", "2024-01-15", "2024-01-05"],
        "due_date": ["2024-01-31", "2024-02-09", "2024-03-02", "2024-01-15", "2024-02-04"],
        "paid_date": ["2024-02-05", "2024-02-05", None, None, "2024-02-14"],
        "amount": [100.0, 50.0, 200.0, 30.0, 100.0],
        "doc_type": ["invoice", "invoice", "invoice", "credit_note", "invoice"],
    })
    payments = pd.DataFrame({
        "payment_id": ["p1", "p2", "p3", "p4", "p5"],
        "invoice_id": ["a1", "a2", "a3", "c1", "c1"],
        "paid_date": ["2024-02-05", "2024-02-05", "2024-02-20", "2024-02-10", "2024-02-14"],
        "amount": [100.0, 50.0, 80.0, 60.0, 40.0],
    })
    actions = pd.DataFrame({
        "action_id": ["x1", "x2", "x3"],
        "invoice_id": ["zz", "a3", "a3"],  # zz: an invoice the ledger does not hold
        "client_id": ["C", "A", "A"],
        "action_date": ["2024-01-20", "2024-02-25", "2024-02-26"],
        "step": ["promise", "promise", "reminder_1"],
        "promise_date": ["2024-02-01", "2024-03-10", None],
    })
    return Ledger.from_frames(invoices, payments if with_payments else None, actions=actions if with_actions else None)


def test_client_figures_at_the_edges():
    c = build_client_features(_ledger(), D)
    assert list(c.index) == ["A", "B", "C"]
    a, b, cc = c.loc["A"], c.loc["B"], c.loc["C"]

    assert a["c_n_invoices"] == 3 and a["c_n_paid"] == 2
    assert a["c_last3_delay"] == pytest.approx(0.5)  # (5 - 4) / 2
    assert a["c_delay_std"] == pytest.approx(np.std([5.0, -4.0], ddof=1))
    assert a["c_pay_dow_mode"] == 0 and a["c_pay_dow_share"] == 1.0  # one payment day, a Monday
    assert np.isnan(a["c_pay_gap_median"])  # one payment day: no gap yet
    assert a["c_open_amount"] == 120.0  # 200 less 80 received
    assert a["c_n_open_overdue"] == 0 and a["c_overdue_amount"] == 0.0 and np.isnan(a["c_overdue_share"])
    assert a["c_partial_rate"] == 0.0  # a1, a2, a3 each paid in one part so far
    assert a["c_promises"] == 1 and a["c_promises_kept"] == 0 and a["c_promises_broken"] == 0

    # A client seen only on a credit note: counted, with nothing to average.
    assert b["c_n_invoices"] == 0 and b["c_n_due"] == 0
    assert np.isnan(b["c_amount_total"]) and np.isnan(b["c_late_rate"]) and np.isnan(b["c_credit_note_rate"])

    # One invoice: no spread, the 90th percentile is its delay; paid in two parts.
    assert cc["c_delay_p90"] == 10 and np.isnan(cc["c_delay_std"]) and cc["c_partial_rate"] == 1.0
    # A promise on an invoice the ledger does not hold is never kept: broken once its deadline passed.
    assert cc["c_promises"] == 1 and cc["c_promises_kept"] == 0 and cc["c_promises_broken"] == 1


def test_invoice_history_at_the_edges():
    f = build_features(_ledger(), D).set_index("invoice_id")
    assert list(f.index) == ["a3"]
    assert f.loc["a3", "i_paid_share"] == pytest.approx(0.4)
    assert f.loc["a3", "i_n_actions"] == 2 and f.loc["a3", "i_last_step_rank"] == 3  # reminder_1
    assert f.loc["a3", "i_days_since_action"] == 4 and f.loc["a3", "i_promise_days"] == 9


def test_no_actions_and_no_payments():
    f = build_features(_ledger(with_payments=False, with_actions=False), D).set_index("invoice_id")
    row = f.loc["a3"]
    assert row["i_n_actions"] == 0 and row["i_last_step_rank"] == 0 and row["i_paid_share"] == 0
    assert np.isnan(row["i_days_since_action"]) and np.isnan(row["i_promise_days"])
    assert row["c_open_amount"] == 200.0 and np.isnan(row["c_partial_rate"])
    assert row["c_reminders_365"] == 0 and row["c_promises"] == 0 and np.isnan(row["c_reminder_response"])
    assert np.isnan(row["c_dispute_rate"])


def test_before_any_document_and_with_actions_only_on_unknown_invoices():
    led = _ledger()
    early = build_client_features(led, "2024-01-01")
    assert early.empty and list(early.columns) == list(build_client_features(led, D).columns)
    assert build_features(led, "2024-01-01").empty
    # On 2024-01-21 only C's promise on 'zz' and A's and C's first invoices are known.
    c = build_client_features(led, "2024-01-21")
    assert c.loc["C", "c_promises"] == 1 and c.loc["C", "c_promises_broken"] == 0  # deadline not yet passed


def test_client_frame_given_or_computed_gives_the_same_features():
    led = make_ledger(40, years=2, seed=5)
    d = pd.Timestamp("2025-09-01")
    pd.testing.assert_frame_equal(build_features(led, d), build_features(led, d, clients=build_client_features(led, d)))


def test_training_set_equals_the_per_day_frames_with_their_outcomes():
    led = make_ledger(40, years=2, seed=5)
    end = pd.Timestamp("2025-10-01")
    days = [pd.Timestamp(x) for x in ("2024-06-01", "2025-01-15", "2025-09-17")]
    known = led.known_at(end)
    want = pd.concat([add_outcomes(build_features(known, day, include_suspected_leaks=True).drop(columns="country"),
                                   known, day, end) for day in days], ignore_index=True)
    got = stack_snapshots(led, days, end, include_suspected_leaks=True)
    pd.testing.assert_frame_equal(got, want)


def test_known_at_result_is_independent_of_the_ledger():
    led = _ledger()
    later = led.known_at("2030-01-01")  # every row known: the frames are shared until written
    later.invoices.loc[0, "amount"] = -1.0
    later.payments.loc[0, "amount"] = -1.0
    assert led.invoices.loc[0, "amount"] == 100.0 and led.payments.loc[0, "amount"] == 100.0
    cut = led.known_at(D)
    cut.invoices.loc[0, "paid_date"] = pd.NaT
    assert led.invoices.loc[0, "paid_date"] == pd.Timestamp("2024-02-05")


def test_amount_received_in_many_parts_is_summed_as_pandas_sums_it():
    # Awkward amounts in 1 to 6 parts: a compensated sum differs from plain addition from 3 parts on.
    rng = np.random.default_rng(0)
    parts = rng.integers(1, 7, 200)
    ids = [f"i{k:03d}" for k in range(200)]
    invoices = pd.DataFrame({"invoice_id": ids, "client_id": [f"C{k % 7}" for k in range(200)],
                             "issue_date": "2024-01-01", "due_date": "2024-02-01", "paid_date": None,
                             "amount": 1e9})
    pay_ids = np.repeat(ids, parts)
    payments = pd.DataFrame({"payment_id": [f"p{k}" for k in range(len(pay_ids))], "invoice_id": pay_ids,
                             "paid_date": "2024-01-15", "amount": rng.lognormal(3, 3, len(pay_ids))})
    led = Ledger.from_frames(invoices, payments)
    f = build_features(led, D).set_index("invoice_id")
    got = payments.groupby("invoice_id")["amount"].sum()
    assert (f["i_paid_share"] == (got / 1e9).clip(0, 1).reindex(f.index)).all()
    remaining = (1e9 - got).clip(lower=0).groupby(invoices.set_index("invoice_id")["client_id"]).sum()
    assert (build_client_features(led, D)["c_open_amount"] == remaining).all()

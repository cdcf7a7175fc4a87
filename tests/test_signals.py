"""Optional feature groups (features.signals): values on a hand-made ledger, point in time, per client."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.invoices import build_features
from features.signals import EFFECT_HALFLIFE_DAYS, EFFECT_PRIOR_WEIGHT, FEATURE_GROUPS
from ledger.contracts import Ledger
from ledger.synth import make_ledger

D = pd.Timestamp("2024-03-01")
STUCK = ["i_later_paid", "i_later_paid_share", "i_paid_since_due", "i_overdue_vs_p90"]
EFFECT = ["c_delay_shrunk", "c_late_shrunk", "c_recent_weight"]


def _ledger() -> Ledger:
    # Client A pays around a1 and a3: a2 (4 days early) and a4 (10 days late) were issued after them
    # and are paid; a5 is paid on 03-05, after D, so open at D. Client B has one open invoice.
    return Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["a1", "a2", "a3", "a4", "a5", "b1"],
        "client_id": ["A", "A", "A", "A", "A", "B"],
        "issue_date": ["2024-01-01", "2024-01-10", "2024-01-20", "2024-02-01", "2024-02-10", "2024-01-01"],
        "due_date": ["2024-01-31", "2024-02-09", "2024-02-19", "2024-02-10", "2024-03-10", "2024-01-31"],
        "paid_date": [None, "2024-02-05", None, "2024-02-20", "2024-03-05", None],
        "amount": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
    }))


def test_groups_are_off_unless_asked_for():
    f = build_features(_ledger(), D)
    assert not set(STUCK + EFFECT) & set(f.columns)
    with pytest.raises(ValueError, match="Unknown feature groups"):
        build_features(_ledger(), D, feature_groups=["stuk"])


def test_stuck_signals_on_a_hand_made_ledger():
    f = build_features(_ledger(), D, feature_groups=["stuck"]).set_index("invoice_id")
    assert list(f.index) == ["a1", "a3", "a5", "b1"]
    # a1: a2..a5 issued later, a2 and a4 paid before D (a5 only after); both paid since 01-31.
    assert f.loc["a1", "i_later_paid"] == 2 and f.loc["a1", "i_later_paid_share"] == pytest.approx(0.5)
    assert f.loc["a1", "i_paid_since_due"] == 2
    # 30 days overdue; A's delays are -4 and 10, their 90th percentile 8.6.
    assert f.loc["a1", "i_overdue_vs_p90"] == pytest.approx(30 - 8.6)
    # a3: a4 and a5 issued later, a4 paid (on 02-20, after a3's due date 02-19).
    assert f.loc["a3", "i_later_paid"] == 1 and f.loc["a3", "i_later_paid_share"] == pytest.approx(0.5)
    assert f.loc["a3", "i_paid_since_due"] == 1
    # a5: not yet due, nothing issued after it.
    assert f.loc["a5", "i_paid_since_due"] == 0 and f.loc["a5", "i_later_paid"] == 0
    assert np.isnan(f.loc["a5", "i_later_paid_share"])
    # B has no payment history at all.
    assert f.loc["b1", "i_paid_since_due"] == 0 and np.isnan(f.loc["b1", "i_overdue_vs_p90"])


def test_client_effect_on_a_hand_made_ledger():
    f = build_features(_ledger(), D, feature_groups=["client_effect"]).set_index("invoice_id")
    w2 = 0.5 ** (25 / EFFECT_HALFLIFE_DAYS)  # a2 paid 25 days before D, 4 days early
    w4 = 0.5 ** (10 / EFFECT_HALFLIFE_DAYS)  # a4 paid 10 days before D, 10 days late
    k = EFFECT_PRIOR_WEIGHT
    assert f.loc["a1", "c_delay_shrunk"] == pytest.approx((-4 * w2 + 10 * w4) / (w2 + w4 + k))
    assert f.loc["a1", "c_late_shrunk"] == pytest.approx((w4 + 0.5 * k) / (w2 + w4 + k))
    assert f.loc["a1", "c_recent_weight"] == pytest.approx(w2 + w4)
    assert f.loc["a5", "c_delay_shrunk"] == f.loc["a1", "c_delay_shrunk"]  # a client figure
    # No history: the prior itself.
    assert f.loc["b1", "c_delay_shrunk"] == 0 and f.loc["b1", "c_late_shrunk"] == 0.5
    assert f.loc["b1", "c_recent_weight"] == 0


def test_a_payment_after_the_snapshot_does_not_change_it():
    base = _ledger()
    inv = base.invoices.copy()
    inv.loc[inv["invoice_id"] == "a1", "paid_date"] = pd.Timestamp("2024-03-02")  # a1 paid the day after D
    inv.loc[inv["invoice_id"] == "a5", "paid_date"] = pd.NaT  # a5 never paid
    later = Ledger(invoices=inv, payments=base.payments, clients=base.clients, actions=base.actions)
    groups = list(FEATURE_GROUPS)
    pd.testing.assert_frame_equal(build_features(base, D, feature_groups=groups),
                                  build_features(later, D, feature_groups=groups))
    # ... while a payment before D does change it.
    inv.loc[inv["invoice_id"] == "a3", "paid_date"] = pd.Timestamp("2024-02-25")
    moved = build_features(Ledger(invoices=inv, payments=base.payments, clients=base.clients,
                                  actions=base.actions), D, feature_groups=groups).set_index("invoice_id")
    assert moved.loc["a1", "i_later_paid"] == 3


@pytest.fixture(scope="module")
def synthetic() -> Ledger:
    return make_ledger(60, years=2, seed=3, end_date="2025-12-31")


def test_later_data_does_not_change_the_groups_on_a_synthetic_ledger(synthetic):
    d = pd.Timestamp("2025-06-15")
    inv = synthetic.invoices
    shifted = inv.assign(paid_date=inv["paid_date"].where(inv["paid_date"] < d, inv["paid_date"] + pd.Timedelta(days=40)))
    altered = Ledger(invoices=shifted, payments=synthetic.payments, clients=synthetic.clients,
                     actions=synthetic.actions)
    groups = list(FEATURE_GROUPS)
    full = build_features(synthetic, d, feature_groups=groups)
    pd.testing.assert_frame_equal(full, build_features(synthetic.known_at(d), d, feature_groups=groups))
    pd.testing.assert_frame_equal(full, build_features(altered, d, feature_groups=groups))
    assert len(full) > 50 and full["i_later_paid"].gt(0).any() and full["c_recent_weight"].gt(0).any()


def test_groups_depend_on_the_invoice_own_client_only(synthetic):
    # A client partition (the distributed path) must compute the same columns as the whole ledger.
    d = pd.Timestamp("2025-06-15")
    full = build_features(synthetic, d, feature_groups=list(FEATURE_GROUPS))
    some = sorted(full["client_id"].unique())[:5]
    inv = synthetic.invoices[synthetic.invoices["client_id"].isin(some)]
    part = Ledger(invoices=inv, payments=synthetic.payments[synthetic.payments["invoice_id"].isin(inv["invoice_id"])],
                  clients=synthetic.clients[synthetic.clients["client_id"].isin(some)],
                  actions=synthetic.actions[synthetic.actions["client_id"].isin(some)])
    alone = build_features(part, d, feature_groups=list(FEATURE_GROUPS))
    want = full[full["client_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone[["invoice_id"] + STUCK + EFFECT], want[["invoice_id"] + STUCK + EFFECT])

"""Optional feature groups (features.signals): values on a hand-made ledger, point in time, per client."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.invoices import build_features
from features.signals import EFFECT_HALFLIFE_DAYS, EFFECT_PRIOR_WEIGHT, FEATURE_GROUPS, PAY_CALENDAR_DAYS
from ledger.contracts import Ledger
from ledger.synth import make_ledger
from models.bins import pay_day_columns, start_day

D = pd.Timestamp("2024-03-01")
STUCK = ["i_later_paid", "i_later_paid_share", "i_paid_since_due", "i_overdue_vs_p90"]
EFFECT = ["c_delay_shrunk", "c_late_shrunk", "c_recent_weight"]
CALENDAR = ["i_pay_dom_mode", "i_pay_dom_share"]
HOLIDAYS = ["i_due_holiday", "i_due_next_open", "i_holidays_next"]


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
    assert not set(STUCK + EFFECT + CALENDAR + HOLIDAYS) & set(f.columns)
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


def _paid_on(days: list[str], open_due: str = "2024-03-20") -> Ledger:
    """Client A: one invoice paid on each of ``days`` (due the day before), one open at D."""
    n = len(days)
    return Ledger.from_frames(pd.DataFrame({
        "invoice_id": [f"p{i}" for i in range(n)] + ["open"],
        "client_id": ["A"] * (n + 1),
        "issue_date": ["2023-01-02"] * n + ["2024-02-15"],
        "due_date": [str((pd.Timestamp(x) - pd.Timedelta(days=1)).date()) for x in days] + [open_due],
        "paid_date": days + [None],
        "amount": [100.0] * (n + 1),
    }))


def test_pay_calendar_on_a_hand_made_ledger():
    # Paid on 01-31, 02-01 (a run across the month end), 01-02 and 02-02; once mid-month.
    f = build_features(_paid_on(["2024-01-31", "2024-02-01", "2024-01-02", "2024-02-02", "2024-01-15"]), D,
                       feature_groups=["pay_calendar"]).set_index("invoice_id")
    # Day 1 holds the 31st, the 1st and both 2nds within a day: 4 of 5 (months wrap around).
    assert f.loc["open", "i_pay_dom_mode"] == 1 and f.loc["open", "i_pay_dom_share"] == pytest.approx(0.8)
    # Fewer than three payment days: no usual day.
    f = build_features(_paid_on(["2024-01-15", "2024-02-15"]), D, feature_groups=["pay_calendar"])
    assert f["i_pay_dom_mode"].isna().all() and f["i_pay_dom_share"].isna().all()
    # Payments older than the window do not count.
    old = str((D - pd.Timedelta(days=PAY_CALENDAR_DAYS + 5)).date())
    f = build_features(_paid_on([old, "2024-01-10", "2024-02-10", "2024-02-20"]), D, feature_groups=["pay_calendar"])
    assert f["i_pay_dom_mode"].iloc[0] in (9, 10, 11) and f["i_pay_dom_share"].iloc[0] == pytest.approx(2 / 3)


def test_holiday_signals_read_the_invoices_country_else_its_clients():
    # As of Monday 2025-12-15: the 14 days ahead hold Christmas in GB, NL and FR, and the day after
    # in GB and NL. XX is no country the holidays package knows.
    d = pd.Timestamp("2025-12-15")
    led = Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["g1", "n1", "x1", "f1", "g2"],
        "client_id": ["G", "N", "X", "F", "G"],
        "issue_date": "2025-11-01",
        "due_date": ["2025-12-25", "2025-12-26", "2025-12-27", "2025-12-24", "2025-12-10"],
        "amount": 100.0,
        "country": ["GB", "nl", "XX", None, "GB"],
    }), clients=pd.DataFrame({"client_id": ["F"], "country": ["FR"]}))
    f = build_features(led, d, feature_groups=["holidays"]).set_index("invoice_id")
    # g1: Christmas (Thu), Boxing Day, the weekend: open again on Monday the 29th.
    assert f.loc["g1", HOLIDAYS].tolist() == [1.0, 4.0, 2.0]
    assert f.loc["n1", HOLIDAYS].tolist() == [1.0, 3.0, 2.0]  # Friday the 26th, then the weekend
    x1 = f.loc["x1", HOLIDAYS]
    assert np.isnan(x1["i_due_holiday"]) and x1["i_due_next_open"] == 2 and np.isnan(x1["i_holidays_next"])
    assert f.loc["f1", HOLIDAYS].tolist() == [0.0, 0.0, 1.0]  # the client's country: the 24th is open in FR
    assert f.loc["g2", HOLIDAYS].tolist() == [0.0, 0.0, 2.0]  # overdue, due on an open Wednesday
    # Saudi Arabia's weekend is Friday and Saturday: due on Friday the 12th, open on Sunday the 14th.
    sa = Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["fri", "sun"], "client_id": "S", "issue_date": "2025-11-01",
        "due_date": ["2025-12-12", "2025-12-14"], "amount": 100.0, "country": "SA"}))
    g = build_features(sa, pd.Timestamp("2025-12-01"), feature_groups=["holidays"]).set_index("invoice_id")
    assert g["i_due_next_open"].tolist() == [2.0, 0.0]
    # A due date far ahead, and one missing: values, not an error.
    inv = led.invoices.copy()
    inv["due_date"] = inv["due_date"].astype("datetime64[ns]")
    inv.loc[inv["invoice_id"] == "g2", "due_date"] = pd.Timestamp("2090-12-25")  # a Monday, Christmas Day
    inv.loc[inv["invoice_id"] == "n1", "due_date"] = pd.NaT
    f = build_features(Ledger(invoices=inv, clients=led.clients), d, feature_groups=["holidays"]).set_index("invoice_id")
    assert f.loc["g2", HOLIDAYS].tolist() == [1.0, 2.0, 2.0]  # Christmas, Boxing Day, open on Wednesday
    assert f.loc["n1", HOLIDAYS].isna().all()
    assert f.loc["g1", HOLIDAYS].tolist() == [1.0, 4.0, 2.0]


def test_pay_day_columns_place_the_client_day_in_each_bin():
    # Due on 20 June; usual payment day the 2nd (window 1st-3rd). Bins starting 0, 5, 11 and 13 days
    # past due (20, 25 June, 1 and 3 July), 7 days wide; a client with no usual day.
    start = np.array([0.0, 5, 11, 13, 0])
    cols = pay_day_columns(start_day(np.full(5, 6.0), np.full(5, 20.0), start), np.array([2.0, 2, 2, 2, np.nan]),
                            start, np.full(5, 7.0))
    assert list(cols["h_pay_dom_next"][:4]) == [11, 6, 0, 0]  # June has 30 days: 1 July is 11 days on
    assert list(cols["h_pay_dom_in_bin"][:4]) == [0, 1, 1, 1]
    assert list(cols["h_pay_dom_delay"][:4]) == [11, 11, 11, 13]
    assert all(np.isnan(cols[k][4]) for k in cols)


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
    assert full["i_pay_dom_share"].gt(0).any()


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
    cols = ["invoice_id"] + STUCK + EFFECT + CALENDAR + HOLIDAYS
    pd.testing.assert_frame_equal(alone[cols], want[cols])

"""Point-in-time features: censoring, leakage, purity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.clients import build_client_features
from features.invoices import build_features, open_invoices
from features.snapshots import add_outcomes, snapshot_dates, stack_snapshots
from ledger.contracts import Ledger
from ledger.synth import make_ledger

D = pd.Timestamp("2024-03-01")


def _three_invoices() -> Ledger:
    # Client A: one paid 10 days late, one paid on time, one still open 20 days past due at D.
    return Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["i1", "i2", "i3"],
        "client_id": ["A", "A", "A"],
        "issue_date": ["2024-01-01", "2024-01-05", "2024-01-10"],
        "due_date": ["2024-01-31", "2024-02-04", "2024-02-10"],
        "paid_date": ["2024-02-10", "2024-02-04", None],
        "amount": [100.0, 200.0, 300.0],
    }))


def test_open_overdue_invoice_counts_as_late_not_dropped():
    c = build_client_features(_three_invoices(), D).loc["A"]
    assert c["c_n_due"] == 3
    assert c["c_late_rate"] == pytest.approx(2 / 3)  # i1 paid late, i3 unpaid past due
    assert c["c_n_paid"] == 2
    assert c["c_delay_mean"] == pytest.approx(5.0)  # (10 + 0) / 2
    assert c["c_n_open_overdue"] == 1
    assert c["c_open_overdue_days_max"] == 20  # 2024-02-10 -> 2024-03-01
    assert c["c_open_amount"] == 300.0
    assert c["c_overdue_share"] == 1.0


def test_payment_on_as_of_is_not_yet_known():
    led = _three_invoices()
    led.invoices.loc[2, "paid_date"] = D
    assert list(open_invoices(led.known_at(D), D)["invoice_id"]) == ["i3"]
    assert list(build_features(led, D)["invoice_id"]) == ["i3"]
    assert build_client_features(led, D).loc["A", "c_n_open_overdue"] == 1


def test_invoice_features_of_an_overdue_invoice():
    f = build_features(_three_invoices(), D)
    row = f.iloc[0]
    assert row["invoice_id"] == "i3"
    assert row["i_days_to_due"] == -20
    assert row["i_terms_days"] == 31
    assert row["i_age_days"] == 51
    assert row["i_amount_ratio"] == pytest.approx(300 / 200)  # median of 100, 200, 300


def _cut_after(ledger: Ledger, d: pd.Timestamp) -> Ledger:
    """The ledger as an export taken at the start of ``d`` would hold it."""
    inv = ledger.invoices[ledger.invoices["issue_date"] < d].copy()
    inv["paid_date"] = inv["paid_date"].where(inv["paid_date"] < d)
    return Ledger(invoices=inv, payments=ledger.payments[ledger.payments["paid_date"] < d].copy(),
                  clients=ledger.clients.copy(), actions=ledger.actions[ledger.actions["action_date"] < d].copy())


@pytest.fixture(scope="module")
def synthetic() -> Ledger:
    return make_ledger(60, years=2, seed=3, end_date="2025-12-31")


def test_features_do_not_change_when_later_data_is_removed_or_altered(synthetic):
    d = pd.Timestamp("2025-06-15")
    full = build_features(synthetic, d)
    cut = build_features(_cut_after(synthetic, d), d)
    pd.testing.assert_frame_equal(full, cut)

    # Move every later payment by 40 days and add actions after d: still identical.
    altered = Ledger(
        invoices=synthetic.invoices.assign(paid_date=synthetic.invoices["paid_date"].where(
            synthetic.invoices["paid_date"] < d, synthetic.invoices["paid_date"] + pd.Timedelta(days=40))),
        payments=synthetic.payments, clients=synthetic.clients,
        actions=pd.concat([synthetic.actions, synthetic.actions.assign(
            action_id=synthetic.actions["action_id"] + "x", action_date=d + pd.Timedelta(days=3))]),
    )
    pd.testing.assert_frame_equal(full, build_features(altered, d))
    assert len(full) > 50  # the check compared real rows


def test_features_do_not_mutate_inputs(synthetic):
    before = synthetic.invoices.copy()
    build_features(synthetic, "2025-06-15")
    pd.testing.assert_frame_equal(before, synthetic.invoices)


def test_outcomes_and_censoring():
    led = _three_invoices()
    frame = build_features(led.known_at("2024-01-20"), "2024-01-20")
    out = add_outcomes(frame, led, pd.Timestamp("2024-01-20"), pd.Timestamp("2024-02-20"))
    by = out.set_index("invoice_id")
    assert by.loc["i1", "event"] == 1 and by.loc["i1", "duration_days"] == 21
    assert by.loc["i1", "y_late"] == 1 and by.loc["i1", "y_very_late"] == 0
    assert by.loc["i2", "y_late"] == 0
    # i3 is still open at the end of outcomes: censored there, late (due 02-10 < 02-20),
    # very-late undetermined (02-10 + 30 days is after 02-20).
    assert by.loc["i3", "event"] == 0 and by.loc["i3", "duration_days"] == 31
    assert by.loc["i3", "y_late"] == 1 and np.isnan(by.loc["i3", "y_very_late"])


def test_snapshots_start_after_the_payment_history_begins():
    led = _three_invoices()
    dates = snapshot_dates(led, "2024-06-01", freq_days=7, min_history_days=10)
    assert dates[0] >= pd.Timestamp("2024-02-04") + pd.Timedelta(days=10)
    assert dates == sorted(dates) and dates[-1] < pd.Timestamp("2024-06-01")


def test_training_set_hides_outcomes_after_its_end(synthetic):
    end = pd.Timestamp("2025-03-01")
    ts = stack_snapshots(synthetic, [pd.Timestamp("2024-12-01")], end)
    assert (ts["paid_date"].dropna() < end).all()
    assert (ts.loc[ts["event"] == 0, "duration_days"] == (end - pd.Timestamp("2024-12-01")).days).all()
    assert ts["event"].eq(0).any() and ts["event"].eq(1).any()


def test_actions_without_any_promise_yet():
    led = _three_invoices()
    led = Ledger.from_frames(led.invoices, actions=pd.DataFrame({
        "action_id": ["a1"], "invoice_id": ["i3"], "client_id": ["A"], "action_date": ["2024-02-12"],
        "step": ["reminder_1"], "channel": ["email"]}))
    f = build_features(led, D).set_index("invoice_id")
    assert f.loc["i3", "i_n_actions"] == 1 and f.loc["i3", "i_days_since_action"] == 18
    assert np.isnan(f.loc["i3", "i_promise_days"])


def test_payment_run_siblings_and_older_open_invoices():
    # Client A: i1, i2, i3 due the same day (i1 paid before D, i2 paid on D: not yet known), i4 due
    # later; client B: i5 due the same day as A's, alone. i6 is issued on D: not yet known.
    led = Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["i1", "i2", "i3", "i4", "i5", "i6"],
        "client_id": ["A", "A", "A", "A", "B", "A"],
        "issue_date": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-20", "2024-01-01", "2024-03-01"],
        "due_date": ["2024-02-01", "2024-02-01", "2024-02-01", "2024-02-20", "2024-02-01", "2024-02-01"],
        "paid_date": ["2024-02-05", "2024-03-01", None, None, None, None],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    }))
    f = build_features(led, D).set_index("invoice_id")
    assert list(f.index) == ["i2", "i3", "i4", "i5"]
    assert f.loc["i2", "i_siblings"] == 2 and f.loc["i2", "i_siblings_paid_share"] == pytest.approx(0.5)
    assert f.loc["i3", "i_siblings"] == 2 and f.loc["i3", "i_siblings_paid_share"] == pytest.approx(0.5)
    assert f.loc["i4", "i_siblings"] == 0 and np.isnan(f.loc["i4", "i_siblings_paid_share"])
    assert f.loc["i5", "i_siblings"] == 0
    assert f.loc["i4", "i_older_open"] == 2  # i2 and i3 are open and due earlier
    assert f.loc["i2", "i_older_open"] == 0 and f.loc["i5", "i_older_open"] == 0


def test_ids_are_coded_as_pandas_codes_them_whatever_their_storage():
    from features.clients import _factorize_text
    from ledger.contracts import TEXT

    rng = np.random.default_rng(5)
    pool = np.array(["INV1", "inv1", "é", "", "😀", "a b", "10", "9"], dtype=object)
    parts = []
    for n in (0, 40, 25):
        values = pool[rng.integers(0, len(pool), n)].astype(object)
        values[rng.random(n) < 0.2] = None
        parts.append(pd.Series(values, dtype=object))
    parts[1] = parts[1].astype(TEXT)  # ids as loaded: Arrow text, NaN where missing
    parts.append(pd.Series([np.nan, "é"], dtype=object))
    want_codes, want_values = pd.factorize(np.concatenate([p.to_numpy(dtype=object) for p in parts]))
    codes, values = _factorize_text(*parts)
    assert codes.dtype == want_codes.dtype and (want_codes == -1).sum() > 5
    np.testing.assert_array_equal(codes, want_codes)
    assert values.tolist() == want_values.tolist()
    mixed = pd.Series([7, "7", None], dtype=object)  # not all text: pandas' own codes
    np.testing.assert_array_equal(_factorize_text(mixed)[0], pd.factorize(mixed.to_numpy(dtype=object))[0])

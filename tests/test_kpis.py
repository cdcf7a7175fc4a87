"""KPIs and aging against values computed by hand from a small ledger.

The fixture, as of D = 2025-04-01 (start of day):

    id   client type         issue       due         amount  paid / payments
    I1   A      invoice      2025-01-10  2025-02-09  1000    paid 2025-02-05
    I2   B      invoice      2025-01-20  2025-02-19  2000    open; dispute opened 2025-03-15
    I3   A      invoice      2025-02-05  2025-03-07  1500    500 paid 2025-03-10 -> 1000 open
    I4   B      invoice      2025-02-20  2025-03-22  3000    paid 2025-04-05 (after D -> open at D)
    I5   A      invoice      2025-03-05  2025-04-04  2500    open
    I6   C      invoice      2025-03-15  2025-04-14  4000    open
    I7   C      invoice      2024-11-20  2024-12-20  1200    open
    CN1  A      credit_note  2025-03-20  2025-03-20   300    open (unapplied)
    I8   A      invoice      2025-04-01  2025-05-01  5000    issued on D -> not known at D

Days past due at D (February 2025 has 28 days):
    I2: Feb 19 -> Mar 1 = 10, + 31 (March) = 41   -> 31-60
    I3: Mar 7 -> Apr 1 = 25                       -> 0-30
    I4: Mar 22 -> Apr 1 = 10                      -> 0-30
    I5: Apr 4 is 3 days after D = -3             -> not_due
    I6: -13                                       -> not_due
    I7: Dec 20 -> Jan 1 = 12, + 31 + 28 + 31 = 102 -> 90+
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.kpis import (
    BUCKETS,
    TOTAL,
    build_aging,
    build_doubtful,
    build_open_items,
    evaluate_countback_dso,
    evaluate_kpis,
)
from ledger.contracts import Ledger

D = "2025-04-01"


def _invoices() -> pd.DataFrame:
    rows = [
        ("I1", "A", "invoice", "2025-01-10", "2025-02-09", 1000.0, "2025-02-05"),
        ("I2", "B", "invoice", "2025-01-20", "2025-02-19", 2000.0, None),
        ("I3", "A", "invoice", "2025-02-05", "2025-03-07", 1500.0, None),
        ("I4", "B", "invoice", "2025-02-20", "2025-03-22", 3000.0, "2025-04-05"),
        ("I5", "A", "invoice", "2025-03-05", "2025-04-04", 2500.0, None),
        ("I6", "C", "invoice", "2025-03-15", "2025-04-14", 4000.0, None),
        ("I7", "C", "invoice", "2024-11-20", "2024-12-20", 1200.0, None),
        ("CN1", "A", "credit_note", "2025-03-20", "2025-03-20", 300.0, None),
        ("I8", "A", "invoice", "2025-04-01", "2025-05-01", 5000.0, None),
    ]
    return pd.DataFrame(rows, columns=["invoice_id", "client_id", "doc_type", "issue_date", "due_date",
                                       "amount", "paid_date"])


def _payments() -> pd.DataFrame:
    return pd.DataFrame(
        [("P1", "I1", "2025-02-05", 1000.0), ("P2", "I3", "2025-03-10", 500.0), ("P3", "I4", "2025-04-05", 3000.0)],
        columns=["payment_id", "invoice_id", "paid_date", "amount"],
    )


def _actions(extra: list[tuple] | None = None) -> pd.DataFrame:
    rows = [("X1", "I2", "B", "2025-03-15", "dispute", None, "dispute")] + (extra or [])
    return pd.DataFrame(rows, columns=["action_id", "invoice_id", "client_id", "action_date", "step", "channel",
                                       "outcome"])


def make_ledger(extra_actions: list[tuple] | None = None) -> Ledger:
    return Ledger.from_frames(_invoices(), _payments(), actions=_actions(extra_actions))


def test_open_items_partial_payment_credit_note_and_known_at():
    items = build_open_items(make_ledger(), D).set_index("invoice_id")
    # I1 paid, I8 not yet issued at D.
    assert sorted(items.index) == ["CN1", "I2", "I3", "I4", "I5", "I6", "I7"]
    assert items.loc["I3", "outstanding"] == 1000.0          # 1500 - 500
    assert items.loc["I4", "outstanding"] == 3000.0          # its payment is after D
    assert items.loc["CN1", "signed_outstanding"] == -300.0
    assert items.loc["I2", "days_past_due"] == 41
    assert items.loc["I7", "days_past_due"] == 102
    assert items.loc["I5", "days_past_due"] == -3


def test_aging_per_client_and_total():
    aging = build_aging(make_ledger(), D)
    got = {(r.client_id, r.bucket): (r.amount, r.count) for r in aging.itertuples()}
    expected_nonzero = {
        ("A", "not_due"): (2500.0, 1), ("A", "0-30"): (1000.0, 1),
        ("B", "0-30"): (3000.0, 1), ("B", "31-60"): (2000.0, 1),
        ("C", "not_due"): (4000.0, 1), ("C", "90+"): (1200.0, 1),
        # totals: not_due 2500 + 4000; 0-30 1000 + 3000; 31-60 2000; 61-90 nothing; 90+ 1200
        (TOTAL, "not_due"): (6500.0, 2), (TOTAL, "0-30"): (4000.0, 2), (TOTAL, "31-60"): (2000.0, 1),
        (TOTAL, "90+"): (1200.0, 1),
    }
    for client in ["A", "B", "C", TOTAL]:
        for bucket in BUCKETS:
            assert got[(client, bucket)] == expected_nonzero.get((client, bucket), (0.0, 0)), (client, bucket)
    assert len(aging) == 4 * len(BUCKETS)
    assert list(aging["client_id"].iloc[-5:]) == [TOTAL] * 5


def test_aging_boundaries():
    # Due exactly on D: not due yet (0 days). Due D-30: 30 days -> 0-30; D-31 -> 31-60; D-91 -> 90+.
    d = pd.Timestamp(D)
    dues = {"a": d, "b": d - pd.Timedelta(days=30), "c": d - pd.Timedelta(days=31),
            "e": d - pd.Timedelta(days=90), "f": d - pd.Timedelta(days=91)}
    inv = pd.DataFrame({"invoice_id": list(dues), "client_id": "X", "issue_date": "2024-01-01",
                        "due_date": list(dues.values()), "amount": 1.0})
    aging = build_aging(Ledger.from_frames(inv), D)
    counts = aging[aging["client_id"] == TOTAL].set_index("bucket")["count"].to_dict()
    assert counts == {"not_due": 1, "0-30": 1, "31-60": 1, "61-90": 1, "90+": 1}


def test_countback_dso_worked_example():
    # Total receivables R = open invoices 13,700 - credit note 300 = 13,400.
    # Credit sales by month walking back from D:
    #   [Mar 1, Apr 1) 31 d: I5 2500 + I6 4000 - CN1 300 = 6200 < 13,400 -> 31 d, 7200 left
    #   [Feb 1, Mar 1) 28 d: I3 1500 + I4 3000 = 4500 < 7200  -> 28 d, 2700 left
    #   [Jan 1, Feb 1) 31 d: I1 1000 + I2 2000 = 3000 >= 2700 -> 2700 / 3000 * 31 = 27.9 d
    # DSO = 31 + 28 + 27.9 = 86.9
    res = evaluate_countback_dso(make_ledger(), D)
    assert res["dso"] == pytest.approx(86.9)
    assert res["complete"] is True and res["months"] == 3


def test_countback_dso_incomplete_history_is_flagged():
    # One invoice of 1000 issued 2025-03-20 and an 'other' debit of 500 (not a sale):
    # R = 1500, March sales 1000 < 1500 -> 31 days, then history runs out: DSO >= 31, incomplete.
    inv = pd.DataFrame({"invoice_id": ["a", "b"], "client_id": "X", "doc_type": ["invoice", "other"],
                        "issue_date": "2025-03-20", "due_date": "2025-04-19", "amount": [1000.0, 500.0]})
    res = evaluate_countback_dso(Ledger.from_frames(inv), D)
    assert res == {"dso": 31.0, "complete": False, "months": 1}


def test_kpis_hand_computed():
    k = evaluate_kpis(make_ledger(), D, period_days=90)
    assert k["as_of"] == D
    # Open balance: 2000 + 1000 + 3000 + 2500 + 4000 + 1200 - 300 = 13,400
    assert k["open_balance"] == pytest.approx(13400.0)
    assert k["open_invoices"] == 6
    # Current (not yet due): I5 2500 + I6 4000 = 6500; overdue 13,700 - 6500 = 7200
    assert k["current_receivables"] == pytest.approx(6500.0)
    assert k["overdue_amount"] == pytest.approx(7200.0)
    assert k["overdue_share"] == pytest.approx(7200 / 13700)
    # Period: D - 90 days = 2025-01-01 (31 + 28 + 31 = 90). Credit sales 3000 + 4500 + 6200 = 13,700.
    assert k["credit_sales"] == pytest.approx(13700.0)
    assert k["dso"] == pytest.approx(86.9)
    # Best possible DSO = 6500 / 13,700 * 90 = 42.700729...
    assert k["best_possible_dso"] == pytest.approx(6500 / 13700 * 90)
    assert k["best_possible_dso"] == pytest.approx(42.7007299, abs=1e-6)
    # Average days delinquent = 86.9 - 42.7007299 = 44.1992701
    assert k["average_days_delinquent"] == pytest.approx(44.1992701, abs=1e-6)
    # Beginning receivables on 2025-01-01: only I7 (1200) was issued, open.
    assert k["beginning_receivables"] == pytest.approx(1200.0)
    # CEI = (1200 + 13,700 - 13,400) / (1200 + 13,700 - 6500) * 100 = 1500 / 8400 * 100 = 17.857142...
    assert k["cei"] == pytest.approx(17.857142857, abs=1e-6)
    assert k["aging"]["not_due"] == {"amount": 6500.0, "count": 2}
    assert k["aging"]["61-90"] == {"amount": 0.0, "count": 0}
    # Doubtful: I7 (102 d > 90 -> 25 %) 1200 * 0.25 = 300; I2 (in dispute, 41 d -> 10 %) 2000 * 0.10 = 200.
    assert [r["invoice_id"] for r in k["doubtful"]] == ["I7", "I2"]
    assert k["doubtful"][0]["reasons"] == "over 90 days past due"
    assert k["doubtful"][1]["reasons"] == "in dispute"
    assert k["doubtful_amount"] == pytest.approx(3200.0)
    assert k["suggested_provision"] == pytest.approx(500.0)


def test_several_currencies_are_listed_and_said_to_be_added_as_they_are():
    led = make_ledger()
    base = evaluate_kpis(led, D)
    assert base["currencies"] == {"EUR": pytest.approx(13400.0)} and base["note"] is None
    led.invoices.loc[led.invoices["invoice_id"] == "I6", "currency"] = "USD"
    k = evaluate_kpis(led, D)
    assert k["currencies"] == {"EUR": pytest.approx(9400.0), "USD": pytest.approx(4000.0)}
    assert k["note"].startswith("The open items are in 2 currencies (EUR, USD)") and "no exchange rate" in k["note"]
    assert k["open_balance"] == base["open_balance"]  # added as they are, as the note says


def test_kpis_are_json_ready():
    import json

    json.dumps(evaluate_kpis(make_ledger(), D))


def test_doubtful_with_p_loss_and_custom_rates():
    led = make_ledger()
    # p_loss given for I7 only: 1200 * 0.6 = 720; I2 falls back to the table: 2000 * 0.10 = 200.
    p = pd.DataFrame({"invoice_id": ["I7", "I5"], "p_loss": [0.6, 0.9]})
    res = build_doubtful(led, D, p_loss=p).set_index("invoice_id")
    assert res.loc["I7", "provision"] == pytest.approx(720.0)
    assert res.loc["I7", "loss_source"] == "p_loss"
    assert res.loc["I2", "provision"] == pytest.approx(200.0)
    assert "I5" not in res.index          # not a candidate: a probability alone does not make one
    assert evaluate_kpis(led, D, p_loss=p)["suggested_provision"] == pytest.approx(920.0)
    # Custom table {30: 0.2, 100: 0.7}: I7 102 d > 100 -> 0.7 -> 840; I2 41 d > 30 -> 0.2 -> 400.
    res = build_doubtful(led, D, loss_rates={30: 0.2, 100: 0.7}).set_index("invoice_id")
    assert res.loc["I7", "provision"] == pytest.approx(840.0)
    assert res.loc["I2", "provision"] == pytest.approx(400.0)


def test_doubtful_rate_table_edges():
    # 181 d -> 50 %, 366 d -> 100 % and reason "over 1 year past due", 180 d -> 25 %.
    d = pd.Timestamp(D)
    inv = pd.DataFrame({"invoice_id": ["a", "b", "c"], "client_id": "X", "issue_date": "2023-01-01",
                        "due_date": [d - pd.Timedelta(days=n) for n in (180, 181, 366)], "amount": 100.0})
    res = build_doubtful(Ledger.from_frames(inv), D).set_index("invoice_id")
    assert res["loss_rate"].to_dict() == {"a": 0.25, "b": 0.50, "c": 1.00}
    assert res.loc["c", "reasons"] == "over 1 year past due"


def test_doubtful_agency_client_and_resolved_dispute():
    # Agency for C before D: I6 (not due) becomes a candidate at the smallest rate 10 %: 4000 * 0.1 = 400.
    # The dispute on I2 is resolved 2025-03-25: I2 is no longer a candidate.
    led = make_ledger([("X2", None, "C", "2025-03-01", "agency", "agency", None),
                       ("X3", "I2", "B", "2025-03-25", "call", "call", "resolved")])
    res = build_doubtful(led, D).set_index("invoice_id")
    assert sorted(res.index) == ["I6", "I7"]
    assert res.loc["I6", "provision"] == pytest.approx(400.0)
    assert res.loc["I7", "reasons"] == "over 90 days past due; client with collection agency"


def test_invalid_inputs_raise_clear_errors():
    led = make_ledger()
    with pytest.raises(ValueError, match=r"in \[0, 1\].*'I7'"):
        build_doubtful(led, D, p_loss=pd.DataFrame({"invoice_id": ["I7"], "p_loss": [1.5]}))
    with pytest.raises(ValueError, match="missing"):
        build_doubtful(led, D, p_loss=pd.DataFrame({"invoice_id": ["I7"]}))
    with pytest.raises(ValueError, match="probabilities"):
        build_doubtful(led, D, loss_rates={90: 2.0})
    with pytest.raises(ValueError, match="period_days"):
        evaluate_kpis(led, D, period_days=0)


def test_no_leakage_from_after_as_of():
    base = evaluate_kpis(make_ledger(), D)
    inv = _invoices()
    inv.loc[inv["invoice_id"] == "I2", "paid_date"] = "2025-04-02"
    inv = pd.concat([inv, pd.DataFrame([("I9", "B", "invoice", "2025-04-15", "2025-05-15", 900.0, None)],
                                       columns=inv.columns)])
    pay = pd.concat([_payments(), pd.DataFrame([("P4", "I2", "2025-04-02", 2000.0), ("P5", "I7", "2025-04-01", 1200.0)],
                                               columns=["payment_id", "invoice_id", "paid_date", "amount"])])
    act = _actions([("X9", None, "C", "2025-04-01", "agency", "agency", None),
                    ("X8", "I2", "B", "2025-04-03", "dispute_resolved", None, "resolved")])
    later = Ledger.from_frames(inv, pay, actions=act)
    assert evaluate_kpis(later, D) == base
    # ...and the same additions do show up once they are known (sanity: the test can fail).
    assert evaluate_kpis(later, "2025-04-04")["open_balance"] != evaluate_kpis(make_ledger(), "2025-04-04")["open_balance"]


def test_payment_on_as_of_is_not_yet_known():
    pay = pd.concat([_payments(), pd.DataFrame([("P6", "I5", D, 2500.0)],
                                               columns=["payment_id", "invoice_id", "paid_date", "amount"])])
    led = Ledger.from_frames(_invoices(), pay, actions=_actions())
    assert evaluate_kpis(led, D)["current_receivables"] == pytest.approx(6500.0)
    # On 2025-04-02 the payment of I5 is known; not due: I6 4000 + I8 (issued 04-01, now known) 5000.
    assert evaluate_kpis(led, "2025-04-02")["current_receivables"] == pytest.approx(9000.0)


def test_empty_ledger():
    inv = pd.DataFrame({"invoice_id": ["a"], "client_id": "X", "issue_date": "2025-06-01",
                        "due_date": "2025-07-01", "amount": 1.0})
    k = evaluate_kpis(Ledger.from_frames(inv), D)
    assert k["open_balance"] == 0 and k["dso"] == 0 and k["overdue_share"] is None and k["cei"] is None
    assert k["best_possible_dso"] is None and not math.isnan(k["suggested_provision"])


# --- CLI -----------------------------------------------------------------------------------------

def _store_with_fixture(home) -> None:
    from ledger.engine import open_store
    from ledger.staged_upsert import upsert_frame
    from ledger.workspace import load_settings

    led = make_ledger()
    engine = open_store(load_settings(home).store_url)
    try:
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", led.invoices)
            upsert_frame(conn, "payments", led.payments)
            upsert_frame(conn, "actions", led.actions)
    finally:
        engine.dispose()


def test_cli_kpis_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from encaisse.cli import app

    home = tmp_path / "ws"
    _store_with_fixture(home)
    res = CliRunner().invoke(app, ["kpis", "--as-of", D, "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    # Same hand-computed values as test_kpis_hand_computed.
    assert payload["open_balance"] == pytest.approx(13400.0)
    assert payload["dso"] == pytest.approx(86.9)
    assert payload["cei"] == pytest.approx(1500 / 8400 * 100)
    assert payload["aging"]["90+"] == {"amount": 1200.0, "count": 1}
    res = CliRunner().invoke(app, ["kpis", "--as-of", D, "--home", str(home)])
    assert res.exit_code == 0 and "DSO (countback)" in res.stdout and "86.9 d" in res.stdout


def test_cli_kpis_errors(tmp_path):
    from typer.testing import CliRunner

    from encaisse.cli import app

    for bad in ("not-a-date", "", "NaT", "01/02/2025", "2025-02-30", "0001-01-01", "2200-01-01", "2025-W14-2", "20250401"):
        res = CliRunner().invoke(app, ["kpis", "--as-of", bad, "--home", str(tmp_path / "a")])
        assert res.exit_code == 2 and "--as-of must be a date" in " ".join(res.output.split()), bad  # usage error
        assert res.exception is None or isinstance(res.exception, SystemExit), bad
    res = CliRunner().invoke(app, ["kpis", "--as-of", D, "--home", str(tmp_path / "b")])
    assert res.exit_code == 1 and "holds no invoices" in " ".join(res.output.split())


def test_a_workspace_that_cannot_be_created_or_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    import sys

    from encaisse.cli import run

    (tmp_path / "afile").write_text("x")
    for home in (tmp_path / "afile" / "ws", tmp_path / "afile"):
        monkeypatch.setattr(sys, "argv", ["encaisse", "kpis", "--as-of", D, "--home", str(home)])
        with pytest.raises(SystemExit) as stop:
            run()
        assert stop.value.code == 2, home
        text = " ".join(capsys.readouterr().err.split())
        assert "afile" in text and "Traceback" not in text, text


def test_only_errors_of_a_given_path_are_turned_into_one_line(monkeypatch, capsys):
    import errno

    import encaisse.cli as cli

    def raising(exc):
        def app():
            raise exc
        return app

    monkeypatch.setattr(cli, "app", raising(PermissionError(errno.EACCES, "Permission denied", "/srv/ws/ledger.db")))
    with pytest.raises(SystemExit) as stop:
        cli.run()
    assert stop.value.code == 2 and "/srv/ws/ledger.db: Permission denied" in " ".join(capsys.readouterr().err.split())
    for other in (OSError(errno.ETIMEDOUT, "Timed out trying to connect"), FileNotFoundError(errno.ENOENT, "gone")):
        monkeypatch.setattr(cli, "app", raising(other))  # a network error; a file the code itself names
        with pytest.raises(OSError):
            cli.run()


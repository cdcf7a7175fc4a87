"""The synthetic ledger: determinism, contracts, censoring, behaviour, and the committed sample."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from encaisse.cli import app
from ledger.contracts import ACTIONS, CLIENTS, COMPACT_TABLES, INVOICES, PAYMENTS, TABLES, TEXT, empty_frame
from ledger.synth import PROFILES, make_ledger, make_synthetic, write_ledger

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SAMPLE_ARGS = ["sample", "--clients", "300", "--years", "2", "--seed", "0", "--end-date", "2025-12-31"]
END = pd.Timestamp("2025-12-31")
FILES = ("invoices.csv", "payments.csv", "clients.csv", "actions.csv")


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(400, years=2, seed=3, end_date="2025-12-31")


@pytest.fixture(scope="module")
def invoices(synth):
    """Invoices (not credit notes) with the hidden profile and credit amount joined."""
    inv = synth.ledger.invoices
    inv = inv[inv["doc_type"] == "invoice"]
    return inv.merge(synth.truth[["invoice_id", "profile", "credit_amount", "cleared_date"]],
                     on="invoice_id", how="left", validate="one_to_one")


def _digests(folder: Path) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in FILES}


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    write_ledger(make_ledger(60, seed=7), tmp_path / "a")
    write_ledger(make_ledger(60, seed=7), tmp_path / "b")
    write_ledger(make_ledger(60, seed=8), tmp_path / "c")
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert all(a[f] != c[f] for f in FILES)


# --- contracts ---------------------------------------------------------------------------------


def test_columns_and_dtypes_follow_the_contracts(synth):
    ledger = synth.ledger
    for table, frame in ((INVOICES, ledger.invoices), (PAYMENTS, ledger.payments),
                         (CLIENTS, ledger.clients), (ACTIONS, ledger.actions)):
        assert list(frame.columns) == table.names, table.name
        canonical = empty_frame(table).dtypes
        for c in table.columns:  # text held compactly (Ledger.compact), the rest as the contract types it
            if c.kind == "str" and table.name in COMPACT_TABLES:
                want = TEXT if c.required and c.name not in table.repeated else object
            else:
                want = canonical[c.name]
            assert frame[c.name].dtype == want, (table.name, c.name, frame[c.name].dtype)
        assert frame[table.key].is_unique, table.name
        assert frame[table.required].notna().all().all(), table.name
        assert len(frame) > 0, table.name


def test_csv_files_pass_the_ingest_validation(tmp_path):
    from ledger.parsing import validate_frame

    write_ledger(make_ledger(80, seed=1), tmp_path)
    for name in TABLES:
        raw = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
        assert list(raw.columns) == TABLES[name].names
        good, rejects = validate_frame(name, raw)
        assert len(rejects) == 0, (name, rejects.head().to_dict("records"))
        assert len(good) == len(raw)


def test_invoice_rules(synth):
    inv = synth.ledger.invoices
    assert set(inv["doc_type"]) == {"invoice", "credit_note"}
    assert (inv["currency"] == "EUR").all()
    assert (inv["amount"] > 0).all()
    assert (inv["amount"] == inv["amount"].round(2)).all()
    assert (inv["due_date"] >= inv["issue_date"]).all()
    paid = inv["paid_date"].notna()
    assert (inv.loc[paid, "paid_date"] >= inv.loc[paid, "issue_date"]).all()
    assert inv["invoice_id"].str.fullmatch(r"(INV|CN)\d{6,}").all()
    assert synth.ledger.clients["client_id"].str.fullmatch(r"C\d{5,}").all()
    assert set(inv["client_id"]) <= set(synth.ledger.clients["client_id"])
    assert inv["issue_date"].is_monotonic_increasing
    # Ids follow issue order, like a real numbering.
    real = inv[inv["doc_type"] == "invoice"]
    assert (real["invoice_id"].str[3:].astype(int).to_numpy() == np.arange(1, len(real) + 1)).all()


def test_terms_stay_within_french_lme_limits(synth, invoices):
    days = (invoices["due_date"] - invoices["issue_date"]).dt.days
    assert set(invoices["terms"]) == {"30_net", "45_eom", "60_net"}
    net30, net60, eom = (invoices["terms"] == t for t in ("30_net", "60_net", "45_eom"))
    assert (days[net30] == 30).all() and (days[net60] == 60).all()
    expected = (invoices.loc[eom, "issue_date"] + pd.Timedelta(days=45)) + pd.offsets.MonthEnd(0)
    assert (invoices.loc[eom, "due_date"] == expected).all()
    assert days.max() <= 75  # 45 days end of month: at most 45 + 30
    clients = synth.ledger.clients
    public = invoices["client_id"].isin(clients.loc[clients["segment"] == "public sector", "client_id"])
    assert public.sum() > 0 and (invoices.loc[public, "terms"] == "30_net").all()


def test_clients_table(synth):
    clients = synth.ledger.clients
    assert set(clients["segment"]) == {"SME", "mid-market", "key account", "public sector"}
    assert set(clients["country"]) <= {"FR", "BE", "DE", "ES", "IT"}
    assert (clients["country"] == "FR").mean() > 0.6
    assert clients["collector"].nunique() >= 3
    assert (clients["credit_limit"] >= 1000).all()
    assert "profile" not in clients.columns
    assert set(synth.profiles["profile"]) == set(PROFILES)


def test_clients_have_realistic_contacts(synth):
    from ledger.rules import EMAIL

    clients = synth.ledger.clients
    email, phone = clients["email"].notna(), clients["phone"].notna()
    assert 0.7 < email.mean() < 0.9 and 0.75 < phone.mean() < 0.95
    assert (phone & ~email).any() and (~phone & ~email).any()  # some only a phone, some no contact at all
    assert clients.loc[email, "email"].map(lambda v: bool(EMAIL.match(v))).all()
    assert clients.loc[phone, "phone"].str.fullmatch(r"\+(33|32|49|34|39)( \d{1,2})+").all()
    assert set(clients["language"].dropna()) == {"fr", "en"} and clients["language"].isna().any()
    french = clients["country"] == "FR"
    assert (clients.loc[french, "language"].fillna("fr") == "fr").mean() > 0.9
    assert (clients.loc[~french & (clients["country"] != "BE"), "language"] == "en").mean() > 0.5
    assert 0 < clients["opt_out"].sum() < 0.1 * len(clients) and clients["opt_out"].notna().all()
    address = clients["postal_address"].dropna()
    assert len(address) > 0.85 * len(clients) and address.str.contains("\n").all()
    assert address.map(len).max() <= 255
    assert "é" in "".join(address) or "è" in "".join(address)


# --- censoring ---------------------------------------------------------------------------------


def test_nothing_after_the_end_date_and_open_invoices_remain(synth, invoices):
    ledger = synth.ledger
    assert ledger.invoices["issue_date"].max() <= END
    assert ledger.invoices["paid_date"].max() <= END
    assert ledger.payments["paid_date"].max() <= END
    assert ledger.actions["action_date"].max() <= END
    open_ = invoices["paid_date"].isna()
    assert open_.sum() > 0
    # Long-overdue invoices of defaulting clients stay open for good.
    old_open = open_ & (invoices["due_date"] < END - pd.Timedelta(days=120))
    assert (invoices.loc[old_open, "profile"] == "defaulting").sum() > 0
    # Censored, not lost: the truth holds clearing days after the end for some of them.
    assert (invoices.loc[open_, "cleared_date"] > END).sum() > 0
    assert (invoices.loc[~open_, "cleared_date"] == invoices.loc[~open_, "paid_date"]).all()


def test_known_at_hides_the_future(synth):
    cut = pd.Timestamp("2025-06-01")
    before = synth.ledger.known_at(cut)
    assert before.payments["paid_date"].max() < cut
    assert before.actions["action_date"].max() < cut
    # Invoices paid after the cut are open as of the cut.
    inv = synth.ledger.invoices
    later = inv[(inv["issue_date"] < cut) & (inv["paid_date"] >= cut)]
    assert len(later) > 0
    assert before.invoices.set_index("invoice_id").loc[later["invoice_id"], "paid_date"].isna().all()


# --- payments ----------------------------------------------------------------------------------


def test_payments_add_up_and_the_last_one_clears_the_invoice(synth, invoices):
    pay = synth.ledger.payments
    assert (pay["amount"] > 0).all()
    assert set(pay["invoice_id"]) <= set(invoices["invoice_id"])
    per = pay.groupby("invoice_id").agg(total=("amount", "sum"), n=("amount", "size"),
                                        last=("paid_date", "max"), first=("paid_date", "min"))
    inv = invoices.set_index("invoice_id").join(per)
    inv["total"] = inv["total"].fillna(0.0)
    paid = inv[inv["paid_date"].notna()]
    np.testing.assert_allclose(paid["total"] + paid["credit_amount"], paid["amount"], atol=0.005)
    with_payments = paid[paid["n"].notna()]
    assert (with_payments["last"] == with_payments["paid_date"]).all()
    assert (inv.loc[inv["n"].notna(), "first"] >= inv.loc[inv["n"].notna(), "issue_date"]).all()
    assert (per["n"] > 1).sum() > 20  # partial payments exist
    open_ = inv[inv["paid_date"].isna()]
    assert (open_["total"] < open_["amount"] - 0.005).all()
    assert (open_["total"] > 0).sum() > 0  # some open invoices are partly paid
    # Disputes settled by a full credit note clear without any payment.
    full_credit = paid[np.isclose(paid["credit_amount"], paid["amount"])]
    assert len(full_credit) > 0 and full_credit["n"].isna().all()
    assert (paid["credit_amount"] > 0).sum() > 0


def test_credit_notes_exist_and_follow_disputes(synth, invoices):
    inv = synth.ledger.invoices
    notes = inv[inv["doc_type"] == "credit_note"]
    assert len(notes) > 0
    assert (notes["due_date"] == notes["issue_date"]).all()
    assert notes["terms"].isna().all()
    assert 0.01 < invoices["disputed"].mean() < 0.08


# --- behaviour ---------------------------------------------------------------------------------


def _days_late(inv: pd.DataFrame) -> pd.Series:
    """Days after due, with open invoices counted up to the end date (a lower bound)."""
    cleared = inv["paid_date"].fillna(END)
    return (cleared - inv["due_date"]).dt.days


def test_late_profiles_pay_later_than_punctual_ones(invoices):
    late = _days_late(invoices).groupby(invoices["profile"]).mean()
    assert late["punctual"] < 5
    assert late["chronic_late"] > late["punctual"] + 20
    assert late["defaulting"] > late["punctual"] + 30
    assert late["slightly_late"] > late["punctual"] + 5
    open_old = invoices["paid_date"].isna() & (invoices["due_date"] < END - pd.Timedelta(days=90))
    share = open_old.groupby(invoices["profile"]).mean()
    assert share["defaulting"] > 10 * max(share["punctual"], 1e-3)


def test_deteriorating_clients_get_later_over_time(invoices):
    det = invoices[(invoices["profile"] == "deteriorating") & invoices["paid_date"].notna()]
    first_year = det["due_date"] < pd.Timestamp("2024-12-01")
    late = _days_late(det)
    assert late[~first_year].mean() > late[first_year].mean() + 5


def test_seasonality_of_issues_and_payment_runs(synth):
    inv = synth.ledger.invoices
    by_month = inv["issue_date"].dt.month.value_counts()
    assert by_month[8] < 0.75 * by_month.drop(8).mean()
    pay = synth.ledger.payments["paid_date"]
    assert (pay.dt.day_of_week >= 5).mean() < 0.01  # banks credit on business days
    issued_weekend = (inv["issue_date"].dt.day_of_week >= 5).mean()
    assert issued_weekend < 0.02
    month_end = inv["issue_date"] + pd.offsets.MonthEnd(0) - inv["issue_date"] <= pd.Timedelta(days=4)
    assert month_end.mean() > 0.2  # the last days of the month carry far more than 5/30 of issues
    # Payments per business day: slow in early August, catching up in September.
    days = pd.bdate_range("2024-01-01", END)
    early_august = (pay.dt.month == 8) & (pay.dt.day < 20)
    rate_aug = early_august.sum() / ((days.month == 8) & (days.day < 20)).sum()
    rate_sep = (pay.dt.month == 9).sum() / (days.month == 9).sum()
    assert rate_aug < 0.85 * rate_sep


# --- dunning -----------------------------------------------------------------------------------


def test_actions_only_while_the_invoice_is_open(synth):
    act = synth.ledger.actions.merge(
        synth.ledger.invoices[["invoice_id", "client_id", "issue_date", "due_date", "paid_date"]],
        on="invoice_id", how="left", suffixes=("", "_inv"), validate="many_to_one")
    assert act["issue_date"].notna().all()
    assert (act["client_id"] == act["client_id_inv"]).all()
    assert (act["action_date"] >= act["issue_date"]).all()
    paid = act["paid_date"].notna()
    assert (act.loc[paid, "action_date"] < act.loc[paid, "paid_date"]).all()
    assert set(act["step"]) >= {"preventive", "reminder_1", "call", "formal_notice", "agency", "promise",
                                "dispute", "payment_plan"}
    offset = (act["action_date"] - act["due_date"]).dt.days
    assert offset[act["step"] == "preventive"].between(-5, 0).all()
    assert offset[act["step"] == "reminder_1"].between(1, 8).all()
    assert offset[act["step"] == "formal_notice"].between(30, 40).all()
    assert offset[act["step"] == "agency"].min() >= 60
    promises = act[act["step"] == "promise"]
    assert (promises["promise_date"] > promises["action_date"]).all()
    assert (promises["promise_amount"] > 0).all()
    others = act[~act["step"].isin(["promise", "payment_plan"])]
    assert others["promise_date"].isna().all() and others["promise_amount"].isna().all()


def test_promises_are_kept_more_by_good_payers(synth):
    act = synth.ledger.actions
    promises = act[(act["step"] == "promise") & (act["promise_date"] < END - pd.Timedelta(days=10))]
    promises = promises.merge(synth.ledger.invoices[["invoice_id", "paid_date"]], on="invoice_id").merge(
        synth.profiles[["client_id", "profile"]], on="client_id")
    grace = promises["promise_date"] + pd.Timedelta(days=7)
    kept = promises["paid_date"].notna() & (promises["paid_date"] <= grace)
    rate = kept.groupby(promises["profile"]).mean()
    assert rate["slightly_late"] > 0.85
    assert rate["slightly_late"] > rate["in_difficulty"] + 0.35


def test_reminders_work_on_slightly_late_payers_not_on_defaulting_ones(synth, invoices):
    """After a first reminder, slightly-late payers mostly pay soon; defaulting ones mostly do not."""
    act = synth.ledger.actions
    rem = act[(act["step"] == "reminder_1") & (act["action_date"] < END - pd.Timedelta(days=60))]
    rem = rem.merge(invoices[["invoice_id", "paid_date", "profile"]], on="invoice_id")
    soon = rem["paid_date"].notna() & ((rem["paid_date"] - rem["action_date"]).dt.days <= 20)
    rate = soon.groupby(rem["profile"]).mean()
    assert rate["slightly_late"] > rate["defaulting"] + 0.25


# --- arguments and CLI -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"n_clients": 0}, "n_clients must be an integer >= 1. Got 0"),
    ({"n_clients": 5, "years": 0}, "years must be an integer"),
    ({"n_clients": 5, "seed": -1}, "seed must be"),
    ({"n_clients": 5, "end_date": "31/31/2025"}, "end_date must be a date"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ledger(**kwargs)


def test_cli_writes_the_files_and_a_json_line(tmp_path):
    result = CliRunner().invoke(app, ["sample", "--clients", "40", "--seed", "2", "--out", str(tmp_path),
                                      "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    inv = pd.read_csv(tmp_path / "invoices.csv")
    assert payload["clients"] == 40 == len(pd.read_csv(tmp_path / "clients.csv"))
    assert payload["invoices"] == (inv["doc_type"] == "invoice").sum()
    assert payload["credit_notes"] == (inv["doc_type"] == "credit_note").sum()
    assert payload["open_invoices"] == ((inv["doc_type"] == "invoice") & inv["paid_date"].isna()).sum()
    assert payload["payments"] == len(pd.read_csv(tmp_path / "payments.csv"))
    assert payload["actions"] == len(pd.read_csv(tmp_path / "actions.csv"))


def test_cli_refuses_a_bad_end_date(tmp_path):
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--end-date", "someday"])
    assert result.exit_code == 2
    assert "end_date must be a date" in result.output


def test_committed_sample_equals_a_fresh_regeneration(tmp_path):
    """data/sample/ is exactly what its README command writes: it never drifts from the generator."""
    result = CliRunner().invoke(app, [*SAMPLE_ARGS, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _digests(tmp_path) == _digests(SAMPLE)
    readme = (SAMPLE / "README.md").read_text()
    assert "encaisse " + " ".join(SAMPLE_ARGS) + " --out data/sample" in readme
    for name in FILES:  # the row counts the README states
        rows = len(pd.read_csv(SAMPLE / name, dtype=str))  # records, not lines: addresses span lines
        assert f"| `{name}` | {rows:,} |" in readme, name

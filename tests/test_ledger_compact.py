"""Compact text columns (Arrow-backed ids, shared strings) hold the same ledger as Python strings do."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from features.invoices import build_features
from features.kpis import build_aging, build_open_disputes, evaluate_countback_dso
from ledger.contracts import COMPACT_TABLES, INVOICES, TABLES, TEXT, Ledger, compact_frame
from ledger.engine import open_store
from ledger.hashing import row_hashes
from ledger.reader import load_ledger
from ledger.staged_upsert import upsert_frame
from ledger.synth import make_ledger, write_ledger

AS_OF = "2025-06-02"


@pytest.fixture(scope="module")
def compact():
    return make_ledger(60, seed=5)


@pytest.fixture(scope="module")
def plain(compact):
    """The same ledger with every text column as Python strings, None where missing."""
    return Ledger.from_frames(compact.invoices, compact.payments, compact.clients, compact.actions)


def _plain_values(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with category and Arrow text columns as objects, None where missing."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, (pd.CategoricalDtype, pd.StringDtype)):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def test_make_ledger_holds_ids_as_arrow_text_and_shares_the_other_strings(compact, plain):
    for name in COMPACT_TABLES:
        table, frame = TABLES[name], getattr(compact, name)
        for c in table.columns:
            if c.kind == "str":
                want = TEXT if c.required and c.name not in table.repeated else object
                assert frame[c.name].dtype == want, (name, c.name)
    assert plain.invoices["invoice_id"].dtype == object
    assert compact.clients["client_id"].dtype == object  # clients are left as they are


def test_loaded_text_shares_one_string_per_value_and_keeps_none():
    # Strings made one per cell, as a database driver returns them.
    cells = ["".join(["dis", "pute"]) for _ in range(3)] + [None, float("nan")]
    df = pd.DataFrame({"invoice_id": pd.Series([str(i) for i in range(5)], dtype=object), "client_id": ["c"] * 5,
                       "dunning_block": pd.Series(cells, dtype=object)})
    out = compact_frame(df, INVOICES)
    block = out["dunning_block"].tolist()
    assert block == ["dispute"] * 3 + [None, None]
    assert block[0] is block[1] is block[2]
    assert out["invoice_id"].dtype == TEXT and df["invoice_id"].dtype == object  # df is not changed


def test_compact_frames_hold_the_same_values(compact, plain):
    for name in TABLES:
        a, b = getattr(compact, name), getattr(plain, name)
        pd.testing.assert_frame_equal(_plain_values(a), b, check_dtype=False)
        assert a.isna().equals(b.isna()), name


def test_compact_is_idempotent_and_shares_the_other_columns(compact):
    again = compact.compact()
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(again, name), getattr(compact, name))
    assert np.shares_memory(again.invoices["amount"].to_numpy(), compact.invoices["amount"].to_numpy())


def test_columns_that_are_not_all_text_are_left_as_they_are():
    df = pd.DataFrame({"invoice_id": [1, 2], "client_id": ["a", "b"], "terms": [30, None]}, dtype=object)
    out = compact_frame(df, INVOICES)
    assert out["invoice_id"].dtype == object and out["invoice_id"].tolist() == [1, 2]
    assert out["terms"].tolist() == [30, None]
    assert out["client_id"].dtype == TEXT


def test_known_at_keeps_the_compact_dtypes(compact):
    known = compact.known_at(AS_OF)
    for name in TABLES:
        assert getattr(known, name).dtypes.equals(getattr(compact, name).dtypes), name


def test_features_and_kpis_are_the_same_on_a_compact_ledger(compact, plain):
    a, b = build_features(compact, AS_OF), build_features(plain, AS_OF)
    pd.testing.assert_frame_equal(_plain_values(a), _plain_values(b), check_dtype=False)
    assert a.drop(columns=["invoice_id", "client_id", "currency"]).dtypes.equals(
        b.drop(columns=["invoice_id", "client_id", "currency"]).dtypes)
    pd.testing.assert_frame_equal(_plain_values(build_aging(compact, AS_OF)),
                                  _plain_values(build_aging(plain, AS_OF)), check_dtype=False)
    assert evaluate_countback_dso(compact, AS_OF) == evaluate_countback_dso(plain, AS_OF)
    pd.testing.assert_frame_equal(_plain_values(build_open_disputes(compact.actions, AS_OF)),
                                  _plain_values(build_open_disputes(plain.actions, AS_OF)), check_dtype=False)


def test_csv_bytes_and_row_hashes_are_the_same(compact, plain, tmp_path):
    write_ledger(compact, tmp_path / "a")
    write_ledger(plain, tmp_path / "b")
    for name in TABLES:
        digest = [hashlib.sha256((tmp_path / d / f"{name}.csv").read_bytes()).hexdigest() for d in "ab"]
        assert digest[0] == digest[1], name
        assert row_hashes(TABLES[name], getattr(compact, name)).equals(row_hashes(TABLES[name], getattr(plain, name)))


def test_store_round_trip_loads_compact_frames(compact, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.begin() as conn:
        for name in ("clients", "invoices", "payments", "actions"):
            assert upsert_frame(conn, name, getattr(compact, name))[0] == len(getattr(compact, name))
    with engine.begin() as conn:  # the same frames again: nothing changes
        assert upsert_frame(conn, "actions", compact.actions) == (0, 0, len(compact.actions))
    loaded = load_ledger(engine)
    engine.dispose()
    for name in TABLES:
        want = getattr(compact, name).sort_values(TABLES[name].key, ignore_index=True)
        got = getattr(loaded, name)
        assert got.dtypes.astype(str).equals(want.dtypes.astype(str)), name
        pd.testing.assert_frame_equal(_plain_values(got), _plain_values(want), check_dtype=False)

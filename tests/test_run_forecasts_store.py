"""save_run_forecast's bulk insert stores the rows a Core insert of each row stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.engine import open_store
from ledger.run_forecasts import QUANTILE_DAY_COLUMNS, load_run_forecast, save_run_forecast
from ledger.schema import run_invoice_forecasts
from ledger.scores_store import save_scores


def _run(engine) -> str:
    inv = pd.DataFrame({"invoice_id": ["I1"], "client_id": ["C1"], "amount": [1.0]})
    return save_scores(engine, inv, pd.DataFrame({"client_id": ["C1"]}), as_of="2025-12-31", model_version="1")


def test_invoice_rows_are_stored_as_a_row_by_row_insert_stores_them(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    n = 50
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 400, (n, len(QUANTILE_DAY_COLUMNS)))
    q[3, :] = np.inf  # past the horizon: stored as missing
    q[5, 1] = np.nan
    invoices = pd.DataFrame(q, columns=QUANTILE_DAY_COLUMNS)
    invoices.insert(0, "invoice_id", [f"INV-é{i}" for i in range(n)])
    invoices.insert(1, "rank", pd.array([None if i % 7 == 0 else i + 1 for i in range(n)], dtype="Int64"))
    periods = pd.DataFrame({"period_start": pd.date_range("2026-01-05", periods=3, freq="7D"),
                            "expected_amount": [1.0, 2.0, 3.0], "low": [0.5, 1.0, 2.0], "high": [2.0, 3.0, 4.0]})
    bulk, by_row = _run(engine), _run(engine)
    save_run_forecast(engine, bulk, periods, invoices)
    with engine.begin() as conn:  # the reference: one Core insert of a dict per row
        conn.execute(run_invoice_forecasts.insert(), [
            {"run_id": by_row, "invoice_id": r.invoice_id, "rank": None if pd.isna(r.rank) else int(r.rank),
             **{c: (float(getattr(r, c)) if np.isfinite(getattr(r, c)) else None) for c in QUANTILE_DAY_COLUMNS}}
            for r in invoices.itertuples(index=False)])
    cols = ", ".join(["invoice_id", "rank", *QUANTILE_DAY_COLUMNS])
    with engine.connect() as conn:
        got, want = ([tuple(row) for row in conn.execute(
            sa.text(f"SELECT {cols}, typeof(rank) FROM run_invoice_forecasts WHERE run_id = :r ORDER BY rowid"), {"r": r})]
            for r in (bulk, by_row))
    assert len(got) == n and got == want
    back = load_run_forecast(engine, bulk).invoices.set_index("invoice_id")
    assert back["rank"].isna().sum() == 8 and back.loc["INV-é3", QUANTILE_DAY_COLUMNS].isna().all()
    engine.dispose()

"""Compiled trees (``models.compiled``): LightGBM's numbers exactly, a cache per model, and scoring unchanged by them.

Also the overlapped steps of scoring: the reasons computed beside the predictions give what the
sequential path gives.
"""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import models.scorer as scorer_module
from ledger.synth import make_ledger
from models import compiled
from models.compiled import compile_booster
from models.scorer import EncaisseModel

pytest.importorskip("lleaves")


def _booster(n_estimators: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 5_000
    a = rng.normal(size=n)
    a[rng.random(n) < 0.15] = np.nan  # missing values take the trees' default branches
    b = rng.integers(0, 40, n).astype(float)
    c = pd.Categorical(rng.choice(list("abcdef"), n))
    y = (np.nan_to_num(a) + b / 20 + (c == "c") + rng.normal(size=n) > 1.2).astype(int)
    X = pd.DataFrame({"a": a, "b": b, "c": c})
    booster = lgb.LGBMClassifier(n_estimators=n_estimators, num_leaves=15, verbose=-1, random_state=seed).fit(X, y).booster_
    M = np.column_stack([a, b, np.asarray(c.codes, dtype=float)])
    M[::97, 2] = np.nan  # an unknown category
    M[::89, 2] = 17.0  # a category never seen
    return booster, M


def test_compiled_predictions_are_lightgbm_s_bit_for_bit_and_cached_per_model(tmp_path):
    booster, M = _booster(60)
    first = compile_booster(booster, tmp_path)
    assert first is not None
    files = sorted(tmp_path.glob("*.o"))
    assert len(files) == 1
    expected = booster.predict(M)
    assert np.array_equal(first.compiled.predict(np.ascontiguousarray(M), n_jobs=1), expected)
    assert np.array_equal(first.predict(M), expected) and first.verified is True

    # Loaded from the cache: the file is not written again, the numbers are the same.
    written = files[0].stat().st_mtime_ns
    again = compile_booster(booster, tmp_path)
    assert files[0].stat().st_mtime_ns == written
    assert np.array_equal(again.predict(M), expected)

    # Another model (more trees, other data) has its own compiled code, not the first one's.
    other, M2 = _booster(80, seed=1)
    third = compile_booster(other, tmp_path)
    assert len(list(tmp_path.glob("*.o"))) == 2
    assert np.array_equal(third.predict(M2), other.predict(M2))
    assert not np.array_equal(third.predict(M2), booster.predict(M2))


def test_a_compiled_model_that_differs_from_lightgbm_is_not_used(tmp_path, monkeypatch):
    booster, M = _booster(30)
    compiled_booster = compile_booster(booster, tmp_path)
    exact = compiled_booster.compiled.predict
    monkeypatch.setattr(compiled_booster.compiled, "predict", lambda data, n_jobs=None: exact(data, n_jobs) + 1e-15)
    assert np.array_equal(compiled_booster.predict(M), booster.predict(M))
    assert compiled_booster.verified is False
    assert np.array_equal(compiled_booster.predict(M[:10]), booster.predict(M[:10]))


def test_compiled_trees_can_be_switched_off(tmp_path, monkeypatch):
    booster, _ = _booster(10)
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    assert compile_booster(booster, tmp_path) is None
    assert not list(tmp_path.glob("*.o"))


@pytest.fixture(scope="module")
def scoring_case():
    ledger = make_ledger(40, seed=5, end_date="2025-07-31")
    model = EncaisseModel(max_snapshots=16, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                          risk_params={"n_estimators": 40}).fit(ledger, "2025-06-01")
    return ledger, model


def _mixture(ledger, mixture: str) -> EncaisseModel:
    return EncaisseModel(max_snapshots=16, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                         risk_params={"n_estimators": 40},
                         payment_options={"calibration_slice": "cross_fit", "mixture": mixture},
                         ).fit(ledger, "2025-06-01")


@pytest.fixture(scope="module")
def mixture_case(scoring_case):
    return scoring_case[0], _mixture(scoring_case[0], "model_and_siblings")


@pytest.fixture(scope="module")
def siblings_case(scoring_case):
    return scoring_case[0], _mixture(scoring_case[0], "siblings")


@pytest.mark.parametrize("case", ["scoring_case", "mixture_case", "siblings_case"])
def test_scores_with_compiled_trees_equal_lightgbm_s(case, request, tmp_path):
    ledger, fitted = request.getfixturevalue(case)
    model = pickle.loads(pickle.dumps(fitted))
    before, (days0, cdf0) = model.score(ledger, "2025-06-15", return_cdf=True)
    assert model.use_compiled_trees(tmp_path)
    # The payment-date mixture predicts with the cross-fit siblings too: each has its compiled trees.
    parts = (model.payment_model_, *model.payment_model_.siblings_, model.late_model_, model.very_late_model_)
    assert len(parts) == {"scoring_case": 3, "mixture_case": 5, "siblings_case": 4}[case]
    assert all("compiled_" in m.__dict__ for m in parts)
    after, (days1, cdf1) = model.score(ledger, "2025-06-15", return_cdf=True)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    assert np.array_equal(days1, days0) and np.array_equal(cdf1, cdf0)
    assert all(m.__dict__["compiled_"].verified for m in parts)
    # The native code stays with the process: a pickled model holds none (and the live one keeps it).
    copy = pickle.loads(pickle.dumps(model))
    assert not any("compiled_" in m.__dict__ for m in (copy.payment_model_, *copy.payment_model_.siblings_,
                                                       copy.late_model_, copy.very_late_model_))
    assert all("compiled_" in m.__dict__ for m in parts)


def test_reasons_computed_beside_the_predictions_equal_the_sequential_ones(scoring_case, monkeypatch):
    ledger, model = scoring_case
    monkeypatch.setattr(scorer_module, "OVERLAP_MIN_ROWS", 10**9)
    sequential, (_, cdf0) = model.score(ledger, "2025-06-15", return_cdf=True)
    monkeypatch.setattr(scorer_module, "OVERLAP_MIN_ROWS", 1)
    beside, (_, cdf1) = model.score(ledger, "2025-06-15", return_cdf=True)
    assert len(sequential) > 50 and sequential["reasons"].str.len().gt(0).any()
    pd.testing.assert_frame_equal(beside, sequential, check_exact=True)
    assert np.array_equal(cdf1, cdf0)


def test_run_score_stores_what_the_sequential_steps_compute(scoring_case, monkeypatch, _isolated_home):
    """run_score loads the champion beside the ledger and forecasts beside the planning and storing: the
    stored run and its forecast are those of the steps run one after the other, and the compiled trees are cached."""
    import models.registry
    import pipelines.score
    from ledger.contracts import TABLES
    from ledger.engine import open_store
    from ledger.reader import load_store_ledger
    from ledger.run_forecasts import load_run_forecast
    from ledger.scores_store import load_run
    from ledger.staged_upsert import upsert_frame
    from ledger.workspace import Settings
    from models.monitoring import build_run_forecast
    from models.registry import ChampionModel
    from models.scoring import build_scoring

    ledger, fitted = scoring_case
    model = pickle.loads(pickle.dumps(fitted))

    champion = ChampionModel(model, "3", "run-xyz", "2025-06-01")
    monkeypatch.setattr(models.registry, "load_champion", lambda settings: champion)
    url = f"sqlite:///{_isolated_home / 'ledger.db'}"
    engine = open_store(url)
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(ledger, name))
    settings = Settings()
    result = pipelines.score.run_score(settings, "2025-06-15")
    assert list((settings.artifact_dir / "compiled").glob("*.o"))  # the three boosters, compiled once

    plain = pickle.loads(pickle.dumps(fitted))  # LightGBM's own predictions, step after step
    stored_ledger = load_store_ledger(url)
    day = pd.Timestamp("2025-06-15")
    scoring = build_scoring(plain, stored_ledger, day)
    pd.testing.assert_frame_equal(result.worklist, scoring.worklist, check_exact=True)
    fc = build_run_forecast(plain, stored_ledger, day, scoring.worklist, scored=(scoring.scores, scoring.payment_cdf))
    stored = load_run_forecast(engine, result.run_id)
    run = load_run(engine, {"run_id": result.run_id})
    engine.dispose()
    assert len(run.invoices) == len(scoring.worklist) > 0 and len(stored.periods) > 0
    pd.testing.assert_frame_equal(stored.periods.reset_index(drop=True),
                                  fc.periods[list(stored.periods.columns)].reset_index(drop=True),
                                  check_exact=True, check_dtype=False)
    got = stored.invoices.sort_values("invoice_id").reset_index(drop=True)
    want = fc.invoices.sort_values("invoice_id").reset_index(drop=True)[list(got.columns)]
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)

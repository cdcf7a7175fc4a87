"""Backtest the collection forecast on the SAP slice, choose the copula rho, and time the sampler.

Usage (from the repository root)::

    # rho chosen as of 2018-07-01 (outcomes to 2018-10-01), then the test as of 2018-10-01 (to 2019-01-01)
    .venv/bin/python bench/bench_forecast.py backtest --cache /tmp/encaisse-bench
    # the bands' rho, portfolio factor and sigma chosen on six monthly cutoffs, checked on two later ones
    .venv/bin/python bench/bench_forecast.py rolling --cache /tmp/encaisse-bench
    # 100k open invoices x 1000 samples: time and peak RSS (a fresh process)
    .venv/bin/python bench/bench_forecast.py speed --invoices 100000 --samples 1000

The SAP extract is ingested once with ``data/mappings/sap_ar.yaml`` into a SQLite store in ``--cache``;
``backtest`` fits the default ``EncaisseModel()`` as of each date and caches it there too (pass
``--model-select`` / ``--model-test`` to reuse fitted joblib files); ``rolling`` fits the training
configuration (``--config``), cached under a hash of its model parameters. Nothing here is tuned on the test
date: rho is picked on the selection date only, by the lowest mean 80% interval score of the weekly
totals (width + 10 x how far the actual falls outside), relative to the mean weekly actual.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.openmp import use_passive_waiting  # noqa: E402

use_passive_waiting()
SAP = REPO.parent / "shared" / "data" / "sap_ar" / "sap_ar_as_of_2019-01-01.csv.gz"
GRID = [(rho, sigma) for rho in (0.3, 0.8) for sigma in (0.0, 0.1, 0.2, 0.3, 0.4)]
"""(client_correlation, period_noise) pairs tried on the selection date."""


def load_sap_ledger(cache: Path):
    """The SAP slice as a Ledger, through the store (ingested once into ``cache``)."""
    from ledger.ingest import ingest_file
    from ledger.engine import open_store
    from ledger.reader import load_ledger

    cache.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{cache / 'sap.db'}"
    engine = open_store(url)
    try:
        done = cache / "sap.ingested"
        if not done.exists():
            ingest_file(engine, SAP, REPO / "data" / "mappings" / "sap_ar.yaml", rejects_dir=cache)
            done.write_text("ok")
        return load_ledger(engine)
    finally:
        engine.dispose()


def fitted_model(ledger, as_of: str, cache: Path, path: str | None, params: dict | None = None, name: str = "model"):
    """An ``EncaisseModel(**params)`` fitted as of ``as_of``: loaded from ``path`` or from ``cache`` when there,
    fitted and cached otherwise. The cache is keyed by ``name`` and the day, not by the code: clear it after
    changing the models."""
    import joblib

    from models.scorer import EncaisseModel

    p = Path(path) if path else cache / f"{name}_{as_of}.joblib"
    if p.exists():
        return joblib.load(p)
    t = time.perf_counter()
    m = EncaisseModel(**(params or {})).fit(ledger, as_of)
    print(f"fitted as of {as_of} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    joblib.dump(m, p)
    return m


def interval_score(res: dict, alpha: float = 0.2) -> float:
    """Mean interval score of the weekly bands, relative to the mean weekly actual."""
    rows = pd.DataFrame(res["periods"])
    a, lo, hi = rows["actual"], rows["low"], rows["high"]
    s = (hi - lo) + (2 / alpha) * (lo - a).clip(lower=0) + (2 / alpha) * (a - hi).clip(lower=0)
    return float(s.mean() / a.mean())


def backtest(args) -> None:
    from features.calendar import invoice_countries
    from models.forecast import (
        build_baseline_schedules,
        build_collection_forecast,
        evaluate_collection_forecast,
    )

    cache = Path(args.cache)
    ledger = load_sap_ledger(cache)

    def run(as_of, end, model, grid):
        s, (days, cdf) = model.score(ledger.known_at(as_of), as_of, return_cdf=True, n_reasons=0)
        s["country"] = invoice_countries(ledger, s["invoice_id"])
        out = {}
        for rho, sigma in grid:
            f = build_collection_forecast(s, days, cdf, model.payment_model_, as_of, horizon=13,
                                          n_samples=args.samples, client_correlation=rho, period_noise=sigma,
                                          seed=0)
            out[rho, sigma] = (f, evaluate_collection_forecast(f, ledger, as_of, end))
        base = {k: evaluate_collection_forecast(b, ledger, as_of, end)
                for k, b in build_baseline_schedules(s, ledger, as_of, horizon=13).items()}
        return s, out, base

    sel_of, sel_end = args.select_as_of, args.select_end
    m0 = fitted_model(ledger, sel_of, cache, args.model_select)
    s0, runs0, base0 = run(sel_of, sel_end, m0, GRID)
    print(f"## rho selection as of {sel_of} (outcomes to {sel_end}), {len(s0)} open invoices\n")
    print("| rho | sigma | weekly WAPE | P10-P90 coverage | interval score / mean week |\n"
          "| ---: | ---: | ---: | ---: | ---: |")
    scores = {}
    for key, (_, r) in runs0.items():
        scores[key] = interval_score(r)
        print(f"| {key[0]} | {key[1]} | {r['weekly_wape']:.3f} | {r['weekly_band_coverage']:.2f} | {scores[key]:.3f} |")
    rho = min(scores, key=scores.get)
    print(f"\nchosen (rho, sigma) = {rho}; baselines there: " + ", ".join(
        f"{k} WAPE {v['weekly_wape']:.3f}" for k, v in base0.items()))

    test_of, test_end = args.test_as_of, args.test_end
    m1 = fitted_model(ledger, test_of, cache, args.model_test)
    s1, runs1, base1 = run(test_of, test_end, m1, [rho])
    f, r = runs1[rho]
    print(f"\n## test as of {test_of} (outcomes to {test_end}), {len(s1)} open invoices, "
          f"{s1['amount'].sum():,.0f} EUR open, rho = {rho}\n")
    print("| forecast | weekly WAPE | P10-P90 coverage |\n| --- | ---: | ---: |")
    print(f"| model | {r['weekly_wape']:.3f} | {r['weekly_band_coverage']:.2f} |")
    for k, v in base1.items():
        print(f"| {k} | {v['weekly_wape']:.3f} | - |")
    rows = pd.DataFrame(r["periods"])
    rows["due_date"] = [p["expected"] for p in base1["due_date"]["periods"]]
    rows["client_median_delay"] = [p["expected"] for p in base1["client_median_delay"]["periods"]]
    rows["in_band"] = (rows["low"] <= rows["actual"]) & (rows["actual"] <= rows["high"])
    print("\n" + rows.round(0).to_string(index=False))
    better = min(v["weekly_wape"] for v in base1.values())
    print(json.dumps({"rho": rho, "model_wape": r["weekly_wape"], "best_baseline_wape": better,
                      "ratio": r["weekly_wape"] / better, "coverage": r["weekly_band_coverage"]}))


ROLLING_GRID = [(rho, rho_all, sigma) for rho in (0.3, 0.8) for rho_all in (0.0, 0.05, 0.1, 0.15)
                for sigma in (0.0, 0.1, 0.2, 0.3, 0.4)]
"""(client_correlation, portfolio_correlation, period_noise) triples tried by ``rolling``."""


def scored_cutoffs(args, dates):
    """For each day in ``dates``: the configuration's model fitted as of it (cached in ``args.cache``
    under ``rolling_{tag}``), what was known then, and the model's scores of the invoices open then with
    their ``open_amount`` and ``country`` (as ``models.collection.build_forecast`` gives them) and CDFs.

    Returns the SAP ledger, the cache tag and a generator of ``(as_of, model, scores, days, cdf)``.
    """
    import hashlib

    from features.calendar import invoice_countries
    from models.forecast import build_open_amounts
    from pipelines.config import load_config

    cache = Path(args.cache)
    ledger = load_sap_ledger(cache)
    params = load_config(args.config).model.estimator_params()
    digest = hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:12]
    tag = f"{args.tag or (Path(args.config).stem if args.config else 'default')}_{digest}"

    def each():
        for as_of in dates:
            model = fitted_model(ledger, as_of, cache, None, params, f"rolling_{tag}")
            known = ledger.known_at(as_of)
            s, (days, cdf) = model.score(known, as_of, return_cdf=True, n_reasons=0)
            s["open_amount"] = build_open_amounts(s, known, as_of).to_numpy()
            s["country"] = invoice_countries(known, s["invoice_id"])
            yield as_of, model, s, days, cdf

    return ledger, tag, each()


def rolling(args) -> None:
    """Choose the bands' three parameters on several cutoffs, then check them on later ones.

    Each cutoff's model is fitted with the training configuration (``--config``, the default one
    when omitted) on what was known then, as ``encaisse backtest`` does, and scores the invoices open
    then once; every parameter triple then draws the weekly bands from those same distributions (the
    expected amounts, hence the WAPE, do not depend on them). The chosen triple has the lowest mean
    interval score over the selection cutoffs among those whose band covers between 0.75 and 0.90 of
    the weeks at every one of them (the lowest mean of all when none does). The later cutoffs are
    then shown for every triple, and a last table ranks the triples over every cutoff, each counted
    once whatever its number of observed weeks. The per-cutoff rows add the daily forecast over 91 days
    (the defaults' bands).
    """
    from bench.overdue_analysis import markdown
    from models.forecast import build_collection_forecast, evaluate_collection_forecast

    cut = {"select": args.select.split(","), "check": [c for c in args.check.split(",") if c]}
    res = {}
    role_of = {d: role for role, dates in cut.items() for d in dates}
    ledger, tag, cutoffs = scored_cutoffs(args, list(role_of))
    for as_of, model, s, days, cdf in cutoffs:
        role = role_of[as_of]
        daily = evaluate_collection_forecast(
            build_collection_forecast(s, days, cdf, model.payment_model_, as_of, horizon=91, freq="D",
                                      n_samples=args.samples, seed=0), ledger, as_of, args.end, freq="D")
        res[role, as_of, "daily"] = (daily["daily_wape"], daily["daily_band_coverage"])
        for key in ROLLING_GRID:
            f = build_collection_forecast(s, days, cdf, model.payment_model_, as_of, horizon=13,
                                          n_samples=args.samples, client_correlation=key[0],
                                          portfolio_correlation=key[1], period_noise=key[2], seed=0)
            r = evaluate_collection_forecast(f, ledger, as_of, args.end)
            res[role, as_of, key] = (interval_score(r), r["weekly_band_coverage"], r["weekly_wape"], r["n_periods"])

    def table(*roles: str) -> pd.DataFrame:
        rows = []
        for key in ROLLING_GRID:
            v = np.array([res[role, d, key] for role in roles for d in cut[role]], dtype=float)
            rows.append({"rho": key[0], "portfolio": key[1], "sigma": key[2], "interval score": v[:, 0].mean(),
                         "worst interval score": v[:, 0].max(), "coverage": v[:, 1].mean(),
                         "lowest coverage": v[:, 1].min(), "highest coverage": v[:, 1].max(),
                         "weekly WAPE": v[:, 2].mean()})
        return pd.DataFrame(rows)

    sel = table("select")
    ok = sel[(sel["lowest coverage"] >= 0.75) & (sel["highest coverage"] <= 0.90)]
    best = (ok if len(ok) else sel).sort_values("interval score").iloc[0]
    print(f"## Selection on {', '.join(cut['select'])} (outcomes to {args.end}), {tag}\n")
    print(markdown(sel.sort_values("interval score"), 3))
    key = (float(best["rho"]), float(best["portfolio"]), float(best["sigma"]))
    print(f"\nchosen (rho, portfolio, sigma) = {key}" + ("" if len(ok) else " (no triple kept every cutoff in 0.75-0.90)"))
    if cut["check"]:
        chk = table("check")
        print(f"\n## The same triples on the later cutoffs {', '.join(cut['check'])}, in the selection's order\n")
        order = sel.sort_values("interval score").index
        print(markdown(chk.loc[order], 3))
        every = table("select", "check")
        print("\n## Every cutoff, each counted once, by mean interval score\n")
        print(markdown(every.sort_values("interval score"), 3))
    for role in cut:
        if not cut[role]:
            continue
        print(f"\n## Per cutoff ({role}), chosen triple against the defaults in models/forecast.py\n")
        print("| cutoff | weeks | interval score | band coverage | defaults' interval score | defaults' band coverage "
              "| weekly WAPE | daily WAPE (91 days) | daily band coverage |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        from models.forecast import DEFAULT_CLIENT_CORRELATION, DEFAULT_PERIOD_NOISE, DEFAULT_PORTFOLIO_CORRELATION
        dflt = (DEFAULT_CLIENT_CORRELATION, DEFAULT_PORTFOLIO_CORRELATION, DEFAULT_PERIOD_NOISE)
        for d in cut[role]:
            a, b, (dw, db) = res[role, d, key], res[role, d, dflt], res[role, d, "daily"]
            print(f"| {d} | {a[3]} | {a[0]:.3f} | {a[1]:.3f} | {b[0]:.3f} | {b[1]:.3f} | {a[2]:.3f} | {dw:.3f} | {db:.3f} |")


def calendar(args) -> None:
    """The cash forecast's payment calendar on several cutoffs: even days, weekdays, weekdays and holidays.

    Each cutoff's model (the configuration's, cached as ``rolling`` caches it) scores the invoices open
    then once; the weekly (13 weeks) and daily (91 days) forecasts are then drawn with the bins' days
    weighted evenly, by the ledger's weekdays, by those and its countries' holidays, and by each
    country's weekdays and holidays (``features.calendar.payment_calendar`` as of the cutoff). Daily figures are also given on the
    days that are a public holiday in the country of at least a tenth of the open amount.
    """
    from features.calendar import PaymentCalendar, holidays_between, payment_calendar
    from models.forecast import build_collection_forecast, evaluate_collection_forecast

    rows = []
    ledger, tag, cutoffs = scored_cutoffs(args, args.cutoffs.split(","))
    for as_of, model, s, days, cdf in cutoffs:
        full = payment_calendar(ledger.known_at(as_of), as_of)
        share = s.groupby("country")["open_amount"].sum() / s["open_amount"].sum()
        d = pd.Timestamp(as_of)
        hol_days = {day for c in share[share >= 0.1].index
                    for day in holidays_between(c, d, d + pd.Timedelta(days=91))}
        ledger_days = dict(weekday_weights=full.weekday_weights)
        holidays = dict(holiday_weights=full.holiday_weights, country_weights=full.country_weights,
                        default_holiday_weight=full.default_holiday_weight)
        for name, cal in (("even", None), ("weekdays", PaymentCalendar(**ledger_days)),
                          ("weekdays + holidays", PaymentCalendar(**ledger_days, **holidays)),
                          ("country weekdays + holidays", full)):
            model.payment_model_.payment_calendar_ = cal
            model.payment_model_.__dict__.pop("weekday_weights_", None)
            w = evaluate_collection_forecast(build_collection_forecast(
                s, days, cdf, model.payment_model_, as_of, horizon=13, n_samples=args.samples, seed=0),
                ledger, as_of, args.end)
            dly = evaluate_collection_forecast(build_collection_forecast(
                s, days, cdf, model.payment_model_, as_of, horizon=91, freq="D", n_samples=args.samples, seed=0),
                ledger, as_of, args.end, freq="D")
            per = pd.DataFrame(dly["periods"])
            on_hol = pd.to_datetime(per["period_start"]).isin(list(hol_days)).to_numpy()
            rows.append({"cutoff": as_of, "calendar": name, "weekly WAPE": w["weekly_wape"],
                         "weekly band": w["weekly_band_coverage"], "daily WAPE": dly["daily_wape"],
                         "daily band": dly["daily_band_coverage"], "holidays": int(on_hol.sum()),
                         "expected on holidays": per.loc[on_hol, "expected"].sum(),
                         "actual on holidays": per.loc[on_hol, "actual"].sum()})
    from bench.overdue_analysis import markdown
    frame = pd.DataFrame(rows)
    print(f"## Payment calendar of the cash forecast, {tag} (outcomes to {args.end})\n")
    print(markdown(frame, 3))
    print("\n## Means over the cutoffs\n")
    print(markdown(frame.drop(columns="cutoff").groupby("calendar", sort=False).mean().reset_index(), 3))


def speed(args) -> None:
    from models.forecast import build_collection_forecast
    from models.hazard import DEFAULT_EDGES, PaymentDateModel

    rng = np.random.default_rng(0)
    n = args.invoices
    e = np.array(DEFAULT_EDGES, dtype=float)
    a0 = rng.integers(-60, 90, n).astype(float)
    days = np.maximum(e[None, :], a0[:, None]) - a0[:, None]
    cdf = np.sort(rng.random((n, len(e))), axis=1) * rng.uniform(0.8, 1.0, (n, 1))
    cdf[days == 0] = 0.0
    cdf = np.maximum.accumulate(cdf, axis=1)
    scores = pd.DataFrame({"invoice_id": np.arange(n).astype(str),
                           "client_id": rng.integers(0, n // 5, n).astype(str),
                           "amount": rng.lognormal(7, 1, n),
                           "due_date": pd.Timestamp("2025-01-06") - pd.to_timedelta(a0, unit="D")})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    f = build_collection_forecast(scores, days, cdf, PaymentDateModel(), "2025-01-06", horizon=13,
                                  n_samples=args.samples, client_correlation=0.3)
    dt = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} invoices x {args.samples} samples, 13 weeks: {dt:.1f} s, peak RSS {rss1:.0f} MB "
          f"(inputs {rss0:.0f} MB); expected total {f['expected_amount'].sum():,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backtest")
    b.add_argument("--cache", default="/tmp/encaisse-bench")
    b.add_argument("--select-as-of", default="2018-07-01")
    b.add_argument("--select-end", default="2018-10-01")
    b.add_argument("--test-as-of", default="2018-10-01")
    b.add_argument("--test-end", default="2019-01-01")
    b.add_argument("--samples", type=int, default=1000)
    b.add_argument("--model-select", default=None, help="joblib of an EncaisseModel fitted as of --select-as-of")
    b.add_argument("--model-test", default=None, help="joblib of an EncaisseModel fitted as of --test-as-of")
    r = sub.add_parser("rolling")
    r.add_argument("--cache", default="/tmp/encaisse-bench")
    r.add_argument("--config", default=None, help="training configuration (default: pipelines/default.yaml)")
    r.add_argument("--tag", default=None, help="name of the cached models (default: the config's file name)")
    r.add_argument("--select", default="2018-05-01,2018-06-01,2018-07-01,2018-08-01,2018-09-01,2018-10-01")
    r.add_argument("--check", default="2018-11-01,2018-12-01", help="later cutoffs the chosen triple is checked on")
    r.add_argument("--end", default="2019-01-01")
    r.add_argument("--samples", type=int, default=1000)
    c = sub.add_parser("calendar")
    c.add_argument("--cache", default="/tmp/encaisse-bench")
    c.add_argument("--config", default=None, help="training configuration (default: pipelines/default.yaml)")
    c.add_argument("--tag", default=None, help="name of the cached models (default: the config's file name)")
    c.add_argument("--cutoffs", default="2018-05-01,2018-06-01,2018-07-01,2018-08-01,2018-09-01,2018-10-01,"
                   "2018-11-01,2018-12-01")
    c.add_argument("--end", default="2019-01-01")
    c.add_argument("--samples", type=int, default=1000)
    s = sub.add_parser("speed")
    s.add_argument("--invoices", type=int, default=100_000)
    s.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    {"backtest": backtest, "rolling": rolling, "calendar": calendar, "speed": speed}[args.cmd](args)


if __name__ == "__main__":
    main()

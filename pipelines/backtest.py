"""Backtest as of a day D: train on what was known then, score the invoices open then, compare.

``build_backtest`` fits an ``EncaisseModel`` on ``ledger.known_at(D)`` (everything dated on or after
D hidden from training and features), scores the invoices open at the start of D, and reads what
happened to them up to ``end`` (default: the day after the last date in the ledger).
``evaluate_backtest`` turns that into metrics for the model and the three baselines;
``save_backtest_report`` writes a Markdown report with PNG plots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ledger.contracts import Ledger
from models import evaluation
from models.monitoring import RUN_FORECAST_WEEKS
from models.collection import build_forecast
from models.forecast import build_baseline_schedules, build_open_amounts, evaluate_collection_forecast
from models.scorer import EncaisseModel
from models.scoring import build_scoring
from models.worklist import evaluate_worklist_capture
from pipelines import plots
from pipelines.config import TrainingConfig, load_config
from pipelines.validation import (
    EvaluationSet, build_evaluation_set, coverage_by_group, evaluate_baselines, evaluate_predictions,
    headline, predict_evaluation_set, risk_outcomes, truncated_errors,
)

CENSORING_NOTE = (evaluation.__doc__.split("\n\n", 1)[1].strip().replace("\n    * ", "\n\n* ", 1)
                  .replace("\n    * ", "\n* ").replace("\nRisk metrics", "\n\nRisk metrics")
                  if evaluation.__doc__ else "")
"""How outcomes still unknown at the end of the backtest are treated (from ``models.evaluation``)."""


@dataclass
class Backtest:
    """A fitted backtest.

    Attributes:
        as_of: D; ``end``: outcomes observed up to (excluded) this day.
        model: the model fitted on ``ledger.known_at(D)``.
        evaluation_set: the invoices open at D, their outcomes and the baselines' forecasts.
        predictions: the model's forecasts for them (``p_late``, ``p10/50/90_days``, ``pit``).
    """

    as_of: pd.Timestamp
    end: pd.Timestamp
    model: EncaisseModel
    evaluation_set: EvaluationSet
    predictions: pd.DataFrame

    @property
    def n_open(self) -> int:
        return len(self.evaluation_set.rows)

    def forecasts(self) -> dict[str, pd.DataFrame]:
        """Name -> forecasts aligned with the open invoices: the model then the baselines."""
        return {"model": self.predictions, **self.evaluation_set.baselines}


def default_end(ledger: Ledger) -> pd.Timestamp:
    """The day after the last date in the ledger (issue, payment or action day)."""
    inv = ledger.invoices
    cands = [inv["issue_date"].max(), inv["paid_date"].max()]
    if len(ledger.payments):
        cands.append(ledger.payments["paid_date"].max())
    if len(ledger.actions):
        cands.append(ledger.actions["action_date"].max())
    last = max(pd.Timestamp(c) for c in cands if pd.notna(c))
    return last.normalize() + pd.Timedelta(days=1)


def build_backtest(ledger: Ledger, as_of, end=None, config: TrainingConfig | None = None) -> Backtest:
    """Fit as of ``as_of`` on what was known then; score the invoices open then; read outcomes to ``end``."""
    d = pd.Timestamp(as_of).normalize()
    end = default_end(ledger) if end is None else pd.Timestamp(end).normalize()
    if end <= d:
        raise ValueError(f"The outcome end {end.date()} must be after the backtest day {d.date()}.")
    config = config or load_config()
    known = ledger.known_at(d)
    model = EncaisseModel(**config.model.estimator_params()).fit(known, d)
    es = build_evaluation_set(ledger, [d], end)
    # The model scores from ``known`` only: the outcomes in ``ledger`` are for the truth alone.
    pred = predict_evaluation_set(model, known, es)
    return Backtest(as_of=d, end=end, model=model, evaluation_set=es, predictions=pred)


def evaluate_backtest(ledger: Ledger, as_of, end=None, config: TrainingConfig | None = None,
                      backtest: Backtest | None = None) -> dict:
    """Backtest metrics of the model and the baselines on the invoices open at ``as_of``.

    Args:
        ledger: the whole ledger (training and features see only what was known at ``as_of``).
        as_of: the backtest day D.
        end: outcomes observed up to (excluded) this day; default ``default_end(ledger)``.
        config: training configuration (default: ``pipelines/default.yaml``).
        backtest: an already built ``build_backtest(ledger, as_of, end, config)`` to reuse.

    Returns:
        ``{"as_of", "n_open", "model": {...}, "baselines": {name: {...}}}`` with ``METRICS`` each
        (None when a forecaster does not forecast it or the rows cannot tell).
    """
    bt = backtest or build_backtest(ledger, as_of, end, config)
    es = bt.evaluation_set
    out = {
        "as_of": str(bt.as_of.date()),
        "n_open": bt.n_open,
        "model": headline(evaluate_predictions(bt.predictions, es)),
        "baselines": {name: headline(m) for name, m in evaluate_baselines(es).items()},
    }
    collections = evaluate_collections(bt, ledger)
    capture = evaluate_worklist(bt, ledger)
    out["model"].update(collections.pop("model"), capture_top10=capture["capture_top10"])
    for name, metrics in collections.items():
        out["baselines"].setdefault(name, {}).update(metrics)
    out["baselines"]["static_ranking"] = {"capture_top10": capture["capture_top10_static"]}
    return out


def evaluate_collections(bt: Backtest, ledger: Ledger) -> dict[str, dict]:
    """Weekly WAPE and P10-P90 band coverage of the cash forecast, and WAPE of the naive schedules.

    The forecast covers ``RUN_FORECAST_WEEKS`` weeks from as_of, as the one a scoring run stores
    (so a run's monitored figures equal the backtest's for the same day); only weeks fully
    observed before ``bt.end`` count (censoring). The forecast samples the model's payment-date distributions with clients' invoices correlated
    (``models.forecast``); the schedules put each amount on its due date, or on due date + the
    client's median delay.
    """
    known = ledger.known_at(bt.as_of)
    scores, (days, cdf) = bt.model.score(known, bt.as_of, n_reasons=0, return_cdf=True)
    weeks = RUN_FORECAST_WEEKS
    # The forecast a run stores, without the not-yet-issued line: only the invoices open at as_of are judged.
    forecast = build_forecast(bt.model, known, bt.as_of, horizon=weeks, freq="W", run_rate_weeks=0,
                              scored=(scores, (days, cdf)))
    res = {"model": evaluate_collection_forecast(forecast.periods, ledger, bt.as_of, bt.end, freq="W")}
    scores["open_amount"] = build_open_amounts(scores, known, bt.as_of)  # the schedules spread the same amounts
    for name, sched in build_baseline_schedules(scores, known, bt.as_of, horizon=weeks, freq="W").items():
        res[name] = evaluate_collection_forecast(sched, ledger, bt.as_of, bt.end, freq="W")
    keys = ("weekly_wape", "weekly_band_coverage")
    return {name: {k: m.get(k) for k in keys} for name, m in res.items()}


def evaluate_worklist(bt: Backtest, ledger: Ledger) -> dict:
    """``capture_top10`` of the worklist built at as_of, and of a static amount x days-overdue ranking.

    The invoices' dunning-block and dispute flags are left out (in an export they hold the state at
    export time, after as_of); dated actions still count.
    """
    known = ledger.known_at(bt.as_of)
    scoring = build_scoring(bt.model, known, bt.as_of, invoice_flags=False)
    return evaluate_worklist_capture(scoring.worklist, ledger, bt.as_of, bt.end)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def save_predictions(bt: Backtest, path: Path) -> Path:
    """Write each open invoice's forecast beside what happened to it (one row per invoice).

    Columns: the evaluation rows (``as_of``, ``invoice_id``, ``client_id``, ``due_date``), the model's
    forecast columns (``p_late``, ``p_very_late``, quantiles in days after as_of, ``pit``) and the truth
    (``duration_days`` = min(T, C), ``event``, ``censor_days``, ``y_late``, ``y_very_late``): what a reader needs to
    recompute any metric of the report, or a new one, without refitting.
    """
    es = bt.evaluation_set
    truth = es.truth[["duration_days", "event", "censor_days", "y_late", "y_very_late"]]
    frame = pd.concat([es.rows.reset_index(drop=True), bt.predictions.reset_index(drop=True),
                       truth.reset_index(drop=True)], axis=1)
    frame.to_csv(path, index=False)
    return path


def save_backtest_report(bt: Backtest, metrics: dict, out_dir: str | Path) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir``; return the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    es = bt.evaluation_set
    forecasts = bt.forecasts()
    m = risk_outcomes(es)
    y = es.truth["y_late"].to_numpy()[m]
    plots.save_calibration_curve({"model": (y, bt.predictions["p_late"].to_numpy()[m]),
                                  "historical_rate": (y, es.baselines["historical_rate"]["p_late"].to_numpy()[m])},
                                 out / "calibration_p_late.png", title=f"Calibration of p_late, as of {bt.as_of.date()}")
    errors = {name: truncated_errors(f, es) for name, f in forecasts.items() if not f["p50_days"].isna().all()}
    plots.save_error_distribution(errors, out / "payment_date_error.png")
    cov = coverage_by_group(forecasts, es)
    plots.save_coverage_by_group(cov, out / "coverage_by_days_to_due.png")
    plots.save_pit_histogram(bt.predictions["pit"], out / "pit_histogram.png")
    save_predictions(bt, out / "predictions.csv.gz")

    full = {"model": evaluate_predictions(bt.predictions, es), **evaluate_baselines(es)}
    names = list(metrics["model"])
    rows = ["| forecaster | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for name in ("model", *metrics["baselines"]):
        vals = metrics["model"] if name == "model" else metrics["baselines"][name]
        rows.append(f"| {name} | " + " | ".join(_fmt(vals.get(k)) for k in names) + " |")
    cov_rows = ["| days to due at as_of | forecaster | invoices | coverage | mae_days |", "| --- | --- | --- | --- | --- |"]
    cov_rows += [f"| {r.group} | {r.forecaster} | {r.n} | {_fmt(r.interval_coverage)} | {_fmt(r.mae_days)} |"
                 for r in cov.itertuples()]
    rep = bt.model.training_report_
    text = "\n".join([
        f"# Backtest as of {bt.as_of.date()}",
        "",
        f"Model fitted on the ledger as known at the start of {bt.as_of.date()} (nothing dated on or after it "
        f"was visible to training or features); {bt.n_open} invoices open that day scored; outcomes observed up to "
        f"{(bt.end - pd.Timedelta(days=1)).date()} ({(bt.end - bt.as_of).days} days).",
        "",
        f"Training: {rep.n_snapshots} snapshots ({rep.first_snapshot} .. {rep.last_snapshot}), {rep.n_rows} rows.",
        "",
        "## Metrics",
        "",
        *rows,
        "",
        f"Risk metrics use the {full['model']['n_risk']} invoices not yet due at as_of whose lateness is known "
        f"by the end (late rate {_fmt(full['model']['late_rate'])}). Overdue invoices get p_late = 1 and are "
        f"left out of AUC and Brier. `auc_p_very_late` and `brier_p_very_late` judge p_very_late on every open "
        f"invoice whose very-lateness (paid more than 30 days after max(due, as_of)) is known by the end. "
        f"Model MAE on paid invoices only: {_fmt(full['model'].get('mae_days_paid'))} days.",
        "",
        "Cash forecast: `weekly_wape` = sum |forecast - collected| / sum collected over the weeks from as_of "
        "fully observed before the end; `weekly_band_coverage` = share of those weeks whose collections fall in "
        "the P10-P90 band. Worklist: `capture_top10` = share of the amount of invoices paid more than 30 days "
        "after max(due, as_of) that sits in the first 10% of the worklist (`static_ranking`: amount x days "
        "overdue).",
        "",
        "## Censoring",
        "",
        CENSORING_NOTE,
        "",
        "## Plots",
        "",
        "![Calibration of p_late](calibration_p_late.png)",
        "",
        "Observed late rate against mean predicted p_late in equal-count bins (risk rows).",
        "",
        "![Payment-date error](payment_date_error.png)",
        "",
        "Forecast P50 minus actual payment day, both truncated at the censoring day.",
        "",
        "![Coverage by days to due](coverage_by_days_to_due.png)",
        "",
        *cov_rows,
        "",
        "![PIT histogram](pit_histogram.png)",
        "",
        "F(payment day) over invoices paid before the end; flat = calibrated. Censored invoices are left "
        "out, which thins the right-hand side when the window is short.",
        "",
        "## Training report",
        "",
        "```",
        *(f"{k}: {v}" for k, v in asdict(rep).items()),
        "```",
        "",
    ])
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


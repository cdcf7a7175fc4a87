"""Alerts for credit controllers: what changed or went wrong since the last look.

Four kinds, each a pure function of the scores, the ledger as known at ``as_of`` and, for risk
jumps, the previous stored scoring:

* ``over_credit_limit``: a client's open amount exceeds its credit limit;
* ``risk_jump``: a client's highest P(very late) rose sharply since the previous scoring;
* ``broken_promise``: a promise to pay whose date + grace has passed, still unpaid;
* ``large_invoice_due_soon``: a large invoice of a risky client falls due in the coming days.
"""

from __future__ import annotations

import pandas as pd

from features.clients import PROMISE_GRACE_DAYS
from ledger.contracts import Ledger

ALERT_COLUMNS = ["kind", "client_id", "invoice_id", "severity", "reason"]
SEVERITY_ORDER = ("high", "medium", "low")

OVER_LIMIT_HIGH = 1.20
"""Open amount / credit limit from which an over-limit alert is high severity."""

RISK_JUMP_POINTS = 0.15
"""Rise in a client's P(very late) max (absolute, 0-1) since the previous scoring that raises an alert."""

RISK_HIGH = 0.30
"""P(very late) from which a client is risky (the default policy's high-risk threshold)."""

BROKEN_PROMISE_LOOKBACK_DAYS = 30
"""A broken promise is reported while its deadline (date + grace) is at most this many days old."""

DUE_SOON_DAYS = 7
"""Horizon, in days from ``as_of``, for large invoices falling due."""

LARGE_QUANTILE = 0.90
"""An invoice is large when its amount is at least this quantile of the open invoices' amounts."""


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def build_alerts(
    client_scores: pd.DataFrame,
    scores: pd.DataFrame,
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    previous_client_scores: pd.DataFrame | None = None,
    promise_grace_days: int = PROMISE_GRACE_DAYS,
    large_amount: float | None = None,
) -> pd.DataFrame:
    """Alerts as of the start of ``as_of``.

    Args:
        client_scores: ``build_client_scores`` output (``client_id, open_amount,
            p_very_late_max``; ``credit_limit`` if present, else read from ``ledger.clients``).
        scores: invoice scores (``invoice_id, client_id, amount, due_date, p_very_late``).
        ledger: the ledger; only what is known at the start of ``as_of`` is read.
        as_of: the day.
        previous_client_scores: client scores of the previous run (``client_id,
            p_very_late_max``); without them no ``risk_jump`` alert can be raised.
        promise_grace_days: days after a promised date before the promise counts as broken.
        large_amount: amount from which an invoice is large (default: the
            :data:`LARGE_QUANTILE` quantile of ``scores.amount``).

    Returns:
        ``kind, client_id, invoice_id, severity, reason`` (``invoice_id`` None for client
        alerts), high severity first.
    """
    d = pd.Timestamp(as_of).normalize()
    known = ledger.known_at(d)
    rows: list[dict] = []
    cs = client_scores.drop_duplicates("client_id").set_index("client_id")

    # Over the credit limit.
    if "credit_limit" in cs.columns:
        limit = cs["credit_limit"].astype(float)
    else:
        limit = known.clients.drop_duplicates("client_id").set_index("client_id")["credit_limit"].reindex(cs.index)
    use = cs["open_amount"].astype(float) / limit.where(limit > 0)
    for client, u in use[use > 1.0].items():
        rows.append({"kind": "over_credit_limit", "client_id": client, "invoice_id": None,
                     "severity": "high" if u >= OVER_LIMIT_HIGH else "medium",
                     "reason": f"open {_fmt(cs.at[client, 'open_amount'])} vs credit limit "
                               f"{_fmt(limit[client])} ({u:.0%})"})

    # Risk jump since the previous scoring.
    if previous_client_scores is not None and len(previous_client_scores):
        before = previous_client_scores.drop_duplicates("client_id", keep="last").set_index("client_id")
        old = before["p_very_late_max"].reindex(cs.index).astype(float)
        new = cs["p_very_late_max"].astype(float)
        jump = new - old
        for client in jump.index[jump >= RISK_JUMP_POINTS]:
            rows.append({"kind": "risk_jump", "client_id": client, "invoice_id": None,
                         "severity": "high" if new[client] >= RISK_HIGH else "medium",
                         "reason": f"chance of a very late payment rose from {old[client]:.0%} to "
                                   f"{new[client]:.0%} since the previous scoring"})

    # Broken promises: the latest promise per invoice (or per client, for client-level ones).
    act = known.actions
    prom = act[act["promise_date"].notna() & ((act["step"] == "promise") | (act["outcome"] == "promise"))]
    if len(prom):
        prom = prom.assign(inv_key=prom["invoice_id"].where(prom["invoice_id"].notna() & (prom["invoice_id"] != ""), None))
        prom = prom.sort_values("action_date", kind="stable")
        latest = prom.groupby([prom["client_id"], prom["inv_key"].fillna("")], sort=True).tail(1)
        grace = pd.Timedelta(days=promise_grace_days)
        inv = known.invoices.drop_duplicates("invoice_id").set_index("invoice_id")
        pay_dates = known.payments.merge(inv[["client_id"]], left_on="invoice_id", right_index=True)
        for p in latest.itertuples(index=False):
            deadline = p.promise_date + grace
            if not (deadline < d <= deadline + pd.Timedelta(days=BROKEN_PROMISE_LOOKBACK_DAYS)):
                continue
            if isinstance(p.inv_key, str):
                if p.inv_key not in inv.index or pd.notna(inv.at[p.inv_key, "paid_date"]):
                    continue  # paid (paid_date before as_of) or unknown invoice
                what = f"invoice {p.inv_key}"
            else:
                window = (pay_dates["client_id"] == p.client_id) & (pay_dates["paid_date"] >= p.action_date)
                cleared = inv[(inv["client_id"] == p.client_id) & (inv["paid_date"] >= p.action_date)]
                if window.any() or len(cleared):
                    continue
                what = "the account"
            amount = f" of {_fmt(p.promise_amount)}" if pd.notna(p.promise_amount) else ""
            rows.append({"kind": "broken_promise", "client_id": p.client_id,
                         "invoice_id": p.inv_key if isinstance(p.inv_key, str) else None,
                         "severity": "high",
                         "reason": f"promise to pay{amount} on {p.promise_date.date()} for {what} not kept "
                                   f"({promise_grace_days} days grace passed on {deadline.date()})"})

    # Large invoices of risky clients due in the coming days.
    if len(scores):
        threshold = float(large_amount) if large_amount is not None else float(scores["amount"].quantile(LARGE_QUANTILE))
        due = pd.to_datetime(scores["due_date"])
        soon = scores[(due >= d) & (due < d + pd.Timedelta(days=DUE_SOON_DAYS)) & (scores["amount"] >= threshold)]
        risk = soon["client_id"].map(cs["p_very_late_max"]).astype(float)
        for r, cr in zip(soon.itertuples(index=False), risk):
            if not cr >= RISK_HIGH:
                continue
            rows.append({"kind": "large_invoice_due_soon", "client_id": r.client_id, "invoice_id": r.invoice_id,
                         "severity": "high" if r.p_very_late >= RISK_HIGH else "medium",
                         "reason": f"{_fmt(r.amount)} due on {pd.Timestamp(r.due_date).date()} from a risky client "
                                   f"({cr:.0%} chance of a very late payment on its invoices; "
                                   f"{r.p_very_late:.0%} on this one)"})

    out = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    out["invoice_id"] = out["invoice_id"].astype(object).where(out["invoice_id"].notna(), None)
    out["_s"] = out["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)})
    return out.sort_values(["_s", "kind", "client_id"], kind="stable").drop(columns="_s").reset_index(drop=True)


# --- retrain signal (from monitoring) -------------------------------------------------------------

RETRAIN_KINDS = ("retrain_accuracy", "retrain_drift")
"""Alerts about the model itself (no client or invoice): realized accuracy fell, or the data drifted."""

_METRIC_WORDS = {"auc_p_late": "AUC of P(late)", "brier_p_late": "Brier score of P(late)",
                 "mae_days": "payment-date MAE (days)", "interval_coverage": "P10-P90 coverage"}


def build_retrain_alerts(monitoring, validation) -> pd.DataFrame:
    """Retrain alerts from a ``models.monitoring.Monitoring`` answer.

    * ``retrain_accuracy`` (high): on the latest run of the latest model version with at least
      ``min_window_days`` of outcomes and ``min_risk_rows`` risk rows, a realized figure is worse
      than that version's validation figure by more than its margin (``MonitoringConfig``);
    * ``retrain_drift`` (medium): against the model's training reference, today's scores have a
      PSI of at least ``drift_psi``, or ``drift_min_features`` features do (the reason names the
      top ones in words).

    Each reason says why and suggests ``encaisse train``; the champion gate still decides whether
    the new model serves.

    Args:
        monitoring: the monitoring answer (runs, drift, config, as_of).
        validation: model version -> validation figures (``auc_p_late``, ``brier_p_late``, ...).
    """
    cfg = monitoring.config
    day = monitoring.as_of.date()
    rows = []
    runs = monitoring.runs
    version = monitoring.drift_model_version or (runs[-1]["model_version"] if runs else None)
    ready = [r for r in runs if r["model_version"] == version and r["window_days"] >= cfg.min_window_days
             and (r.get("n_risk") or 0) >= cfg.min_risk_rows]
    val = validation.get(version) or {} if version is not None else {}
    if ready and val:
        run = ready[-1]
        from models.monitoring import COMPARED

        for metric, margin_name, sign in COMPARED:
            real, ref, margin = run.get(metric), val.get(metric), getattr(cfg, margin_name)
            if real is None or ref is None:
                continue
            gap = (real - ref) * sign
            if gap > margin:
                rows.append({"kind": "retrain_accuracy", "client_id": None, "invoice_id": None, "severity": "high",
                             "reason": (f"model v{version}: realized {_METRIC_WORDS[metric]} {real:.3f} on the run of "
                                        f"{run['as_of']} ({run['window_days']} days of outcomes) is {gap:.3f} "
                                        f"{'below' if sign < 0 else 'above'} its validation figure {ref:.3f} "
                                        f"(margin {margin:g}); retrain: `encaisse train --as-of {day}`")})
    drift = monitoring.drift
    if len(drift):
        hot = drift[drift["psi"] >= cfg.drift_psi]
        if (hot["kind"] == "score").any() or (hot["kind"] == "feature").sum() >= cfg.drift_min_features:
            named = "; ".join(f"{r.words} (PSI {r.psi:.2f})" for r in hot.head(3).itertuples())
            rows.append({"kind": "retrain_drift", "client_id": None, "invoice_id": None, "severity": "medium",
                         "reason": (f"today's {monitoring.n_open} open invoices drifted from model v{version}'s "
                                    f"training rows: {named} ({len(hot)} with PSI >= {cfg.drift_psi:g}); retrain: "
                                    f"`encaisse train --as-of {day}`")})
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)

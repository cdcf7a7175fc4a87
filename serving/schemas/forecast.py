"""The collection forecast, the KPIs and the measured reminder effects (uplift)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ForecastPeriod(BaseModel):
    period_start: date
    expected_amount: float | None
    low: float | None = Field(description="P10 of the period's collections.")
    high: float | None = Field(description="P90 of the period's collections.")
    due_schedule_amount: float | None = Field(description="What falls due in the period (the naive schedule).")
    not_yet_issued_amount: float | None = Field(description="Run-rate collections of invoices not issued yet.")


class ForecastOut(BaseModel):
    """Expected cash collections per period from the open invoices."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "model_version": "3", "freq": "W", "horizon": 2, "n_invoices": 120,
        "periods": [{"period_start": "2025-06-02", "expected_amount": 51000.0, "low": 42000.0, "high": 60000.0,
                     "due_schedule_amount": 70000.0, "not_yet_issued_amount": 3000.0}],
        "totals": {"expected_amount": 51000.0, "low": 42000.0, "high": 60000.0, "open_amount": 250000.0}}]})

    as_of: date
    model_version: str
    freq: Literal["W", "D"]
    horizon: int
    n_invoices: int
    periods: list[ForecastPeriod]
    totals: dict[str, float | None]


class KpisOut(BaseModel):
    """Collection KPIs (amounts in currency units, durations in days); see ``features.kpis.evaluate_kpis``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "period_days": 90, "open_balance": 250000.0, "open_invoices": 120,
        "current_receivables": 150000.0, "overdue_amount": 100000.0, "overdue_share": 0.4, "dso": 48.0,
        "dso_complete": True, "best_possible_dso": 30.0, "average_days_delinquent": 18.0, "cei": 82.0,
        "aging": {"not_due": {"amount": 150000.0, "count": 80}}, "doubtful": [], "doubtful_amount": 0.0,
        "suggested_provision": 0.0}]})

    as_of: date
    period_days: int
    open_balance: float
    open_invoices: int
    current_receivables: float
    overdue_amount: float
    overdue_share: float | None
    dso: float | None
    dso_complete: bool
    best_possible_dso: float | None
    average_days_delinquent: float | None
    cei: float | None
    aging: dict[str, dict[str, float]]
    doubtful: list[dict[str, Any]]
    doubtful_amount: float
    suggested_provision: float


class UpliftWindow(BaseModel):
    """Sent minus held back: the change in the chance of being paid within the window, with its interval."""

    uplift: float | None
    low: float | None
    high: float | None
    n_treated: int
    n_control: int
    rate_treated: float | None
    rate_control: float | None


class UpliftStep(BaseModel):
    """One testable step: its decisions per arm, the estimate per window (``"7"``, ``"14"``, ``"30"``) and per
    profile where each arm is large enough."""

    n_treated: int
    n_control: int
    window_days: dict[str, UpliftWindow]
    profiles: dict[str, dict[str, Any]] = {}


class UpliftOut(BaseModel):
    """Measured effect of each testable dunning step (``models.uplift.evaluate_uplift``), and its history."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2026-01-01", "confidence": 0.9, "share_held_back": 0.1, "worklist_window_days": 14,
        "profile_basis": "run_at_first_decision",
        "steps": {"reminder_1": {"n_treated": 900, "n_control": 100, "window_days": {"14": {
            "uplift": 0.11, "low": 0.06, "high": 0.16, "n_treated": 880, "n_control": 98, "rate_treated": 0.42,
            "rate_control": 0.31}}, "profiles": {}}},
        "measured": {"reminder_1": {"uplift": 0.11, "low": 0.06, "high": 0.16, "n_treated": 880, "n_control": 98,
                                    "why": "its interval excludes zero"}},
        "history": [{"as_of": "2025-12-01", "steps": {"reminder_1": {"uplift": 0.1, "low": 0.04, "high": 0.16,
                                                                       "n_treated": 800, "n_control": 90,
                                                                       "rate_treated": 0.41, "rate_control": 0.31}}}]}]})

    as_of: date
    confidence: float
    share_held_back: float
    worklist_window_days: int
    profile_basis: str = Field(description="Where each decision's profile comes from: ``run_at_first_decision`` "
                               "(the stored score run at or before the client's first decision of the step) or "
                               "``no_stored_run`` (no run precedes the decisions: no profile)")
    steps: dict[str, UpliftStep]
    measured: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]

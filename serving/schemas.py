"""Request and response bodies, one family per entity (``InvoiceIn``, ``ScoreOut``, ...), with examples.

Types are strict enough that bad input is a 422 naming the field (dates within
:data:`FIRST_DAY`..:data:`LAST_DAY`, finite amounts, ids of at most 64 printable characters) and
loose where the ledger's own validation gives a better, row-level answer (a zero amount, a due date
before the issue date, an unknown currency are rejected rows, not schema errors).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


def _in_range(d: date) -> date:
    if not FIRST_DAY <= d <= LAST_DAY:
        raise ValueError(f"date must be between {FIRST_DAY} and {LAST_DAY}")
    return d


Day = Annotated[date, AfterValidator(_in_range), Field(examples=["2025-06-01"])]
"""A calendar day (ISO ``YYYY-MM-DD``)."""
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Amount = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]
"""An amount in the document currency (the ledger rejects zero or negative ones, row by row)."""

ActionStep = Literal["preventive", "reminder", "reminder_1", "reminder_2", "call", "formal_notice", "agency",
                     "promise", "dispute", "dispute_resolved", "payment_plan", "dunning_block", "dunning_unblock"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- ledger rows ----------------------------------------------------------------------------------

INVOICE_EXAMPLE = {"invoice_id": "INV-2025-0042", "client_id": "C0007", "issue_date": "2025-05-02",
                   "due_date": "2025-06-01", "amount": 1250.0, "currency": "EUR", "doc_type": "invoice",
                   "terms": "30_net"}


class InvoiceIn(_In):
    """An invoice (or other receivable document) in the canonical layout (``docs/contracts.md``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [INVOICE_EXAMPLE]})

    invoice_id: Id
    client_id: Id
    issue_date: Day
    due_date: Day = Field(description="Never before issue_date.")
    amount: Amount = Field(description="Gross amount in `currency`, > 0.")
    currency: Text = Field(default="EUR", description="ISO 4217 code.")
    paid_date: Day | None = Field(default=None, description="Day the document was cleared; empty = open.")
    doc_type: Text = Field(default="invoice", description="invoice, credit_note, debit_note, down_payment, "
                                                          "payment_difference or other.")
    terms: Text | None = None
    company: Text | None = None
    country: Text | None = None
    disputed: bool | None = None
    dunning_block: Text | None = None
    credit_category: Text | None = None


class PaymentIn(_In):
    """A payment applied to an invoice."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"payment_id": "PAY-88121", "invoice_id": "INV-2025-0042", "paid_date": "2025-06-12", "amount": 1250.0}]})

    payment_id: Id
    invoice_id: Id
    paid_date: Day
    amount: Amount = Field(description="Amount applied, in the invoice currency, > 0.")


class InvoicesIn(_In):
    """Invoices to store (inserted, updated when changed, unchanged otherwise)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"invoices": [INVOICE_EXAMPLE]}]})

    invoices: list[InvoiceIn]


class PaymentsIn(_In):
    """Payments to store."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"payments": [
        {"payment_id": "PAY-88121", "invoice_id": "INV-2025-0042", "paid_date": "2025-06-12", "amount": 1250.0}]}]})

    payments: list[PaymentIn]


class RejectedRow(BaseModel):
    """A row the ledger's validation refused."""

    row: int = Field(description="1-based position of the row in the request.")
    key: str | None = Field(description="The row's id, when it had one.")
    reason: str


class WriteOut(BaseModel):
    """What a write did."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"table": "invoices", "received": 2, "inserted": 1, "updated": 0, "unchanged": 1, "rejected": 0,
         "rejects": []}]})

    table: str
    received: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejects: list[RejectedRow]
    warnings: list[str] = Field(default_factory=list, description="What was stored but deserves a look "
                                                                  "(e.g. payments of invoices not in the store).")


# --- actions --------------------------------------------------------------------------------------


class ActionIn(_In):
    """A collector action: a call made, a promise to pay (date and amount), a dispute, a payment plan
    instalment (``promise_date``), a dunning block or unblock."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"client_id": "C0007", "invoice_id": "INV-2025-0042", "action_date": "2025-06-03", "step": "promise",
         "channel": "call", "outcome": "promise", "promise_date": "2025-06-15", "promise_amount": 1250.0},
        {"client_id": "C0007", "invoice_id": "INV-2025-0042", "action_date": "2025-06-03", "step": "call",
         "channel": "call", "outcome": "no_answer"}]})

    action_id: Id | None = Field(default=None, description="Default: derived from the row's content "
                                                           "(re-sending the same action changes nothing).")
    client_id: Id
    invoice_id: Id | None = Field(default=None, description="Empty for an action on the whole client.")
    action_date: Day
    step: ActionStep
    channel: Literal["email", "sms", "call", "letter", "registered_letter", "agency"] | None = None
    outcome: Text | None = Field(default=None, description="e.g. no_answer, promise, dispute, paid, refused.")
    promise_date: Day | None = Field(default=None, description="Promised payment day (promise) or instalment "
                                                               "day (payment_plan).")
    promise_amount: Amount | None = None

    @model_validator(mode="after")
    def _promise_has_date(self) -> "ActionIn":
        if self.step == "promise" and self.promise_date is None:
            raise ValueError("promise_date is required when step is 'promise'")
        return self


class ActionOut(BaseModel):
    """The stored action."""

    action_id: str
    created: bool = Field(description="False when the same action was already stored.")
    write: WriteOut


# --- scores ---------------------------------------------------------------------------------------


class ScoreRequest(_In):
    """Invoices to score as of a day.

    * Store mode: ``invoice_ids`` of invoices in the store, and/or full ``invoices`` rows (a sent row
      replaces the stored one); the clients' history comes from the store.
    * Stateless mode: ``history`` present (even empty): the ``invoices`` and the clients' other
      invoice rows (``history``, and optionally ``payments``) are all that is used.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"as_of": "2025-06-01", "invoice_ids": ["INV-2025-0042", "INV-2025-0043"]},
        {"as_of": "2025-06-01", "invoices": [INVOICE_EXAMPLE], "history": [
            {**INVOICE_EXAMPLE, "invoice_id": "INV-2025-0007", "issue_date": "2025-02-01", "due_date": "2025-03-03",
             "paid_date": "2025-03-20"}]}]})

    as_of: Day | None = Field(default=None, description="Score at the start of this day (default: today, UTC).")
    invoice_ids: list[Id] = Field(default_factory=list, description="Invoices known to the store.")
    invoices: list[InvoiceIn] = Field(default_factory=list, description="Full invoice rows to score.")
    history: list[InvoiceIn] | None = Field(default=None, description="Stateless mode: the clients' other invoices.")
    payments: list[PaymentIn] | None = Field(default=None, description="Stateless mode: payment rows (optional).")
    n_reasons: int = Field(default=3, ge=0, le=10, description="Reasons given per invoice.")

    @model_validator(mode="after")
    def _something_to_score(self) -> "ScoreRequest":
        if not self.invoice_ids and not self.invoices:
            raise ValueError("give invoice_ids or invoices to score")
        if self.history is not None and self.invoice_ids:
            raise ValueError("invoice_ids need the store: leave history out, or send full invoices rows")
        if self.payments is not None and self.history is None:
            raise ValueError("payments are only read in stateless mode (with history)")
        return self


class ScoreOut(BaseModel):
    """One invoice's scores."""

    invoice_id: str
    client_id: str
    amount: float
    currency: str | None
    due_date: date
    p_late: float = Field(description="P(paid after the due date); 1 for an invoice already overdue.")
    p_very_late: float = Field(description="P(paid more than 30 days after max(due date, as_of)).")
    payment_date_p10: date
    payment_date_p50: date
    payment_date_p90: date
    p10_days: float = Field(description="Days after as_of (clipped to the model's horizon).")
    p50_days: float
    p90_days: float
    beyond_horizon: bool = Field(description="P90 lies past the model's horizon.")
    reasons: list[str] = Field(description="Facts pushing P(very late) up the most, in plain words.")


class NotScored(BaseModel):
    invoice_id: str
    reason: str


class ScoresOut(BaseModel):
    """Scores of a batch, with the model and day they hold for."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "model_version": "3", "model_run_id": "4f1c...", "mode": "store",
        "scores": [{"invoice_id": "INV-2025-0042", "client_id": "C0007", "amount": 1250.0, "currency": "EUR",
                    "due_date": "2025-06-01", "p_late": 0.41, "p_very_late": 0.12, "payment_date_p10": "2025-06-02",
                    "payment_date_p50": "2025-06-12", "payment_date_p90": "2025-07-20", "p10_days": 1.0,
                    "p50_days": 11.0, "p90_days": 49.0, "beyond_horizon": False,
                    "reasons": ["pays 12 days late on average"]}],
        "not_scored": []}]})

    as_of: date
    model_version: str
    model_run_id: str | None
    mode: Literal["store", "stateless"]
    scores: list[ScoreOut]
    not_scored: list[NotScored]


# --- clients, worklist ----------------------------------------------------------------------------


class InvoiceScoreOut(BaseModel):
    """An open invoice in a worklist or client view: scores, profile, next step."""

    model_config = ConfigDict(extra="allow")

    invoice_id: str
    client_id: str
    collector: str | None = None
    priority: int | None = None
    queue: str | None = None
    amount: float | None = None
    amount_remaining: float | None = None
    currency: str | None = None
    due_date: date | None = None
    days_overdue: float | None = None
    p_late: float | None = None
    p_very_late: float | None = None
    expected_payment_date: date | None = None
    payment_date_low: date | None = None
    payment_date_high: date | None = None
    profile: str | None = None
    scenario: str | None = None
    next_action: str | None = None
    next_action_date: date | None = None
    expected_gain: float | None = None
    why: str | None = None
    reasons: str | None = None


class ClientOut(BaseModel):
    """A client as of a day."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "client_id": "C0007", "as_of": "2025-06-01", "model_version": "3",
        "master": {"name": "Dupont SA", "segment": "SME", "collector": "alice"},
        "profile": {"profile": "standard", "scenario": "standard", "profile_reason": "default"},
        "behaviour": {"c_late_rate": 0.4, "c_delay_mean": 6.5}, "open_invoices": []}]})

    client_id: str
    as_of: date
    model_version: str
    master: dict[str, Any] = Field(description="Client master data (name, segment, collector, ...).")
    profile: dict[str, Any] | None = Field(description="Dunning profile, scenario and why; None without open invoices.")
    behaviour: dict[str, Any] = Field(description="Behaviour figures (client features c_*; days, currency units).")
    open_invoices: list[InvoiceScoreOut]


class WorklistOut(BaseModel):
    """Ranked worklist rows (priority 1 first; rows without priority are not for today)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "source": "stored", "run_id": "a1b2", "run_as_of": "2025-06-01",
        "model_version": "3", "total": 1, "limit": 100, "offset": 0, "note": None,
        "rows": [{"invoice_id": "INV-2025-0042", "client_id": "C0007", "collector": "alice", "priority": 1,
                  "next_action": "call", "why": "1 250 EUR 12 days overdue", "reasons": "pays late"}]}]})

    as_of: date
    source: Literal["stored", "computed"] = Field(description="stored: the latest stored score run at or before "
                                                              "as_of; computed: no run was stored, scored now.")
    run_id: str | None
    run_as_of: date
    model_version: str
    note: str | None
    total: int
    limit: int
    offset: int
    rows: list[InvoiceScoreOut]


# --- forecast, KPIs, model, health ----------------------------------------------------------------


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


class ModelOut(BaseModel):
    """The model being served."""

    model_config = ConfigDict(protected_namespaces=(), json_schema_extra={"examples": [
        {"version": "3", "run_id": "4f1c...", "as_of": "2025-06-01", "metrics": {"val_auc_very_late": 0.81}}]})

    version: str
    run_id: str | None
    as_of: str = Field(description="The training day: the model knew nothing dated on or after it.")
    metrics: dict[str, float]


class ReloadOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": "4", "message": "Serving version 4 (was 3)."}]})

    version: str
    message: str


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str
    invoices: int = Field(description="Invoices in the loaded ledger.")


class ErrorOut(BaseModel):
    """An error: ``detail`` says what was wrong and how to fix it."""

    detail: Any


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
# --- monitoring ------------------------------------------------------------------------------------


class MonitoringWeek(BaseModel):
    """One fully observed week of a run's stored forecast, against what came in (EUR)."""

    period_start: str
    expected: float
    low: float
    high: float
    actual: float


class MonitoringRun(BaseModel):
    """A stored scoring run's realized figures, as the backtest computes them (None: not known yet)."""

    run_id: str
    as_of: str
    model_version: str
    n_invoices: int
    window_days: int
    n_risk: int | None = None
    late_rate: float | None = None
    auc_p_late: float | None = None
    brier_p_late: float | None = None
    calibration_ece: float | None = None
    mae_days: float | None = None
    bias_days: float | None = None
    within_7d: float | None = None
    interval_coverage: float | None = None
    pinball_days: float | None = None
    capture_top10: float | None = None
    capture_top10_static: float | None = None
    weekly_wape: float | None = None
    weekly_band_coverage: float | None = None
    calibration: list[dict[str, float]] = []
    weeks: list[MonitoringWeek] = []


class MonitoringVersion(BaseModel):
    """A model version's runs: its validation figures and the mean of its realized figures."""

    model_version: str
    n_runs: int
    first_run: str
    last_run: str
    validation: dict[str, float | None]
    realized: dict[str, float | None]


class DriftRow(BaseModel):
    """Population stability index of one feature or score, today's open invoices vs the training rows."""

    kind: Literal["feature", "score"]
    name: str
    psi: float
    status: Literal["stable", "moderate", "major"]
    train_mean: float | None
    today_mean: float | None
    words: str


class DriftOut(BaseModel):
    model_version: str | None
    n_open: int
    threshold_psi: float
    max_feature_psi: float | None
    top_features: list[str]
    rows: list[DriftRow]


class MonitoringAlert(BaseModel):
    kind: str
    client_id: str | None = None
    invoice_id: str | None = None
    severity: str
    reason: str


class MonitoringOut(BaseModel):
    """How every stored run came true, drift since training, and retrain alerts."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2019-01-01", "runs": [{"run_id": "5c0f...", "as_of": "2018-12-01", "model_version": "7",
                                          "n_invoices": 3100, "window_days": 31, "auc_p_late": 0.81,
                                          "mae_days": 6.2, "weekly_wape": 0.21, "weeks": []}],
        "versions": [], "drift": {"model_version": "7", "n_open": 3200, "threshold_psi": 0.25,
                                  "max_feature_psi": 0.08, "top_features": [], "rows": []},
        "alerts": []}]})

    as_of: date
    runs: list[MonitoringRun]
    versions: list[MonitoringVersion]
    drift: DriftOut
    alerts: list[MonitoringAlert]

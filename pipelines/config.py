"""Training configuration: a validated YAML file, so a typo fails at load time, not after a fit.

``load_config(path)`` reads a YAML file (``pipelines/default.yaml`` when ``path`` is None) into a
``TrainingConfig``. Unknown keys are rejected with the closest valid name, LightGBM parameter names
included (LightGBM itself only warns about a misspelt parameter and trains with its default).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.signals import FEATURE_GROUPS
from models.hazard import DEFAULT_EDGES, PaymentDateModel
from models.monitoring import MonitoringConfig

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = PACKAGE_DIR / "default.yaml"
QUICK_CONFIG = PACKAGE_DIR / "quick.yaml"
"""A small, fast configuration for demos, notebooks and tests."""

LGBM_PARAMS = frozenset({
    "boosting_type", "class_weight", "colsample_bytree", "importance_type", "learning_rate", "max_depth",
    "min_child_samples", "min_child_weight", "min_split_gain", "n_estimators", "n_jobs", "num_leaves",
    "objective", "reg_alpha", "reg_lambda", "subsample", "subsample_for_bin", "subsample_freq",
    # LightGBM core parameters commonly passed through the sklearn API
    "verbose", "verbosity", "max_bin", "min_data_in_bin", "force_col_wise", "force_row_wise",
    "extra_trees", "path_smooth", "cat_smooth", "cat_l2", "max_cat_threshold", "min_data_per_group",
    "linear_tree", "deterministic", "num_threads", "feature_fraction_bynode", "bagging_seed",
    "feature_fraction_seed", "scale_pos_weight", "is_unbalance",
})
"""LightGBM parameter names accepted in ``hazard_params`` and ``risk_params``."""

RESERVED_PARAMS = frozenset({"random_state", "seed"})
"""Set by ``model.random_state``; refused in the parameter dicts so there is one place for the seed."""


class ConfigError(ValueError):
    """A training configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_lgbm(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    bad = []
    for key in params:
        if key in RESERVED_PARAMS:
            bad.append(f"{key!r} is set by model.random_state")
        elif key not in LGBM_PARAMS:
            near = difflib.get_close_matches(key, sorted(LGBM_PARAMS), n=1)
            bad.append(f"unknown LightGBM parameter {key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    if bad:
        raise ValueError("; ".join(bad))
    return dict(params)


class PaymentOptions(_Strict):
    """``PaymentDateModel`` options beyond its LightGBM parameters (``models.hazard``)."""

    refit_full: bool = Field(default=False, description="Refit on the held-out slice too, with the early-stopped "
                             "number of trees.")
    calibration_groups: tuple[int, ...] = Field(default=(), description="Days-overdue upper bounds of the groups "
                                                "that get a calibration map of their own.")
    recency_halflife_days: float | None = Field(default=None, gt=0, description="Half-life of a snapshot's weight, "
                                                "in days before the training day (None: equal weights).")
    exclude_inputs: tuple[str, ...] = Field(default=(), description="Inputs the payment-date model does not use "
                                            "(invoice, client or bin columns, e.g. h_month).")
    calibration_slice: Literal["held_out", "all", "cross_fit", "mixed"] = Field(
        default="held_out", description="Rows the calibration map is fitted on: the held-out last slice, every "
        "snapshot (followed up to the training day), or every snapshot predicted out of sample (cross_fit_folds "
        "folds of the clients, each by a model fitted on the others), or mixed: held-out maps up to 30 days overdue, "
        "cross-fitted maps beyond.")
    cross_fit_folds: int = Field(default=2, ge=2, le=10, description="Folds of clients the cross-fitted "
                                 "calibration predicts each from a sibling model fitted on the others (each "
                                 "fold costs one more fit).")
    calibration_strength: tuple[float, ...] = Field(default=(), description="Per calibration group (the groups "
                                                    "of calibration_groups, in order, and one more past the last), "
                                                    "the share of its map's correction applied, 0 to 1 (1 past the end).")
    horizon_days: int = Field(default=365, ge=30, le=730, description="Forecasts stop this many days after as_of.")
    mixture: Literal["model", "model_and_siblings", "siblings"] = Field(
        default="model", description="What predicts the raw payment-date CDF: the booster alone, the mean of "
        "its CDF and those of the cross-fit siblings the calibration was read from, or the siblings' mean alone "
        "(no booster fitted on every client). Both need calibration_slice cross_fit; each sibling adds its trees "
        "to every score.")

    @model_validator(mode="after")
    def _strengths(self):
        s = self.calibration_strength
        if any(not 0.0 <= x <= 1.0 for x in s):
            raise ValueError(f"calibration_strength: every value must be between 0 and 1; got {list(s)}.")
        if len(s) > len(self.calibration_groups) + 1:
            raise ValueError(f"calibration_strength holds {len(s)} values for {len(self.calibration_groups) + 1} "
                             f"calibration groups (calibration_groups: {list(self.calibration_groups)}).")
        return self


class ModelConfig(_Strict):
    """``EncaisseModel`` parameters (see ``models.scorer.EncaisseModel`` for their meaning)."""

    extra_attributes: tuple[str, ...] = Field(default=(), description="Mapped extra invoice columns used as features.")
    include_suspected_leaks: bool = Field(default=False, description="Also use export-time attributes.")
    snapshot_freq_days: int = Field(default=14, ge=1, description="Days between training snapshots.")
    max_snapshots: int | None = Field(default=None, ge=4, description="Most recent snapshots kept (None: all).")
    label_window_days: int = Field(default=45, ge=1, description="Outcome days a risk label needs.")
    calibration_days: int = Field(default=63, ge=1, description="Risk calibration slice, days.")
    hazard_holdout_days: int = Field(default=42, ge=1, description="Payment-date early-stopping slice, days; "
                                     "also the validation period.")
    hazard_params: dict[str, Any] | None = Field(default=None, description="LightGBM parameters, payment-date model.")
    risk_params: dict[str, Any] | None = Field(default=None, description="LightGBM parameters, risk models.")
    risk_bags: int = Field(default=1, ge=1, le=10, description="Boosters averaged in each risk model, each with "
                           "its own seed (models.risk.CalibratedRisk).")
    late_blend: float = Field(default=0.5, ge=0.0, le=1.0, description="Share of the payment-date model's "
                              "P(paid after the due date) in the log-odds of p_late (0: the late classifier alone).")
    very_late_blend: float = Field(default=0.5, ge=0.0, le=1.0, description="The same for p_very_late and the "
                                   "payment-date model's P(paid more than 30 days after the later of the due date "
                                   "and the day scored).")
    max_training_rows: int | None = Field(default=300_000, ge=1_000, description="Budget of snapshot rows; above "
                                          "it a stable sample of whole clients is trained on (None: no limit).")
    random_state: int = Field(default=0, ge=0, description="Seed.")
    bin_edges: tuple[int, ...] = Field(default=DEFAULT_EDGES, min_length=3, description="Payment-date bins, edges "
                                       "in days past due (models.hazard.DEFAULT_EDGES).")
    payment_options: PaymentOptions = PaymentOptions()
    recalibrate: bool = Field(default=True, description="Recalibrate the payment-date CDF (payment_options."
                              "calibration_slice says on which rows).")
    feature_groups: tuple[Literal[FEATURE_GROUPS], ...] = Field(
        default=(), description="Optional feature groups (features.signals): 'stuck' (the client pays around "
        "the invoice), 'client_effect' (the client's recency-weighted, shrunk delay), 'pay_calendar' (the "
        "client's usual payment day of the month).")

    @field_validator("hazard_params")
    @classmethod
    def _hazard(cls, v):
        return _check_lgbm(v)

    @field_validator("risk_params")
    @classmethod
    def _risk(cls, v):
        return _check_lgbm(v)

    @field_validator("bin_edges")
    @classmethod
    def _bins(cls, v):
        if v != tuple(sorted(set(v))) or v[0] >= 0 or v[-1] <= 0:
            raise ValueError("bin_edges must be increasing, with some edges before the due date (< 0) and some "
                             f"after it (> 0); got {list(v)}")
        return v

    @model_validator(mode="after")
    def _slices(self):
        if self.hazard_holdout_days < self.snapshot_freq_days:
            raise ValueError(
                f"hazard_holdout_days ({self.hazard_holdout_days}) must be at least snapshot_freq_days "
                f"({self.snapshot_freq_days}), or the held-out slice holds no snapshot."
            )
        if self.label_window_days < self.hazard_holdout_days:
            raise ValueError(
                f"label_window_days ({self.label_window_days}) must be at least hazard_holdout_days "
                f"({self.hazard_holdout_days}): the risk models would be calibrated on the snapshots `encaisse train` "
                "validates them on. Raise label_window_days or lower hazard_holdout_days."
            )
        problem = PaymentDateModel(**self.payment_options.model_dump()).mixture_problem(self.recalibrate)
        if problem:
            raise ValueError(problem)
        return self

    def estimator_params(self) -> dict[str, Any]:
        """Keyword arguments for ``EncaisseModel``."""
        return self.model_dump()


class ValidationConfig(_Strict):
    """How ``encaisse train`` judges a challenger against the champion on the latest period.

    The challenger is promoted when, on its own validation rows, its ``primary_metric`` (lower is
    better) beats the champion's by more than ``min_improvement`` *and* its ``auc_p_late`` is not
    more than ``auc_tolerance`` below the champion's (the guard keeps a better payment-date model
    from slipping through with a worse risk ranking).
    """

    primary_metric: Literal["mae_days", "brier_p_late", "pinball_days"] = "mae_days"
    min_improvement: float = Field(default=0.0, ge=0.0)
    auc_tolerance: float = Field(default=0.01, ge=0.0, le=1.0)
    min_rows: int = Field(default=20, ge=1)


class TuneConfig(_Strict):
    """``encaisse tune``: time-ordered folds ``as_of - k * fold_step_days``, oldest first."""

    n_folds: int = Field(default=4, ge=2, le=12, description="Cutoffs the objective is averaged over (never one).")
    fold_step_days: int = Field(default=28, ge=1)
    seed: int = Field(default=0, ge=0)
    metric: Literal["pinball_days", "mae_days", "brier_p_late"] = Field(
        default="pinball_days", description="The objective, averaged over the folds (lower is better).")


class TrainingConfig(_Strict):
    """The whole training configuration."""

    experiment: str = Field(default="encaisse", min_length=1, description="MLflow experiment name.")
    model: ModelConfig = ModelConfig()
    validation: ValidationConfig = ValidationConfig()
    tune: TuneConfig = TuneConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    def with_model(self, **changes: Any) -> "TrainingConfig":
        """A copy with some model parameters changed (validated again)."""
        model = ModelConfig(**{**self.model.model_dump(), **changes})
        return TrainingConfig(**{**self.model_dump(), "model": model.model_dump()})

    def to_yaml(self) -> str:
        """The configuration as YAML, loadable with ``load_config``."""
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False)


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"Invalid training configuration {source}:"]
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = TrainingConfig
            for part in e["loc"][:-1]:
                ann = parent.model_fields.get(str(part))
                parent = ann.annotation if ann is not None and isinstance(ann.annotation, type) else None
                if parent is None:
                    break
            known = sorted(parent.model_fields) if parent is not None else []
            near = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else (f" (known keys: {', '.join(known)})" if known else "")
            lines.append(f"  {loc}: unknown key{hint}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc}: {msg} (got {e.get('input')!r})" if e["type"] != "value_error" else f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<dict>") -> TrainingConfig:
    """A ``TrainingConfig`` from a plain dict; raises ``ConfigError`` with one line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid training configuration {source}: expected a mapping at the top level, "
                          f"got {type(data).__name__}.")
    try:
        return TrainingConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def load_config(path: str | Path | None = None) -> TrainingConfig:
    """Load and validate a training configuration YAML (``pipelines/default.yaml`` when None).

    Raises:
        ConfigError: the file is missing, is not YAML, or has an unknown key or a bad value; the
            message names the key and the closest valid one.
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        raise ConfigError(f"Training configuration not found: {p}.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Training configuration {p} is not valid YAML: {exc}") from None
    return parse_config(data, str(p))


def save_config(config: TrainingConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML to ``path`` (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(config.to_yaml(), encoding="utf-8")
    return p

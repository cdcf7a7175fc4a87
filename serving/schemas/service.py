"""The served model, reloads, health and readiness, and the error body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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

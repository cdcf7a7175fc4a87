"""Request and response bodies, one family per entity (``InvoiceIn``, ``ScoreOut``, ...), with examples.

One module a resource: ``ledger`` (invoices, payments, writes), ``actions``, ``scores``, ``clients``
(a client, the worklist), ``forecast`` (forecast, KPIs, reminder effects), ``monitoring``, ``service``
(model, health, errors); ``fields`` holds the field types they share. Every body is importable from
here (``from serving.schemas import InvoiceIn``).

Types are strict enough that bad input is a 422 naming the field (dates within
:data:`FIRST_DAY`..:data:`LAST_DAY`, finite amounts, ids of at most 64 printable characters) and
loose where the ledger's own validation gives a better, row-level answer (a zero amount, a due date
before the issue date, an unknown currency are rejected rows, not schema errors).
"""

from __future__ import annotations

from serving.schemas.actions import ActionIn, ActionOut
from serving.schemas.clients import ClientOut, InvoiceScoreOut, WorklistOut
from serving.schemas.fields import FIRST_DAY, LAST_DAY, ActionStep, Amount, Day, Id, StrictIn, Text
from serving.schemas.forecast import ForecastOut, ForecastPeriod, KpisOut, UpliftOut, UpliftStep, UpliftWindow
from serving.schemas.ledger import INVOICE_EXAMPLE, InvoiceIn, InvoicesIn, PaymentIn, PaymentsIn, RejectedRow, WriteOut
from serving.schemas.monitoring import (DriftOut, DriftRow, MonitoringAlert, MonitoringOut, MonitoringRun,
                                        MonitoringVersion, MonitoringWeek)
from serving.schemas.scores import NotScored, ScoreOut, ScoreRequest, ScoresOut
from serving.schemas.service import ErrorOut, HealthOut, ModelOut, ReadyOut, ReloadOut

__all__ = [
    "FIRST_DAY", "LAST_DAY", "ActionStep", "Amount", "Day", "Id", "StrictIn", "Text",
    "INVOICE_EXAMPLE", "InvoiceIn", "InvoicesIn", "PaymentIn", "PaymentsIn", "RejectedRow", "WriteOut",
    "ActionIn", "ActionOut",
    "NotScored", "ScoreOut", "ScoreRequest", "ScoresOut",
    "ClientOut", "InvoiceScoreOut", "WorklistOut",
    "ForecastOut", "ForecastPeriod", "KpisOut", "UpliftOut", "UpliftStep", "UpliftWindow",
    "ErrorOut", "HealthOut", "ModelOut", "ReadyOut", "ReloadOut",
    "DriftOut", "DriftRow", "MonitoringAlert", "MonitoringOut", "MonitoringRun", "MonitoringVersion",
    "MonitoringWeek",
]

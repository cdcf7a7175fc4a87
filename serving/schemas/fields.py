"""The field types every body shares: days within range, ids, short texts, finite amounts, action steps."""

from __future__ import annotations

import functools
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ledger.contracts import ACTION_STEPS
from ledger.rules import ID_REFUSED

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


def _in_range(d: date) -> date:
    if not FIRST_DAY <= d <= LAST_DAY:
        raise ValueError(f"date must be between {FIRST_DAY} and {LAST_DAY}")
    return d


Day = Annotated[date, AfterValidator(_in_range), Field(examples=["2025-06-01"])]
"""A calendar day (ISO ``YYYY-MM-DD``)."""
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=f"^[^{ID_REFUSED}]+$")]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):  # JSON true/false would pass as 1.0/0.0
        raise ValueError("an amount is a number, not true or false")
    return value


Amount = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False, ge=-1e12, le=1e12)]
"""An amount in the document currency (the ledger rejects zero or negative ones, row by row)."""

@functools.cache
def known_action_steps() -> tuple[str, ...]:
    """The steps an action may carry: those the product reads, then the shipped dunning policy's own."""
    from models.policy import load_policy

    return ACTION_STEPS + tuple(sorted(load_policy().step_names() - set(ACTION_STEPS)))


def _known_step(step: str) -> str:
    if step not in known_action_steps():
        raise ValueError(f"unknown step {step!r}: one of {', '.join(known_action_steps())}")
    return step


ActionStep = Annotated[str, AfterValidator(_known_step), Field(
    description="The product's steps (" + ", ".join(ACTION_STEPS) + ") or a step of the dunning policy "
                "(e.g. instalment_call), as the worklist's next action names it.", examples=["call"])]


class StrictIn(BaseModel):
    """A request body: an unknown field is a 422, not silently dropped."""


    model_config = ConfigDict(extra="forbid")

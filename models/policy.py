"""Scenario-intensity policy: which dunning ladder each client gets, and the next step per invoice.

Good payers who would pay anyway are not chased; risky clients get earlier, firmer contact;
clients in temporary difficulty get a payment plan; a dunning block or an open dispute stops the
ladder. The policy is data: a YAML file validated by :class:`Policy` (``extra="forbid"``, so a
typo fails at load), shipped by default as ``models/policies/default.yaml``.

A policy has **scenarios** (ladders of dunning steps, offsets in days relative to the due date,
negative = before it) and **profiles** (who gets which scenario). Profiles are tried in ascending
``priority``; the first whose conditions all hold is chosen; the last one has no conditions and
takes every client left.

Score-frame contract (produced by the risk models; any extra column is ignored):

* per client, for :func:`models.dunning.assign_profiles` (:data:`CLIENT_SCORE_COLUMNS`, all required):
  ``client_id``; ``p_late_mean`` (mean probability of late payment over its open invoices, 0-1);
  ``p_very_late_max`` (highest probability of a very late payment, 0-1); ``overdue_share``
  (share of its open amount past due, 0-1); ``open_amount`` (currency units);
  ``broken_promises`` (count); ``days_since_last_payment`` (days; empty = never paid);
  ``strategic`` (bool); ``in_difficulty`` (bool). Optional: ``in_payment_plan`` (bool, default
  False). Missing numbers make a condition on them false; missing booleans count as False.
* per invoice, for :func:`models.dunning.next_steps` (:data:`INVOICE_SCORE_COLUMNS`, all required):
  ``invoice_id, client_id, amount, due_date, p_late, p_very_late``. Optional: ``paid_date``
  (rows paid before ``as_of`` are skipped), ``dunning_block`` (non-empty = blocked) and
  ``disputed`` (bool), both read as the current state known by the caller.

Actions (the canonical ``actions`` table) drive :func:`models.dunning.next_steps`; only those dated before
``as_of`` count. Ladder steps are done when an action on the invoice carries the step's name.
Other recognised steps: ``dispute`` / ``dispute_resolved`` (see
:func:`features.kpis.build_open_disputes`), ``dunning_block`` / ``dunning_unblock`` (invoice or
client level), ``promise`` (with ``promise_date``), ``payment_plan`` (one action per instalment,
``promise_date`` = instalment date).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policies" / "default.yaml"

CLIENT_SCORE_COLUMNS = (
    "client_id", "p_late_mean", "p_very_late_max", "overdue_share", "open_amount", "broken_promises",
    "days_since_last_payment", "strategic", "in_difficulty",
)
OPTIONAL_CLIENT_COLUMNS = {"in_payment_plan": False}
INVOICE_SCORE_COLUMNS = ("invoice_id", "client_id", "amount", "due_date", "p_late", "p_very_late")

BOOL_FIELDS = frozenset({"strategic", "in_difficulty", "in_payment_plan"})
NUMERIC_FIELDS = frozenset({"p_late_mean", "p_very_late_max", "overdue_share", "open_amount", "broken_promises",
                            "days_since_last_payment"})
CLIENT_FIELDS = BOOL_FIELDS | NUMERIC_FIELDS
"""Client facts a profile condition may test."""

Channel = Literal["email", "sms", "call", "letter", "formal_notice", "agency"]
Op = Literal[">=", ">", "<=", "<", "=="]

NO_ACTION_BLOCK = "none (dunning block)"
NO_ACTION_DONE = "none (ladder complete)"
RESOLVE_DISPUTE = "resolve dispute"
WAIT_PROMISE = "wait (promise to pay)"
REVIEW_PLAN = "review payment plan"


class PolicyError(ValueError):
    """A policy file that cannot be loaded: unreadable, invalid YAML or failing validation."""


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "missing"
    return f"{float(v):g}"


@dataclass(frozen=True)
class _Interval:
    """A set of values as an interval; booleans are the points 0 and 1."""

    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def intersect(self, other: "_Interval") -> "_Interval":
        if self.lo > other.lo or (self.lo == other.lo and not self.lo_closed):
            lo, lo_c = self.lo, self.lo_closed
        else:
            lo, lo_c = other.lo, other.lo_closed
        if self.hi < other.hi or (self.hi == other.hi and not self.hi_closed):
            hi, hi_c = self.hi, self.hi_closed
        else:
            hi, hi_c = other.hi, other.hi_closed
        return _Interval(lo, lo_c, hi, hi_c)

    def within(self, other: "_Interval") -> bool:
        """Whether every value of ``self`` is in ``other``."""
        if self.empty():
            return True
        lo_ok = other.lo < self.lo or (other.lo == self.lo and (other.lo_closed or not self.lo_closed))
        hi_ok = other.hi > self.hi or (other.hi == self.hi and (other.hi_closed or not self.hi_closed))
        return lo_ok and hi_ok


_ALL_NUMBERS = _Interval(-math.inf, False, math.inf, False)
_ALL_BOOLS = _Interval(0.0, True, 1.0, True)


class Condition(BaseModel):
    """One test on a client fact, e.g. ``{field: p_very_late_max, op: ">=", value: 0.30}``."""

    model_config = ConfigDict(extra="forbid")

    field: str
    op: Op
    value: bool | float

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        if v not in CLIENT_FIELDS:
            raise ValueError(f"unknown client field {v!r}; expected one of {sorted(CLIENT_FIELDS)}")
        return v

    @model_validator(mode="after")
    def _typed(self) -> "Condition":
        if self.field in BOOL_FIELDS:
            if self.op != "==" or not isinstance(self.value, bool):
                raise ValueError(f"{self.field!r} is a yes/no fact: write op '==' and value true or false; "
                                 f"got {self.op!r} {self.value!r}")
        elif isinstance(self.value, bool):
            raise ValueError(f"{self.field!r} is a number: compare it with a number; got {self.value!r}")
        return self

    def text(self) -> str:
        return f"{self.field} {self.op} {_fmt(self.value)}"

    def interval(self) -> _Interval:
        if self.field in BOOL_FIELDS:
            x = 1.0 if self.value else 0.0
            return _Interval(x, True, x, True)
        v = float(self.value)
        return {
            ">=": _Interval(v, True, math.inf, False),
            ">": _Interval(v, False, math.inf, False),
            "<=": _Interval(-math.inf, False, v, True),
            "<": _Interval(-math.inf, False, v, False),
            "==": _Interval(v, True, v, True),
        }[self.op]

    def evaluate(self, values: pd.Series) -> pd.Series:
        """Boolean mask; a missing value never satisfies a numeric condition."""
        if self.field in BOOL_FIELDS:
            return values.astype(bool) == self.value
        v = float(self.value)
        ops = {">=": values >= v, ">": values > v, "<=": values <= v, "<": values < v, "==": values == v}
        return ops[self.op].fillna(False).astype(bool)


class Step(BaseModel):
    """A dunning step: what to send, how, and when relative to the due date (or instalment date)."""

    model_config = ConfigDict(extra="forbid")

    offset_days: int = Field(description="Days after the due date (negative = before it).")
    step: str = Field(min_length=1, description="Step name, as recorded in actions.step.")
    channel: Channel
    template: str = Field(min_length=1, description="Message or script template id.")

    def label(self) -> str:
        return f"{self.step!r} (J{self.offset_days:+d})"


class Scenario(BaseModel):
    """A dunning ladder. ``plan_steps`` (offsets relative to each payment-plan instalment date)
    take over once a payment plan is agreed for the invoice or client."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    steps: list[Step] = Field(min_length=1)
    plan_steps: list[Step] = Field(default_factory=list)


class Profile(BaseModel):
    """Who gets a scenario: clients for whom every condition in ``when`` holds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    priority: int = Field(description="Lower is tried first; unique across profiles.")
    scenario: str
    description: str = ""
    when: list[Condition] = Field(default_factory=list)

    def reason(self, row: pd.Series) -> str:
        if not self.when:
            return "no earlier profile matched"
        return "; ".join(f"{c.field} {_fmt(row[c.field])} {c.op} {_fmt(c.value)}" for c in self.when)

    def region(self) -> dict[str, _Interval]:
        """The set of clients this profile's conditions allow, field by field."""
        out: dict[str, _Interval] = {}
        for c in self.when:
            base = out.get(c.field, _ALL_BOOLS if c.field in BOOL_FIELDS else _ALL_NUMBERS)
            out[c.field] = base.intersect(c.interval())
        return out


NEVER_HELD_BACK_CHANNELS = frozenset({"formal_notice", "agency"})
"""Steps on these channels are legal or contractual escalations: never held back as a control."""


class ControlGroups(BaseModel):
    """Randomized control groups of the dunning run (see :mod:`models.uplift`).

    A ``share`` of the eligible (client, step) decisions of each testable step is held back, chosen by
    a hash of the client, the step and ``salt``. Formal notices, agency handovers and payment-plan
    steps are never testable.
    """

    model_config = ConfigDict(extra="forbid")

    share: float = Field(default=0.10, ge=0.0, le=0.5,
                         description="Share of eligible decisions held back (0 = no control group).")
    salt: str | None = Field(default=None, min_length=8, max_length=128,
                             description="Hash salt; empty = a random one kept in the workspace (control-salt).")
    testable_steps: list[str] = Field(default_factory=lambda: ["preventive", "reminder_1", "reminder_2"],
                                      description="Steps that may be held back.")
    window_days: Literal[7, 14, 30] = Field(default=14, description="Window whose uplift feeds the worklist.")
    min_decisions: int = Field(default=300, ge=1,
                               description="Decisions per arm after which the measured uplift replaces the "
                                           "default even when its interval still includes zero.")


def _shadow_reason(earlier: Profile, later: Profile) -> str | None:
    """Why ``earlier`` matches every client ``later`` matches (so ``later`` is never chosen), or None."""
    region = later.region()
    parts = []
    for c in earlier.when:
        own = region.get(c.field, _ALL_BOOLS if c.field in BOOL_FIELDS else _ALL_NUMBERS)
        if not own.within(c.interval()):
            return None
        implied_by = [x.text() for x in later.when if x.field == c.field]
        parts.append(f"{' and '.join(implied_by)} implies {c.text()}")
    if not parts:
        return f"{earlier.name!r} has no conditions and matches every client"
    return "; ".join(parts)


def _check_steps(scenario_name: str, kind: str, steps: list[Step]) -> list[str]:
    problems = []
    for a, b in zip(steps, steps[1:]):
        if b.offset_days <= a.offset_days:
            problems.append(f"scenario {scenario_name!r}: {kind} out of order: {b.label()} comes after "
                            f"{a.label()}; list steps by strictly increasing offset_days")
    return problems


class Policy(BaseModel):
    """A dunning policy: scenarios (ladders) and the profiles that select them."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    promise_grace_days: int = Field(default=3, ge=0, description="Days after a promised date before resuming.")
    formal_notice_days: int = Field(default=8, ge=0,
                                    description="Days a formal notice gives to pay, before any agency step.")
    scenarios: dict[str, Scenario] = Field(min_length=1)
    profiles: list[Profile] = Field(min_length=1)
    control: ControlGroups = Field(default_factory=ControlGroups)

    @model_validator(mode="after")
    def _consistent(self) -> "Policy":
        problems: list[str] = []
        names: dict[str, Profile] = {}
        prios: dict[int, Profile] = {}
        for p in self.profiles:
            if p.name in names:
                problems.append(f"two profiles are named {p.name!r}")
            names[p.name] = p
            if p.priority in prios:
                problems.append(f"profiles {prios[p.priority].name!r} and {p.name!r} have the same priority "
                                f"{p.priority}: the order between them is undefined; give each a distinct priority")
            prios.setdefault(p.priority, p)
            if p.scenario not in self.scenarios:
                problems.append(f"profile {p.name!r} uses unknown scenario {p.scenario!r}; "
                                f"scenarios are {sorted(self.scenarios)}")
        for name, sc in self.scenarios.items():
            problems += _check_steps(name, "steps", sc.steps)
            problems += _check_steps(name, "plan_steps", sc.plan_steps)
            seen: set[str] = set()
            for s in sc.steps + sc.plan_steps:
                if s.step in seen:
                    problems.append(f"scenario {name!r}: step name {s.step!r} is used twice; step names "
                                    "identify done actions and must be unique in a scenario")
                seen.add(s.step)
            notices = [s for s in sc.steps if s.channel == "formal_notice"]
            for s in sc.steps:
                if s.channel in ("formal_notice", "agency") and s.offset_days <= 0:
                    problems.append(f"scenario {name!r}: {s.label()} uses channel {s.channel!r} before the "
                                    "invoice is past due; these steps need offset_days > 0")
                if s.channel == "agency":
                    before = [n for n in notices if n.offset_days + self.formal_notice_days <= s.offset_days]
                    if not before:
                        problems.append(
                            f"scenario {name!r}: agency step {s.label()} needs a formal_notice step at least "
                            f"{self.formal_notice_days} days before it (the notice gives that long to pay)")
        problems += self._control_problems()
        ordered = self.ordered_profiles
        for p in ordered:
            if any(r.empty() for r in p.region().values()):
                problems.append(f"profile {p.name!r} can never be selected: its conditions contradict each "
                                f"other ({', '.join(c.text() for c in p.when)})")
        if ordered[-1].when:
            problems.append(f"profile {ordered[-1].name!r} is tried last but has conditions; the last profile "
                            "must have no conditions (when: []) so that every client gets one")
        for i, later in enumerate(ordered):
            for earlier in ordered[:i]:
                why = _shadow_reason(earlier, later)
                if why:
                    problems.append(f"profile {later.name!r} (priority {later.priority}) can never be selected: "
                                    f"profile {earlier.name!r} (priority {earlier.priority}) is tried first and "
                                    f"matches every client it would match ({why})")
                    break
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _control_problems(self) -> list[str]:
        ladder = {s.step: s for sc in self.scenarios.values() for s in sc.steps}
        plan = {s.step for sc in self.scenarios.values() for s in sc.plan_steps}
        plan |= {s.step for sc in self.scenarios.values() if sc.plan_steps for s in sc.steps}
        problems = []
        for name in self.control.testable_steps:
            if name not in ladder and name not in plan:
                problems.append(f"control.testable_steps names {name!r}, which no scenario has; "
                                f"ladder steps are {sorted(ladder)}")
            elif name in plan:
                problems.append(f"control.testable_steps names {name!r}, a payment-plan step: those are never held back")
            elif ladder[name].channel in NEVER_HELD_BACK_CHANNELS:
                problems.append(f"control.testable_steps names {name!r}, a {ladder[name].channel} step: formal "
                                "notices and agency handovers are never held back")
        return problems

    def step_names(self) -> set[str]:
        """Every step name the scenarios use (ladders and payment-plan steps): actions carrying one count
        as that step done."""
        return {s.step for sc in self.scenarios.values() for s in sc.steps + sc.plan_steps}

    @property
    def ordered_profiles(self) -> list[Profile]:
        return sorted(self.profiles, key=lambda p: p.priority)

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        raise KeyError(f"policy {self.name!r} has no profile {name!r}; it has {[p.name for p in self.profiles]}")


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy YAML file (default: the shipped ``models/policies/default.yaml``).

    Raises:
        PolicyError: the file is missing, is not valid YAML, or fails validation; the message names
            the file and every problem found.
    """
    path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a mapping (name, scenarios, profiles); got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"invalid policy file {path}:\n{exc}") from exc

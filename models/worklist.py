"""The collectors' worklist: client scores for the policy, cases ranked by expected cash per minute.

A collector's day is a few hours of calls and emails. The worklist spends them where a contact
*now* brings the most cash that would otherwise come in very late (or never), per minute of work:

    expected_gain  = amount_remaining x p_very_late x uplift(step, profile)
    gain_per_minute = expected_gain / effort_minutes(channel of the next action)

not by amount x days overdue, which chases big invoices of clients who pay anyway and old debts
no call will move. Rows with no action due today (dunning block, open dispute, promise to pay not
yet due, trusted payer who pays on its own, next step in the future, ladder complete) stay in the
frame with ``priority`` None, a ``queue`` telling where they belong and a plain-words ``why``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.snapshots import VERY_LATE_DAYS
from ledger.contracts import Ledger, isin
from models.policy import (
    CLIENT_SCORE_COLUMNS,
    NO_ACTION_BLOCK,
    NO_ACTION_DONE,
    RESOLVE_DISPUTE,
    REVIEW_PLAN,
    WAIT_PROMISE,
)

# --- client scores --------------------------------------------------------------------------------

DIFFICULTY_OVERDUE_DAYS = 30
"""An open invoice this many days past due that received a partial payment signals difficulty."""

DIFFICULTY_PARTIAL_WINDOW_DAYS = 90
"""... if that partial payment came in during the last this-many days before ``as_of``."""

PLAN_ACTIVE_DAYS = 30
"""A payment plan counts as running until this many days after its last instalment date."""


def build_client_scores(
    scores: pd.DataFrame, features: pd.DataFrame, ledger: Ledger, as_of: pd.Timestamp | str
) -> pd.DataFrame:
    """Per-client scores and facts for :func:`models.dunning.assign_profiles`.

    Args:
        scores: ``EncaisseModel.score(ledger, as_of)`` (one row per open invoice).
        features: ``EncaisseModel.features(ledger, as_of)`` (the same invoices, with ``c_*``).
        ledger: the ledger; only what is known at the start of ``as_of`` is read.
        as_of: the scoring day.

    Returns:
        One row per client with an open invoice, with :data:`models.policy.CLIENT_SCORE_COLUMNS`
        then ``in_payment_plan, credit_limit, credit_use, n_open, overdue_amount``:

        * ``p_late_mean``: mean P(late) over the client's open invoices; ``p_very_late_max``: max.
        * ``overdue_share``, ``open_amount``, ``broken_promises``, ``days_since_last_payment``,
          ``credit_use``: the client features ``c_overdue_share`` (0 when nothing is open),
          ``c_open_amount`` (currency units, after partial payments), ``c_promises_broken`` (0
          when no promise was ever made), ``c_days_since_last_payment`` (days, NaN = never paid),
          ``c_credit_use`` (open / credit limit).
        * ``strategic``: the client master flag (missing = False).
        * ``in_payment_plan``: a ``payment_plan`` action dated before ``as_of`` whose last
          instalment (``promise_date``) is at most :data:`PLAN_ACTIVE_DAYS` days in the past
          (an action without instalment date counts for that long after it was recorded).
        * ``in_difficulty``: ``in_payment_plan``, or *partial payments with long delays*: an open
          invoice more than :data:`DIFFICULTY_OVERDUE_DAYS` days past due received a partial
          payment in the last :data:`DIFFICULTY_PARTIAL_WINDOW_DAYS` days. A client who pays in
          bits while late wants to pay and cannot pay in full: the case for a payment plan rather
          than a firmer ladder. Both facts are dated before ``as_of``.
    """
    d = pd.Timestamp(as_of).normalize()
    known = ledger.known_at(d)
    clients = pd.Index(pd.unique(scores["client_id"]), name="client_id")
    g = scores.groupby("client_id")
    out = pd.DataFrame(index=clients)
    out["p_late_mean"] = g["p_late"].mean()
    out["p_very_late_max"] = g["p_very_late"].max()
    c = features.drop_duplicates("client_id").set_index("client_id").reindex(clients)

    def col(name: str, fill: float | None = None) -> pd.Series:
        s = c[name].astype("float64") if name in c.columns else pd.Series(np.nan, index=clients)
        return s.fillna(fill) if fill is not None else s

    out["overdue_share"] = col("c_overdue_share", 0.0)
    out["open_amount"] = col("c_open_amount", 0.0)
    out["broken_promises"] = col("c_promises_broken", 0.0)
    out["days_since_last_payment"] = col("c_days_since_last_payment")
    master = known.clients.drop_duplicates("client_id").set_index("client_id").reindex(clients)
    out["strategic"] = master["strategic"].astype("boolean").fillna(False).astype(bool)

    act = known.actions
    plan = act[act["step"] == "payment_plan"]
    if len(plan):
        last_day = plan["promise_date"].fillna(plan["action_date"])
        active = plan[last_day + pd.Timedelta(days=PLAN_ACTIVE_DAYS) >= d]
        in_plan = isin(clients, active["client_id"])
    else:
        in_plan = np.zeros(len(clients), dtype=bool)
    out["in_payment_plan"] = in_plan

    inv = known.invoices
    open_inv = inv[(inv["doc_type"] == "invoice") & inv["paid_date"].isna()
                   & (inv["due_date"] < d - pd.Timedelta(days=DIFFICULTY_OVERDUE_DAYS))]
    pay = known.payments
    recent = pay[pay["paid_date"] >= d - pd.Timedelta(days=DIFFICULTY_PARTIAL_WINDOW_DAYS)]
    struggling = open_inv.loc[isin(open_inv["invoice_id"], recent["invoice_id"]), "client_id"]
    out["in_difficulty"] = out["in_payment_plan"].to_numpy() | isin(clients, struggling)

    out["credit_limit"] = master["credit_limit"].astype("float64")
    out["credit_use"] = col("c_credit_use")
    out["n_open"] = g.size()
    out["overdue_amount"] = col("c_overdue_amount", 0.0)
    out = out.reset_index()
    extra = [x for x in out.columns if x not in CLIENT_SCORE_COLUMNS]
    return out[list(CLIENT_SCORE_COLUMNS) + extra]


# --- ranking --------------------------------------------------------------------------------------

UPLIFT_BY_STEP: dict[str, float] = {
    "preventive": 0.05,
    "pre_due_call": 0.15,
    "reminder_1": 0.08,
    "reminder_2": 0.06,
    "call": 0.20,
    "formal_notice": 0.25,
    "agency": 0.15,
    "payment_plan_offer": 0.30,
    "plan_offer_followup": 0.10,
    "plan_review_call": 0.15,
    "instalment_notice": 0.05,
    "instalment_reminder": 0.06,
    "instalment_call": 0.20,
    REVIEW_PLAN: 0.15,
}
"""Chance that doing this step now turns a very late payment into a timely one (0-1).

These are planning defaults, to be replaced by uplift measured on the company's own actions (a
holdout of invoices not contacted) once there is one. Their order is what matters for ranking and
follows collection practice: a written reminder is cheap but easy to ignore (5-8 %; a pre-due
notice mostly catches invoices lost in approval circuits, 5 %); a call reaches a person who can
say yes or name the blocking issue (20 %; a pre-due call 15 %); a formal notice (mise en demeure,
8 days to pay) is the first legally weighted step and the one debtors answer most (25 %); handing
to an agency recovers a share net of fees, slowly (15 %); offering a payment plan to a client in
difficulty turns most "cannot pay" into instalments (30 %), its follow-ups less.
"""

UPLIFT_BY_CHANNEL: dict[str, float] = {
    "email": 0.05, "sms": 0.05, "letter": 0.08, "call": 0.20, "formal_notice": 0.25, "agency": 0.15,
}
"""Fallback uplift for steps not in :data:`UPLIFT_BY_STEP`, by channel."""

PROFILE_UPLIFT_FACTOR: dict[str, float] = {"trusted": 0.5}
"""Multiplier on the uplift per profile (default 1): a trusted payer's delay is mostly process
(approval, payment run), which a contact changes less often than for a client who is choosing
whom to pay."""

EFFORT_MINUTES: dict[str, float] = {
    "email": 2.0,
    "sms": 1.0,
    "letter": 5.0,
    "call": 12.0,
    "formal_notice": 15.0,
    "agency": 20.0,
    RESOLVE_DISPUTE: 30.0,
    REVIEW_PLAN: 12.0,
}
"""Collector minutes per action, by channel (or special action): a templated email is sent and
logged in about 2 minutes; a call takes 12 with dial attempts, the conversation and the note; a
formal notice needs the file checked and a registered letter (15); an agency handover a file (20);
a dispute needs the facts gathered with sales or operations (30)."""

DEFAULT_EFFORT_MINUTES = 5.0
"""Effort for an action whose channel is unknown."""

TRUSTED_PROFILES = ("trusted",)
"""Profiles of good payers who pay on their own."""

TRUSTED_MAX_P_VERY_LATE = 0.10
"""A trusted client's invoice below this P(very late) is not chased: it will be paid anyway."""

QUEUE_DUNNING = "dunning"
QUEUE_OVER_CAPACITY = "dunning (over capacity)"
QUEUE_LATER = "later"
QUEUE_PROMISE = "promise"
QUEUE_DISPUTE = "dispute"
QUEUE_BLOCKED = "blocked"
QUEUE_NO_CHASE = "no chase"
QUEUE_DONE = "ladder complete"

QUEUE_ORDER = (QUEUE_DUNNING, QUEUE_OVER_CAPACITY, QUEUE_LATER, QUEUE_PROMISE, QUEUE_DISPUTE,
               QUEUE_BLOCKED, QUEUE_NO_CHASE, QUEUE_DONE)
"""Order of the queues in the frame: today's dunning first, then what waits or goes elsewhere."""

UNASSIGNED = "unassigned"
"""Collector of clients without one."""

WORKLIST_COLUMNS = [
    "priority", "rank", "collector", "collector_priority", "queue", "invoice_id", "client_id", "amount",
    "amount_remaining", "currency", "due_date", "days_overdue", "p_late", "p_very_late", "expected_payment_date",
    "payment_date_low", "payment_date_high", "profile", "scenario", "next_action", "next_action_date",
    "channel", "uplift", "effort_minutes", "expected_gain", "gain_per_minute", "why", "reasons",
]
"""The worklist's columns, in order (other score columns follow)."""


def _money(x: float, currency: str | None) -> str:
    return f"{x:,.0f} {currency or ''}".strip()


def _portfolio(portfolios, clients: pd.Series, scores: pd.DataFrame) -> pd.Series:
    if portfolios is None:
        if "collector" in scores.columns:
            mapped = scores["collector"]
        else:
            mapped = pd.Series(None, index=clients.index, dtype=object)
    else:
        if isinstance(portfolios, pd.DataFrame):
            portfolios = portfolios.drop_duplicates("client_id", keep="last").set_index("client_id")["collector"]
        mapped = clients.map(portfolios)
    return mapped.astype(object).where(mapped.notna() & (mapped.astype(str).str.strip() != ""), UNASSIGNED)


def rank_worklist(
    scores: pd.DataFrame,
    features: pd.DataFrame | None,
    assignments: pd.DataFrame,
    steps: pd.DataFrame,
    as_of: pd.Timestamp | str,
    capacity: float | Mapping[str, float] | None = None,
    portfolios: Mapping[str, str] | pd.Series | pd.DataFrame | None = None,
    effort: Mapping[str, float] | None = None,
    uplift: Mapping[str, float] | None = None,
    measured: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Rank open invoices by the expected cash a contact brings now, per minute of collector time.

    ``expected_gain = amount_remaining x p_very_late x uplift(step, profile)`` (currency units):
    the cash that, without this action, would come more than 30 days late (or never) and that the
    action brings in on time with probability ``uplift``. Dividing by the minutes the next action
    takes (``effort``, :data:`EFFORT_MINUTES`) gives ``gain_per_minute``; today's dunning queue is
    sorted by it, descending. ``uplift(step, profile)`` = :data:`UPLIFT_BY_STEP` (else
    :data:`UPLIFT_BY_CHANNEL`) x :data:`PROFILE_UPLIFT_FACTOR`.

    Rows whose next action is not due today get ``priority`` None and go to another queue:

    * ``blocked``: dunning block; ``dispute``: an open dispute, for the dispute queue (resolve it
      before chasing); ``promise``: a promise to pay not yet due (wait until promise + grace);
    * ``no chase``: a trusted client (:data:`TRUSTED_PROFILES`) whose invoice has
      P(very late) < :data:`TRUSTED_MAX_P_VERY_LATE`: it will be paid anyway;
    * ``later``: the next step's date is after ``as_of``; ``ladder complete``: nothing left to do.

    Args:
        scores: ``EncaisseModel.score`` output (``invoice_id, client_id, amount, p_very_late,
            reasons``, ...); a ``collector`` column is the default portfolio.
        features: ``EncaisseModel.features`` for the same invoices, for ``i_paid_share`` (the share
            already received); None = nothing received.
        assignments: ``assign_profiles`` output (``client_id, profile, scenario``).
        steps: ``next_steps`` output (``invoice_id, next_action, next_action_date, channel``).
        as_of: the day the list is for.
        capacity: minutes per collector per day (one number for all, or per collector). Each
            collector's cases are taken in ranking order while their minutes fit; a case that would
            exceed what is left goes to ``dunning (over capacity)`` with priority None (a cheaper
            case after it may still fit the remaining minutes). None = no limit.
        portfolios: client -> collector (mapping, Series, or frame with ``client_id, collector``);
            default: the ``collector`` column of ``scores``; clients without one are
            ``'unassigned'``.
        effort: minutes per channel, overriding :data:`EFFORT_MINUTES` entries.
        uplift: uplift per step, overriding :data:`UPLIFT_BY_STEP` entries.
        measured: uplift measured on control groups per step (``models.uplift.measured_uplifts``): it
            replaces the default for its step (no profile factor: it is measured), and the ``why``
            says so; the other steps keep the planning default, and their ``why`` says that too.

    Returns:
        :data:`WORKLIST_COLUMNS` (then the other score columns), one row per invoice in ``steps``,
        sorted by queue (:data:`QUEUE_ORDER`) then gain per minute. ``priority`` is 1, 2, ... over
        the dunning queue of all collectors together, ``collector_priority`` within each
        collector's; ``rank`` orders every row (the whole list, for evaluation).
    """
    d = pd.Timestamp(as_of).normalize()
    eff = {**EFFORT_MINUTES, **(effort or {})}
    upl = {**UPLIFT_BY_STEP, **(uplift or {})}
    absent = [c for c in ("invoice_id", "client_id", "amount", "due_date", "p_very_late") if c not in scores.columns]
    if absent:
        raise ValueError(f"scores lack column(s) {absent}; rank_worklist needs invoice_id, client_id, amount, "
                         f"due_date and p_very_late (EncaisseModel.score output); got {list(scores.columns)}.")
    missing = sorted(set(steps["invoice_id"]) - set(scores["invoice_id"]))
    if missing:
        raise ValueError(f"{len(missing)} invoice(s) of steps have no score, e.g. {missing[:5]}; "
                         "pass the scores of every invoice next_steps was given.")
    wl = steps[["invoice_id", "next_action", "next_action_date", "channel"]].merge(
        scores.drop(columns=[c for c in ("next_action", "next_action_date", "channel", "profile", "scenario")
                             if c in scores.columns]),
        on="invoice_id", how="left", validate="one_to_one")
    prof = assignments.drop_duplicates("client_id", keep="last").set_index("client_id")
    wl["profile"] = wl["client_id"].map(prof["profile"])
    wl["scenario"] = wl["client_id"].map(prof["scenario"]) if "scenario" in prof.columns else None
    if features is not None and "i_paid_share" in features.columns:
        share = wl["invoice_id"].map(features.set_index("invoice_id")["i_paid_share"]).fillna(0.0)
    else:
        share = pd.Series(0.0, index=wl.index)
    wl["amount_remaining"] = wl["amount"].astype(float) * (1.0 - share.clip(0.0, 1.0))
    wl["due_date"] = pd.to_datetime(wl["due_date"])
    wl["next_action_date"] = pd.to_datetime(wl["next_action_date"])
    wl["days_overdue"] = ((d - wl["due_date"]).dt.days).clip(lower=0)
    wl["collector"] = _portfolio(portfolios, wl["client_id"], wl).to_numpy()

    action = wl["next_action"].astype(str)
    channel = wl["channel"].astype(object)
    measured = dict(measured or {})
    wl["uplift"] = [
        float(measured[a]["uplift"]) if a in measured else
        upl.get(a, UPLIFT_BY_CHANNEL.get(ch, 0.05) if isinstance(ch, str) else 0.05)
        * PROFILE_UPLIFT_FACTOR.get(p, 1.0)
        for a, ch, p in zip(action, channel, wl["profile"])
    ]
    wl["effort_minutes"] = [
        eff.get(a, eff.get(ch, DEFAULT_EFFORT_MINUTES) if isinstance(ch, str) else DEFAULT_EFFORT_MINUTES)
        for a, ch in zip(action, channel)
    ]
    wl["expected_gain"] = wl["amount_remaining"] * wl["p_very_late"].astype(float) * wl["uplift"]
    wl["gain_per_minute"] = wl["expected_gain"] / wl["effort_minutes"]

    trusted_ok = wl["profile"].isin(TRUSTED_PROFILES) & (wl["p_very_late"] < TRUSTED_MAX_P_VERY_LATE)
    queue = np.select(
        [action == NO_ACTION_BLOCK, action == RESOLVE_DISPUTE, action == WAIT_PROMISE, action == NO_ACTION_DONE,
         trusted_ok, wl["next_action_date"] > d],
        [QUEUE_BLOCKED, QUEUE_DISPUTE, QUEUE_PROMISE, QUEUE_DONE, QUEUE_NO_CHASE, QUEUE_LATER],
        default=QUEUE_DUNNING,
    )
    wl["queue"] = queue
    # No gain where no contact is planned; the later queue keeps its upcoming step's figures.
    off = ~wl["queue"].isin([QUEUE_DUNNING, QUEUE_LATER])
    wl.loc[off, ["expected_gain", "gain_per_minute"]] = np.nan

    # Dunning queue: best gain per minute first; ties by amount (bigger first), then id (stable).
    wl["_q"] = wl["queue"].map({q: i for i, q in enumerate(QUEUE_ORDER)})
    # Later queue: most expected gain first (what to prepare); dispute queue: biggest amount first.
    wl["_key"] = np.where(wl["queue"] == QUEUE_DUNNING, wl["gain_per_minute"],
                          np.where(wl["queue"] == QUEUE_LATER, wl["expected_gain"], wl["amount_remaining"]))
    wl = wl.sort_values(["_q", "_key", "amount_remaining", "invoice_id"], ascending=[True, False, False, True],
                        na_position="last", kind="stable").reset_index(drop=True)

    if capacity is not None:
        used: dict[str, float] = {}
        for i in wl.index[wl["queue"] == QUEUE_DUNNING]:
            who = wl.at[i, "collector"]
            limit = capacity.get(who, math.inf) if isinstance(capacity, Mapping) else float(capacity)
            spent = used.get(who, 0.0)
            if spent + wl.at[i, "effort_minutes"] > limit:
                wl.at[i, "queue"] = QUEUE_OVER_CAPACITY
            else:
                used[who] = spent + wl.at[i, "effort_minutes"]
        wl["_q"] = wl["queue"].map({q: i for i, q in enumerate(QUEUE_ORDER)})
        wl = wl.sort_values("_q", kind="stable").reset_index(drop=True)

    due = wl["queue"] == QUEUE_DUNNING
    wl["priority"] = pd.array([None] * len(wl), dtype="Int64")
    wl.loc[due, "priority"] = np.arange(1, int(due.sum()) + 1)
    wl["collector_priority"] = pd.array([None] * len(wl), dtype="Int64")
    wl.loc[due, "collector_priority"] = wl[due].groupby("collector").cumcount().to_numpy() + 1
    wl["rank"] = np.arange(1, len(wl) + 1)
    wl["why"] = _why_column(wl, measured)
    for name in WORKLIST_COLUMNS:  # score columns a caller may leave out (p_late, dates, reasons)
        if name not in wl.columns:
            wl[name] = None
    rest = [c for c in wl.columns if c not in WORKLIST_COLUMNS and not c.startswith("_")]
    return wl[WORKLIST_COLUMNS + rest]


def _why_column(wl: pd.DataFrame, measured: Mapping[str, Mapping] | None = None) -> list[str]:
    """The plain-words ``why`` of every row, from plain values (no row objects)."""
    measured = measured or {}
    n = len(wl)
    currency = wl["currency"].tolist() if "currency" in wl.columns else [None] * n
    dates = wl["next_action_date"]
    day_text = pd.Series(dates.dt.strftime("%Y-%m-%d"), index=wl.index).where(dates.notna(), "?").tolist()
    return [
        _why(queue, amount, cur if isinstance(cur, str) else None, p, action, channel, uplift, effort, overdue, day,
             measured.get(action))
        for queue, amount, cur, p, action, channel, uplift, effort, overdue, day in zip(
            wl["queue"].tolist(), wl["amount_remaining"].tolist(), currency, wl["p_very_late"].tolist(),
            wl["next_action"].tolist(), wl["channel"].tolist(), wl["uplift"].tolist(), wl["effort_minutes"].tolist(),
            wl["days_overdue"].tolist(), day_text)
    ]


def _why(queue: str, open_amount: float, cur: str | None, p_very_late: float, next_action, channel, uplift: float,
         effort: float, days_overdue, day: str, measured: Mapping | None = None) -> str:
    amount = _money(open_amount, cur)
    risk = f"{p_very_late:.0%} chance of paying 30+ days late"
    step = f"{next_action} ({channel})" if isinstance(channel, str) else str(next_action)
    if queue in (QUEUE_DUNNING, QUEUE_OVER_CAPACITY):
        gain = open_amount * p_very_late * uplift
        text = (f"expected gain {_money(gain, cur)} for {effort:g} min: {amount} open, {risk}, "
                f"{step} changes that {uplift:.0%} of the time")
        if measured is not None:
            text += (f" (measured on control groups, {measured['n_treated']} sent / {measured['n_control']} held "
                     f"back: {measured['why']})")
        else:
            text += " (planning default, not measured)"
        if days_overdue > 0:
            text += f"; {int(days_overdue)} day{'s' if days_overdue > 1 else ''} overdue"
        return text if queue == QUEUE_DUNNING else "over today's capacity; " + text
    if queue == QUEUE_BLOCKED:
        return f"dunning block: no reminder while it holds ({amount} open)"
    if queue == QUEUE_DISPUTE:
        return f"open dispute: for the dispute queue, resolve it before any reminder ({amount} open)"
    if queue == QUEUE_PROMISE:
        return f"promise to pay: wait until {day} before chasing ({amount} open)"
    if queue == QUEUE_NO_CHASE:
        return f"trusted payer, {risk}: pays on its own, not chased ({amount} open)"
    if queue == QUEUE_LATER:
        return f"nothing due today: next {step} on {day} ({amount} open, {risk})"
    return f"every step of the ladder is done ({amount} open, {risk})"


# --- evaluation -----------------------------------------------------------------------------------

def evaluate_worklist_capture(
    worklist: pd.DataFrame,
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    end: pd.Timestamp | str,
    top_share: float = 0.10,
) -> dict:
    """How much of the very-late money the top of the worklist holds, vs a static amount x age list.

    Outcome per worklist invoice, read from ``ledger`` up to (not including) ``end``, with
    ``t = max(due_date, as_of) + 30 days``: *very late* when paid after ``t`` (a ``paid_date`` in
    ``(t, end)``), or still unpaid at ``end`` when ``end > t``; *not very late* when paid on or
    before ``t``. **Censoring**: an invoice unpaid at ``end`` with ``end <= t`` (or paid on or after
    ``end``, which ``end`` does not yet show) has an unknown outcome: it keeps its place in both
    lists (a collector would have seen it) but its amount counts neither as very late nor in the
    total. Amounts are ``amount_remaining`` (else ``amount``) at ``as_of``.

    ``capture_top10`` = very-late amount among the first ``ceil(top_share x n)`` rows of the
    worklist (by ``rank``, else frame order) / very-late amount of all rows. The static baseline
    ranks the same invoices by ``amount x days overdue at as_of`` (not-yet-due invoices score 0),
    ties by amount, both descending.

    Returns:
        ``capture_top10``, ``capture_top10_static`` (None when nothing was very late),
        ``n_invoices``, ``n_top``, ``n_very_late``, ``n_censored``, ``very_late_amount``, ``as_of``,
        ``end``.
    """
    d = pd.Timestamp(as_of).normalize()
    e = pd.Timestamp(end).normalize()
    if e <= d:
        raise ValueError(f"end must be after as_of to observe outcomes; got as_of {d.date()}, end {e.date()}.")
    wl = worklist.sort_values("rank", kind="stable") if "rank" in worklist.columns else worklist
    wl = wl.reset_index(drop=True)
    amount = (wl["amount_remaining"] if "amount_remaining" in wl.columns else wl["amount"]).astype(float)
    paid = wl["invoice_id"].map(ledger.invoices.drop_duplicates("invoice_id").set_index("invoice_id")["paid_date"])
    paid = pd.to_datetime(paid).where(lambda s: s < e)
    due = pd.to_datetime(wl["due_date"])
    t = due.where(due > d, d) + pd.Timedelta(days=VERY_LATE_DAYS)
    very_late = (paid.notna() & (paid > t)) | (paid.isna() & (e > t))
    censored = paid.isna() & (e <= t)
    bad = amount.where(very_late & ~censored, 0.0)
    total = float(bad.sum())
    n = len(wl)
    n_top = int(math.ceil(top_share * n)) if n else 0

    days_overdue = (d - due).dt.days.clip(lower=0)
    static_order = pd.DataFrame({"s": amount * days_overdue, "a": amount}).sort_values(
        ["s", "a"], ascending=False, kind="stable").index

    def capture(order) -> float | None:
        return None if total <= 0 else float(bad.loc[order[:n_top]].sum() / total)

    return {
        "capture_top10": capture(wl.index),
        "capture_top10_static": capture(static_order),
        "n_invoices": n, "n_top": n_top, "n_very_late": int((very_late & ~censored).sum()),
        "n_censored": int(censored.sum()), "very_late_amount": total,
        "as_of": str(d.date()), "end": str(e.date()),
    }

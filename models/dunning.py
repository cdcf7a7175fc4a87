"""The policy applied: each client's profile and scenario, and each open invoice's next dunning step.

The policy itself (scenarios, profiles, conditions) and the score-frame contract these functions
read are in ``models.policy``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.kpis import build_open_disputes
from models.policy import (
    BOOL_FIELDS,
    CLIENT_SCORE_COLUMNS,
    INVOICE_SCORE_COLUMNS,
    NO_ACTION_BLOCK,
    NO_ACTION_DONE,
    NUMERIC_FIELDS,
    OPTIONAL_CLIENT_COLUMNS,
    RESOLVE_DISPUTE,
    REVIEW_PLAN,
    WAIT_PROMISE,
    Policy,
    Step,
)


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing required columns {missing}; it must have {list(columns)} "
                         f"(see models.policy module docstring). Got {list(df.columns)}.")


def validate_client_scores(client_scores: pd.DataFrame) -> pd.DataFrame:
    """Check the per-client score frame and return a typed copy (optional columns filled).

    Raises:
        ValueError: a required column is missing, a client appears twice, or a number is not numeric.
    """
    _require(client_scores, CLIENT_SCORE_COLUMNS, "client_scores")
    df = client_scores.copy()
    dup = df.loc[df["client_id"].duplicated(), "client_id"]
    if len(dup):
        raise ValueError(f"client_scores has {len(dup)} duplicated client_id(s), e.g. {list(dup[:3])}; "
                         "give one row per client")
    for col, default in OPTIONAL_CLIENT_COLUMNS.items():
        if col not in df.columns:
            df[col] = default
    for col in BOOL_FIELDS:
        df[col] = df[col].astype("boolean").fillna(False).astype(bool)
    for col in NUMERIC_FIELDS:
        try:
            df[col] = pd.to_numeric(df[col]).astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"client_scores column {col!r} must be numeric: {exc}") from exc
    return df


def assign_profiles(
    client_scores: pd.DataFrame, policy: Policy, previous: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Give each client the first profile (by priority) whose conditions all hold.

    Args:
        client_scores: per-client scores and facts (see the module docstring).
        policy: the policy.
        previous: optional earlier assignment (``client_id, profile``); adds ``change_reason``.

    Returns:
        ``client_id, profile, scenario, reason`` in the input order; ``reason`` in plain words,
        e.g. ``"p_very_late_max 0.42 >= 0.3; strategic false == false"``. With ``previous``, also
        ``change_reason``: ``"standard -> high_risk: <reason>"`` when the profile changed (``new``
        for a client absent from ``previous``), None when it did not.
    """
    df = validate_client_scores(client_scores)
    profile = pd.Series(None, index=df.index, dtype=object)
    for p in policy.ordered_profiles:
        mask = profile.isna()
        for c in p.when:
            mask &= c.evaluate(df[c.field])
        profile[mask] = p.name
    by_name = {p.name: p for p in policy.profiles}
    out = pd.DataFrame({
        "client_id": df["client_id"].to_numpy(),
        "profile": profile.to_numpy(),
        "scenario": [by_name[n].scenario for n in profile],
        "reason": [by_name[n].reason(row) for n, (_, row) in zip(profile, df.iterrows())],
    })
    if previous is not None:
        _require(previous, ("client_id", "profile"), "previous")
        before = out["client_id"].map(previous.drop_duplicates("client_id", keep="last")
                                      .set_index("client_id")["profile"])
        out["change_reason"] = [
            None if old == new else f"{'new' if pd.isna(old) else old} -> {new}: {why}"
            for old, new, why in zip(before, out["profile"], out["reason"])
        ]
    return out


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip() == "")


def _latest_flag(act: pd.DataFrame, on: str, off: str) -> tuple[set[str], set[str]]:
    """Invoices and clients whose latest ``on``/``off`` action is ``on``."""
    rows = act[act["step"].isin([on, off])].sort_values("action_date", kind="stable")
    invoices, clients = set(), set()
    inv_rows = rows[~rows["_client_level"]]
    for inv, st in inv_rows.groupby("invoice_id")["step"].last().items():
        if st == on:
            invoices.add(inv)
    for cl, st in rows[rows["_client_level"]].groupby("client_id")["step"].last().items():
        if st == on:
            clients.add(cl)
    return invoices, clients


def next_steps(
    invoices: pd.DataFrame,
    assignments: pd.DataFrame,
    policy: Policy,
    as_of: pd.Timestamp | str,
    actions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The next dunning step for each open invoice at the start of ``as_of``.

    In order of precedence:

    1. a dunning block (the invoice's ``dunning_block`` column, or a ``dunning_block`` action on
       the invoice or its client not lifted by a later ``dunning_unblock``) -> ``'none (dunning
       block)'``, no date;
    2. an open dispute (``disputed`` column, or :func:`features.kpis.build_open_disputes`) ->
       ``'resolve dispute'`` on ``as_of``;
    3. a promise to pay whose ``promise_date + promise_grace_days`` is after ``as_of`` ->
       ``'wait (promise to pay)'`` until that day; a broken promise resumes the ladder;
    4. a payment plan (``payment_plan`` actions) and a scenario with ``plan_steps`` -> the next plan
       step not done for the current instalment (the first whose last plan step is not past);
       ``'review payment plan'`` once every instalment's window is past;
    5. otherwise the first step of the client's scenario not yet done on the invoice, on
       ``max(due_date + offset_days, as_of)``. Pre-due steps (offset <= 0) are skipped once the
       invoice is past due; later steps are never skipped. ``'none (ladder complete)'`` when done.

    Returns:
        ``invoice_id, client_id, profile, next_action, next_action_date, channel, template,
        reason``, in the input order (paid invoices dropped).
    """
    _require(invoices, INVOICE_SCORE_COLUMNS, "invoices")
    _require(assignments, ("client_id", "profile"), "assignments")
    d = pd.Timestamp(as_of).normalize()
    inv = invoices.copy()
    inv["due_date"] = pd.to_datetime(inv["due_date"])
    if "paid_date" in inv.columns:
        paid = pd.to_datetime(inv["paid_date"])
        inv = inv[paid.isna() | (paid >= d)]
    assigned = assignments.drop_duplicates("client_id", keep="last").set_index("client_id")["profile"]
    unknown = sorted(set(inv["client_id"]) - set(assigned.index))
    if unknown:
        raise ValueError(f"{len(unknown)} client(s) of invoices have no profile in assignments, e.g. "
                         f"{unknown[:5]}; run assign_profiles on every client first")
    bad = sorted(set(assigned) - {p.name for p in policy.profiles})
    if bad:
        raise ValueError(f"assignments use profiles {bad} that policy {policy.name!r} does not define")

    if actions is None or actions.empty:
        act = pd.DataFrame({c: pd.Series(dtype=object) for c in
                            ("invoice_id", "client_id", "step", "outcome", "channel")})
        act["action_date"] = pd.Series(dtype="datetime64[s]")
        act["promise_date"] = pd.Series(dtype="datetime64[s]")
    else:
        act = actions.copy()
        for col in ("outcome", "channel", "promise_date"):
            if col not in act.columns:
                act[col] = None
        act["action_date"] = pd.to_datetime(act["action_date"])
        act["promise_date"] = pd.to_datetime(act["promise_date"])
        act = act[act["action_date"] < d]
    act["_client_level"] = _blank(act["invoice_id"]) if len(act) else pd.Series(dtype=bool)
    act.loc[act["_client_level"], "invoice_id"] = None

    blocked_inv, blocked_cl = _latest_flag(act, "dunning_block", "dunning_unblock")
    disputes = build_open_disputes(act.drop(columns="_client_level"), d)
    disputed_inv = set(disputes["invoice_id"].dropna())
    disputed_cl = set(disputes.loc[disputes["invoice_id"].isna(), "client_id"])
    grace = pd.Timedelta(days=policy.promise_grace_days)
    # Index actions once: per invoice, and client-level ones per client (in date order).
    by_invoice: dict[str, list] = {}
    by_client: dict[str, list] = {}
    ordered = act.sort_values("action_date", kind="stable")
    # Only the actions of the invoices and clients being planned are ever looked up.
    wanted = np.where(ordered["_client_level"].to_numpy(dtype=bool), ordered["client_id"].isin(inv["client_id"]),
                      ordered["invoice_id"].isin(inv["invoice_id"]))
    ordered = ordered[wanted]
    for a in ordered[["invoice_id", "client_id", "action_date", "step", "outcome", "promise_date",
                      "_client_level"]].rename(columns={"_client_level": "client_level"}).itertuples(index=False):
        target = by_client.setdefault(a.client_id, []) if a.client_level else by_invoice.setdefault(a.invoice_id, [])
        target.append(a)

    rows = []
    profile_of = assigned.to_dict()
    profiles = {name: policy.profile(name) for name in set(profile_of.values())}
    for r in inv.itertuples(index=False):
        prof = profiles[profile_of[r.client_id]]
        sc = policy.scenarios[prof.scenario]
        base = {"invoice_id": r.invoice_id, "client_id": r.client_id, "profile": prof.name}

        def emit(action, date=pd.NaT, step: Step | None = None, reason=""):
            rows.append({**base, "next_action": action, "next_action_date": date,
                         "channel": step.channel if step else None,
                         "template": step.template if step else None, "reason": reason})

        block_col = getattr(r, "dunning_block", None)
        if (block_col is not None and not pd.isna(block_col) and str(block_col).strip()) \
                or r.invoice_id in blocked_inv or r.client_id in blocked_cl:
            emit(NO_ACTION_BLOCK, reason="dunning block")
            continue
        disputed_col = getattr(r, "disputed", None)
        if (disputed_col is not None and not pd.isna(disputed_col) and bool(disputed_col)) \
                or r.invoice_id in disputed_inv or r.client_id in disputed_cl:
            emit(RESOLVE_DISPUTE, d, reason="open dispute")
            continue
        own = by_invoice.get(r.invoice_id, [])
        mine = sorted(own + by_client.get(r.client_id, []), key=lambda a: a.action_date)
        prom = [a for a in mine if pd.notna(a.promise_date) and (a.step == "promise" or a.outcome == "promise")]
        if prom:
            latest = prom[-1]
            until = latest.promise_date + grace
            if d < until:
                emit(WAIT_PROMISE, until, reason=f"promise to pay on {latest.promise_date.date()} "
                                                 f"+ {policy.promise_grace_days} days grace")
                continue
        plan = sorted({a.promise_date for a in mine if a.step == "payment_plan" and pd.notna(a.promise_date)})
        if sc.plan_steps and plan:
            first, last = sc.plan_steps[0].offset_days, sc.plan_steps[-1].offset_days
            found = False
            for t in plan:
                t = pd.Timestamp(t)
                if d > t + pd.Timedelta(days=last):
                    continue
                window = {a.step for a in mine if a.action_date >= t + pd.Timedelta(days=first)}
                for s in sc.plan_steps:
                    if s.step not in window:
                        date = max(t + pd.Timedelta(days=s.offset_days), d)
                        emit(s.step, date, s, reason=f"payment plan instalment {t.date()} J{s.offset_days:+d}")
                        found = True
                        break
                if found:
                    break
            if not found:
                emit(REVIEW_PLAN, d, reason="no payment-plan instalment left to follow up")
            continue
        done_steps = {a.step for a in own}
        for s in sc.steps:
            if s.step in done_steps:
                continue
            if s.offset_days <= 0 and d > r.due_date:
                continue
            date = max(r.due_date + pd.Timedelta(days=s.offset_days), d)
            emit(s.step, date, s, reason=f"{prof.scenario} J{s.offset_days:+d} from due date {r.due_date.date()}")
            break
        else:
            emit(NO_ACTION_DONE, reason=f"every step of {prof.scenario!r} is done")
    cols = ["invoice_id", "client_id", "profile", "next_action", "next_action_date", "channel", "template", "reason"]
    out = pd.DataFrame(rows, columns=cols)
    out["next_action_date"] = pd.to_datetime(out["next_action_date"])
    return out

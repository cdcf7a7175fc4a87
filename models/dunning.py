"""The policy applied: each client's profile and scenario, and each open invoice's next dunning step.

The policy itself (scenarios, profiles, conditions) and the score-frame contract these functions
read are in ``models.policy``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.kpis import build_open_disputes
from ledger.contracts import isin
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


def _fmt_column(values: pd.Series, boolean: bool) -> np.ndarray:
    """Each value of a validated client-score column (bool, or float with NaN) as a profile's reason
    writes it: ``true``/``false``, ``missing``, or the number with ``:g``."""
    if boolean:
        return np.where(values.to_numpy(dtype=bool), "true", "false").astype(object)
    return np.array(["missing" if math.isnan(v) else f"{v:g}" for v in values.tolist()], dtype=object)


def _profile_reasons(df: pd.DataFrame, profile: pd.Series, policy: Policy) -> list[str]:
    """``Profile.reason`` of each client's chosen profile, a profile at a time."""
    reasons = np.full(len(df), "", dtype=object)
    chosen = profile.to_numpy(dtype=object)
    for p in policy.profiles:
        mask = chosen == p.name
        if not mask.any():
            continue
        if not p.when:
            reasons[mask] = "no earlier profile matched"
            continue
        parts = [f"{c.field} " + _fmt_column(df.loc[mask, c.field], c.field in BOOL_FIELDS)
                 + c.text().removeprefix(c.field) for c in p.when]
        text = parts[0]
        for part in parts[1:]:
            text = text + "; " + part
        reasons[mask] = text
    return reasons.tolist()


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
        "reason": _profile_reasons(df, profile, policy),
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


_UNITS = ["s", "ms", "us", "ns"]


def _latest_by(rows: pd.DataFrame, key: str, lookup: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """For each value of ``lookup``, the ``action_date`` and ``promise_date`` of the last row of
    ``rows`` (in their order) with that ``key``; NaT where there is none."""
    last = rows.drop_duplicates(key, keep="last")
    at = pd.Index(last[key].to_numpy(dtype=object)).get_indexer(lookup.to_numpy(dtype=object))
    found = at >= 0
    out = []
    for col in ("action_date", "promise_date"):
        values = np.full(len(lookup), np.datetime64("NaT"), dtype="datetime64[s]")
        values[found] = last[col].to_numpy(dtype="datetime64[s]")[at[found]]
        out.append(values)
    return out[0], out[1]


def _plan_steps(rows: np.ndarray, inv_id: pd.Series, client: pd.Series, scenario: np.ndarray, ordered: pd.DataFrame,
                policy: Policy, d: pd.Timestamp, action: np.ndarray, date: np.ndarray, channel: np.ndarray,
                template: np.ndarray, reason: np.ndarray) -> None:
    """Rule 4 of :func:`next_steps` for the invoices in ``rows`` (a mask; each has a payment plan and a
    scenario with plan steps), written into the output arrays. One invoice at a time: plans are few."""
    index = np.flatnonzero(rows)
    ids = inv_id.to_numpy(dtype=object)
    clients = client.to_numpy(dtype=object)
    mine_rows = ordered[np.where(ordered["_client_level"].to_numpy(dtype=bool),
                                 isin(ordered["client_id"], set(clients[index])),
                                 isin(ordered["invoice_id"], set(ids[index])))]
    by_invoice: dict[str, list] = {}
    by_client: dict[str, list] = {}
    for a in mine_rows[["invoice_id", "client_id", "action_date", "step", "promise_date", "_client_level"]] \
            .rename(columns={"_client_level": "client_level"}).itertuples(index=False):
        target = by_client.setdefault(a.client_id, []) if a.client_level else by_invoice.setdefault(a.invoice_id, [])
        target.append(a)
    for i in index:
        sc = policy.scenarios[scenario[i]]
        mine = sorted(by_invoice.get(ids[i], []) + by_client.get(clients[i], []), key=lambda a: a.action_date)
        plan = sorted({a.promise_date for a in mine if a.step == "payment_plan" and pd.notna(a.promise_date)})
        first, last = sc.plan_steps[0].offset_days, sc.plan_steps[-1].offset_days
        chosen = None
        for t in plan:
            t = pd.Timestamp(t)
            if d > t + pd.Timedelta(days=last):
                continue
            window = {a.step for a in mine if a.action_date >= t + pd.Timedelta(days=first)}
            chosen = next(((s, t) for s in sc.plan_steps if s.step not in window), None)
            if chosen is not None:
                break
        if chosen is None:
            action[i], date[i] = REVIEW_PLAN, d.to_datetime64()
            reason[i] = "no payment-plan instalment left to follow up"
            continue
        s, t = chosen
        action[i] = s.step
        date[i] = max(t + pd.Timedelta(days=s.offset_days), d).to_datetime64()
        channel[i], template[i] = s.channel, s.template
        reason[i] = f"payment plan instalment {t.date()} J{s.offset_days:+d}"


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
    # Only the actions of the invoices and clients being planned are ever looked up; each one
    # (block, dispute, promise, plan, done step) depends on an invoice's or client's own actions.
    client_level = act["_client_level"].to_numpy(dtype=bool)
    act = act[np.where(client_level, isin(act["client_id"], inv["client_id"]),
                       isin(act["invoice_id"], inv["invoice_id"]))]
    ordered = act.sort_values("action_date", kind="stable")

    n = len(inv)
    inv_id = inv["invoice_id"]
    client = inv["client_id"]
    profile = client.map(assigned).to_numpy(dtype=object)
    scenario_of = {p.name: p.scenario for p in policy.profiles}
    scenario = np.array([scenario_of[p] for p in profile], dtype=object) if n else np.array([], dtype=object)
    due = inv["due_date"]

    action = np.full(n, None, dtype=object)
    date = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    channel = np.full(n, None, dtype=object)
    template = np.full(n, None, dtype=object)
    reason = np.full(n, "", dtype=object)
    todo = np.ones(n, dtype=bool)
    day = np.datetime64(d.to_datetime64(), "s")

    def settle(mask: np.ndarray, what, when=None, step: Step | None = None, why="") -> None:
        nonlocal todo
        action[mask] = what
        if when is not None:
            date[mask] = when if np.ndim(when) == 0 else when[mask]
        if step is not None:
            channel[mask] = step.channel
            template[mask] = step.template
        reason[mask] = why if isinstance(why, str) else why[mask]
        todo = todo & ~mask

    # 1. Dunning block: the invoice's own column, or the latest block/unblock action.
    blocked_inv, blocked_cl = _latest_flag(act, "dunning_block", "dunning_unblock")
    blocked = isin(inv_id, blocked_inv) | isin(client, blocked_cl)
    if "dunning_block" in inv.columns:
        col = inv["dunning_block"]
        blocked |= (col.notna() & (col.astype(str).str.strip() != "")).to_numpy(dtype=bool)
    settle(blocked, NO_ACTION_BLOCK, why="dunning block")

    # 2. Open dispute: the invoice's own flag (its truth value), or dated dispute actions.
    disputes = build_open_disputes(act.drop(columns="_client_level"), d)
    disputed = (isin(inv_id, disputes["invoice_id"].dropna())
                | isin(client, disputes.loc[disputes["invoice_id"].isna(), "client_id"]))
    if "disputed" in inv.columns:
        col = inv["disputed"]
        has = col.notna().to_numpy(dtype=bool)
        flag = np.zeros(n, dtype=bool)
        flag[has] = col.to_numpy(dtype=object)[has].astype(bool)
        disputed |= flag
    settle(todo & disputed, RESOLVE_DISPUTE, day, why="open dispute")

    # 3. Promise to pay: the latest promise among the invoice's and its client's actions.
    is_promise = ordered["promise_date"].notna() & ((ordered["step"] == "promise") | (ordered["outcome"] == "promise"))
    own_date, own_promise = _latest_by(ordered[is_promise & ~ordered["_client_level"]], "invoice_id", inv_id)
    cl_date, cl_promise = _latest_by(ordered[is_promise & ordered["_client_level"]], "client_id", client)
    # Equal action dates: the client-level action counts as the later one.
    use_client = ~np.isnat(cl_date) & (np.isnat(own_date) | (cl_date >= own_date))
    promised = np.where(use_client, cl_promise, own_promise)
    until = promised + np.timedelta64(policy.promise_grace_days, "D")
    waiting = todo & ~np.isnat(promised) & (day < until)
    if waiting.any():
        days = pd.Series(promised[waiting]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
        why = np.full(n, "", dtype=object)
        why[waiting] = "promise to pay on " + days + f" + {policy.promise_grace_days} days grace"
        settle(waiting, WAIT_PROMISE, until, why=why)

    # 4. Payment plan (few invoices): the plan rules per invoice.
    is_plan = (ordered["step"] == "payment_plan") & ordered["promise_date"].notna()
    plans = ordered[is_plan]
    has_plan = (isin(inv_id, plans.loc[~plans["_client_level"], "invoice_id"])
                | isin(client, plans.loc[plans["_client_level"], "client_id"]))
    with_plan_steps = np.array([bool(policy.scenarios[s].plan_steps) for s in scenario], dtype=bool)
    planned = todo & has_plan & with_plan_steps
    if planned.any():
        _plan_steps(planned, inv_id, client, scenario, ordered, policy, d, action, date, channel, template, reason)
        todo &= ~planned

    # 5. The ladder: per scenario, the first step not done on the invoice (pre-due ones skipped
    # once the invoice is past due).
    own = ordered[~ordered["_client_level"]]
    past_due = (day > due.to_numpy(dtype="datetime64[s]"))
    due_text = due.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    done_of: dict[str, np.ndarray] = {}
    for name in np.unique(scenario[todo]) if todo.any() else []:
        sc = policy.scenarios[name]
        pending = todo & (scenario == name)
        for s in sc.steps:
            if s.step not in done_of:
                done_of[s.step] = isin(inv_id, own.loc[own["step"] == s.step, "invoice_id"])
            take = pending & ~done_of[s.step]
            if s.offset_days <= 0:
                take &= ~past_due
            if take.any():
                when = np.maximum(due.to_numpy(dtype="datetime64[s]") + np.timedelta64(s.offset_days, "D"), day)
                why = np.full(n, "", dtype=object)
                why[take] = f"{name} J{s.offset_days:+d} from due date " + due_text[take]
                settle(take, s.step, when, s, why)
            pending &= ~take
        settle(pending, NO_ACTION_DONE, why=f"every step of {name!r} is done")

    cols = ["invoice_id", "client_id", "profile", "next_action", "next_action_date", "channel", "template", "reason"]
    if not n:
        out = pd.DataFrame([], columns=cols)
        out["next_action_date"] = pd.to_datetime(out["next_action_date"])
        return out
    # The dates' unit is that of the days they come from (as_of, due and promise dates, at least
    # microseconds as pandas' day arithmetic gives), seconds when there is none.
    units = [d.unit, "us", np.datetime_data(due.dtype)[0]]
    if "promise_date" in act.columns and len(act):
        units.append(np.datetime_data(act["promise_date"].dtype)[0])
    unit = max(units, key=_UNITS.index) if not np.isnat(date).all() else "s"
    return pd.DataFrame({
        "invoice_id": inv_id.tolist(), "client_id": client.tolist(), "profile": profile.tolist(),
        "next_action": action.tolist(), "next_action_date": date.astype(f"datetime64[{unit}]"),
        "channel": channel.tolist(), "template": template.tolist(), "reason": reason.tolist(),
    }, columns=cols)

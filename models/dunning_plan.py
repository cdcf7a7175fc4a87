"""The daily dunning run's plan: which messages go out on a day, to whom, by which channel.

From the policy's next steps (``models.dunning.next_steps``) of the invoices a stored score run
holds and that are still open, the steps due on the day (``next_action_date <= as_of``) are grouped
into one message per (client, step) listing that client's invoices at that step. All of it is
vectorized pandas: no Python loop per invoice.

What ``next_steps`` already holds back (dunning blocks, open disputes, promises within their
grace, payment plans) is reported as ``held``. On top of it the plan skips:

* ``no chase``: a trusted client's invoice the worklist does not chase
  (``models.worklist.TRUSTED_PROFILES`` below ``TRUSTED_MAX_P_VERY_LATE``);
* ``already sent``: the journal shows the step done for the invoice (a ladder step ever; a
  payment-plan step, which repeats per instalment, on this day or later);
* ``unconfirmed``: a message found interrupted twice; it is not sent a third time;
* ``held back (control group)``: a (client, step) drawn into the control group of a testable step
  (``policy.control``, ``ledger.control_groups.held_back``); the run records it as an action with
  outcome ``held_back`` so the ladder moves on and ``models.uplift`` measures the step. Only
  decisions the run would send are drawn (not those that would become call tasks): a call task
  records no action, so it could not be compared with its controls.

A message whose client has no usable contact for its channel (no email, no phone, no postal
address) or who opted out of automated messages becomes a call task, with the reason in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ledger.contracts import Ledger, isin
from ledger.control_groups import held_back
from models.dunning import next_steps
from models.policy import (NEVER_HELD_BACK_CHANNELS, NO_ACTION_BLOCK, NO_ACTION_DONE, RESOLVE_DISPUTE, REVIEW_PLAN,
                           WAIT_PROMISE, Policy)
from models.worklist import TRUSTED_MAX_P_VERY_LATE, TRUSTED_PROFILES

EMAIL, SMS, LETTER, CALL_TASK = "email", "sms", "letter", "call_task"
CHANNELS = (EMAIL, SMS, LETTER, CALL_TASK)
"""Channels of the run's counts."""

SEND_CHANNEL = {"email": EMAIL, "sms": SMS, "formal_notice": LETTER, "agency": LETTER, "letter": LETTER,
                "registered_letter": LETTER, "call": CALL_TASK}
"""Policy channel -> the run's channel (anything else: a call task)."""

CONTACT_OF = {EMAIL: "email", SMS: "phone", LETTER: "postal_address"}
"""The client column a channel needs (an agency handover letter goes to the agency: no client address)."""

NO_CONTACT_NOTE = {EMAIL: "no email address", SMS: "no phone number", LETTER: "no postal address"}

HELD = {NO_ACTION_BLOCK: "dunning block", RESOLVE_DISPUTE: "open dispute", WAIT_PROMISE: "promise to pay",
        REVIEW_PLAN: "payment plan to review", NO_ACTION_DONE: "ladder complete"}
"""Next actions that send nothing, and the reason reported."""

SKIP_NO_CHASE, SKIP_SENT, SKIP_UNCONFIRMED = "no chase (trusted payer)", "already sent", "unconfirmed"
SKIP_CONTROL = "held back (control group)"

PLAN_COLUMNS = ["client_id", "step", "policy_channel", "channel", "template", "invoice_ids", "n_invoices",
                "amount", "currency", "recipient", "language", "note", "message_id", "previous_status"]


@dataclass
class DunningPlan:
    """What a run sends on ``as_of``.

    Attributes:
        messages: one row per message, :data:`PLAN_COLUMNS`: ``channel`` is where it goes
            (:data:`CHANNELS`), ``policy_channel`` what the policy asked; ``invoice_ids`` a tuple;
            ``amount`` the open amount it lists (currency units); ``message_id`` and
            ``previous_status`` are set when a pending journal message is taken up again.
        skipped: ``client_id, step, reason``, one row per (client, step) that sends nothing.
        held_back: the invoices of the control-group decisions (``invoice_id, client_id, step,
            policy_channel``), to record with outcome ``held_back``.
        held: invoices whose next action sends nothing today, by reason.
        not_scored: open invoices absent from the score run (issued after it).
    """

    as_of: pd.Timestamp
    messages: pd.DataFrame
    skipped: pd.DataFrame
    held_back: pd.DataFrame = field(default_factory=pd.DataFrame)
    held: dict[str, int] = field(default_factory=dict)
    not_scored: int = 0


def _text(s: pd.Series) -> pd.Series:
    """Text values with blanks as None."""
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None)


def _contacts(clients: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    master = clients.drop_duplicates("client_id", keep="last").set_index("client_id")
    out = pd.DataFrame(index=ids.index)
    for col in ("email", "phone", "postal_address", "language"):
        out[col] = _text(ids.map(master[col])) if col in master.columns else None
    opt = ids.map(master["opt_out"]) if "opt_out" in master.columns else pd.Series(False, index=ids.index)
    out["opt_out"] = opt.astype("boolean").fillna(False).astype(bool)
    return out


def _would_send(clients: pd.DataFrame, due: pd.DataFrame) -> pd.Series:
    """True where the step's message would be sent (email, SMS or letter to a usable contact of a client
    who did not opt out), False where it would become a call task."""
    wanted = due["policy_channel"].map(SEND_CHANNEL).fillna(CALL_TASK)
    contacts = _contacts(clients, due["client_id"])
    ok = pd.Series(False, index=due.index)
    for ch, col in CONTACT_OF.items():
        ok |= (wanted == ch) & contacts[col].notna()
    return ok & ~contacts["opt_out"]


def plan_dunning(
    ledger: Ledger,
    scores: pd.DataFrame,
    client_scores: pd.DataFrame,
    policy: Policy,
    as_of: pd.Timestamp | str,
    journal: pd.DataFrame | None = None,
    client_id: str | None = None,
    step: str | None = None,
    control_salt: str | None = None,
) -> DunningPlan:
    """Plan the messages due on ``as_of``.

    Args:
        ledger: the current ledger (paid invoices, actions and flags are read from it).
        scores: the stored score run's invoices (``invoice_id, client_id, amount, due_date,
            p_late, p_very_late``; ``amount_remaining, currency`` when present).
        client_scores: its clients (``client_id, profile``).
        policy: the dunning policy the run used.
        as_of: the run's day (start of day).
        journal: ``ledger.outbox.load_message_invoices`` (None: nothing sent yet).
        client_id, step: plan only this client (and step), for the pages.
        control_salt: the salt of the control-group draw (``policy.control.salt``, else the
            workspace's); None: no control group.
    """
    d = pd.Timestamp(as_of).normalize()
    sc = scores
    if client_id is not None:
        sc = sc[sc["client_id"] == client_id]
    led_inv = ledger.invoices
    src = led_inv[isin(led_inv["invoice_id"], sc["invoice_id"])]  # the run's invoices only, not the whole ledger
    src = src.drop_duplicates("invoice_id", keep="last").set_index("invoice_id")
    # reindex, not map: pandas fails to map an empty Series through an empty datetime one
    paid = pd.Series(pd.to_datetime(src["paid_date"]).reindex(sc["invoice_id"].to_numpy()).to_numpy(), index=sc.index)
    known = isin(sc["invoice_id"], src.index)
    sc = sc[known & (paid.isna() | (paid >= d))]
    inv = sc[["invoice_id", "client_id", "amount", "due_date", "p_late", "p_very_late"]].copy()
    for col in ("dunning_block", "disputed"):
        if col in src.columns:
            inv[col] = inv["invoice_id"].map(src[col]).to_numpy()
    assignments = client_scores[["client_id", "profile"]]
    assignments = assignments[isin(assignments["client_id"], inv["client_id"].unique())]
    act = ledger.actions
    if client_id is not None and len(act):
        act = act[act["client_id"] == client_id]
    steps = next_steps(inv, assignments, policy, d, actions=act)

    open_ids = ledger.invoices.loc[(ledger.invoices["doc_type"] == "invoice") & ledger.invoices["paid_date"].isna()
                                   & (ledger.invoices["issue_date"] < d), ["invoice_id", "client_id"]]
    if client_id is not None:
        open_ids = open_ids[open_ids["client_id"] == client_id]
    not_scored = int((~isin(open_ids["invoice_id"], scores["invoice_id"])).sum())

    held_mask = steps["next_action"].isin(list(HELD))
    held = {HELD[k]: int(v) for k, v in steps.loc[held_mask, "next_action"].value_counts().items()}
    due = steps[~held_mask & steps["next_action_date"].notna() & (steps["next_action_date"] <= d)
                & steps["template"].notna()].copy()
    if step is not None:
        due = due[due["next_action"] == step]
    extra = sc.set_index("invoice_id")
    due["p_very_late"] = due["invoice_id"].map(extra["p_very_late"]).astype(float)
    remaining = extra["amount_remaining"] if "amount_remaining" in extra.columns else extra["amount"]
    due["amount"] = due["invoice_id"].map(remaining.fillna(extra["amount"])).astype(float)
    due["currency"] = due["invoice_id"].map(src["currency"]) if "currency" in src.columns else "EUR"
    due = due.rename(columns={"next_action": "step", "channel": "policy_channel"})

    reason = pd.Series(None, index=due.index, dtype=object)
    reason[due["profile"].isin(TRUSTED_PROFILES) & (due["p_very_late"] < TRUSTED_MAX_P_VERY_LATE)] = SKIP_NO_CHASE
    reused = pd.DataFrame(columns=["client_id", "step", "message_id", "previous_status"])
    if journal is not None and len(journal):
        plan_steps = {s.step for s in policy.scenarios.values() for s in s.plan_steps}
        done = journal[journal["status"].isin(("sent", "task"))]
        done = done[~done["step"].isin(plan_steps) | (done["as_of"] >= d)]
        key = due["invoice_id"].astype(str) + "\x1f" + due["step"].astype(str)
        done_keys = set(done["invoice_id"].astype(str) + "\x1f" + done["step"].astype(str))
        reason[reason.isna() & isin(key, done_keys)] = SKIP_SENT
        pending = journal[journal["status"].isin(("planned", "sending", "failed"))]
        pending = pending.sort_values("as_of").drop_duplicates(["client_id", "step"], keep="last")
        stuck = pending[(pending["status"] == "sending") & (pending["attempts"] >= 2)]
        ckey = due["client_id"].astype(str) + "\x1f" + due["step"].astype(str)
        stuck_keys = set(stuck["client_id"].astype(str) + "\x1f" + stuck["step"].astype(str))
        reason[reason.isna() & isin(ckey, stuck_keys)] = SKIP_UNCONFIRMED
        reused = pending.rename(columns={"status": "previous_status"})[
            ["client_id", "step", "message_id", "previous_status"]]
    if control_salt and policy.control.share > 0:
        # Only decisions the run would send are drawn: a message that would become a call task (call
        # channel, no usable contact, opted out) records no action when not held back, so its controls
        # would have no sent arm to compare with, and the arms would differ in who they hold.
        open_ = (reason.isna() & ~due["policy_channel"].isin(list(NEVER_HELD_BACK_CHANNELS))
                 & _would_send(ledger.clients, due))
        drawn = held_back(due.loc[open_, "client_id"].astype(str), due.loc[open_, "step"].astype(str),
                          salt=control_salt, share=policy.control.share, testable=policy.control.testable_steps)
        reason[open_[open_].index[drawn]] = SKIP_CONTROL
    due["reason"] = reason
    control = due.loc[due["reason"] == SKIP_CONTROL, ["invoice_id", "client_id", "step", "policy_channel"]]

    go = due[due["reason"].isna()]
    g = go.sort_values(["client_id", "step", "invoice_id"], kind="stable").groupby(["client_id", "step"], sort=True)
    msgs = g.agg(policy_channel=("policy_channel", "first"), template=("template", "first"),
                 invoice_ids=("invoice_id", tuple), n_invoices=("invoice_id", "size"), amount=("amount", "sum"),
                 currency=("currency", "first")).reset_index()
    skipped = due[due["reason"].notna()][["client_id", "step", "reason"]].drop_duplicates(["client_id", "step"])
    if len(msgs):
        sent_keys = set(zip(msgs["client_id"], msgs["step"]))
        keep = np.array([k not in sent_keys for k in zip(skipped["client_id"], skipped["step"])], dtype=bool)
        skipped = skipped.loc[keep]
    msgs = msgs.merge(reused, on=["client_id", "step"], how="left")

    contacts = _contacts(ledger.clients, msgs["client_id"])
    wanted = msgs["policy_channel"].map(SEND_CHANNEL).fillna(CALL_TASK)
    channel = wanted.copy()
    recipient = pd.Series(None, index=msgs.index, dtype=object)
    note = pd.Series(None, index=msgs.index, dtype=object)
    for ch, col in CONTACT_OF.items():
        is_ch = wanted == ch
        if ch == LETTER:  # the agency handover letter goes to the agency, not to the client
            recipient[is_ch & (msgs["step"] == "agency")] = "collection agency"
            is_ch &= msgs["step"] != "agency"
        recipient[is_ch] = contacts.loc[is_ch, col]
        missing = is_ch & contacts[col].isna()
        channel[missing] = CALL_TASK
        note[missing] = NO_CONTACT_NOTE[ch] + ": call instead"
    opted = contacts["opt_out"] & (wanted != CALL_TASK)
    channel[opted] = CALL_TASK
    note[opted] = "opted out of automated messages: call instead"
    recipient[channel == CALL_TASK] = None
    msgs["channel"] = channel
    msgs["recipient"] = recipient
    msgs["language"] = contacts["language"]
    msgs["note"] = note
    msgs["amount"] = np.round(msgs["amount"].astype(float), 2)
    for col in ("recipient", "language", "note", "message_id", "previous_status"):
        msgs[col] = msgs[col].astype(object).where(msgs[col].notna(), None)
    return DunningPlan(as_of=d, messages=msgs[PLAN_COLUMNS].reset_index(drop=True),
                       skipped=skipped.reset_index(drop=True), held_back=control.reset_index(drop=True), held=held,
                       not_scored=not_scored)

"""The daily dunning run: plan the day's messages, record the intent, send, record what was sent.

``run_dunning`` is the one path ``encaisse dunning run``, the Send button of the pages and the
tests share; ``preview_message`` renders what a message would be without sending it. Planning is
``models.dunning_plan``; the journal and the transports are ``ledger.outbox`` and
``ledger.outbox_transports``; templates and their rendering ``models.messages``.

For each message, in order: the journal row is ``planned`` (all of them, one transaction), then
``sending`` (attempts + 1), then the transport is called, then ``sent`` together with one ledger
action per invoice (step, channel, outcome ``sent``; the action id names the message), in one
transaction. A transport error leaves it ``failed`` (retried by the next run); a crash after
``sending`` leaves it ``sending``, and the next run sends it once more and reports it. Decisions drawn
into a control group (``policy.control``) are recorded as actions with outcome ``held_back`` and
nothing is sent (``models.uplift`` compares them with the sent ones). Call tasks
(call steps, clients without a usable contact) are recorded as ``task``: no message, no action
(the call stays the worklist's next action until a collector records it).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from features.kpis import build_open_items
from features.legal import build_legal_amounts
from ledger import outbox
from ledger.contracts import Ledger, isin
from ledger.control_groups import HELD_BACK
from ledger.control_groups import control_salt as configured_or_workspace_salt
from ledger.outbox_transports import EmailTransport, Provider, SendError
from ledger.writes import write_transaction
from models.dunning_plan import CALL_TASK, CHANNELS, EMAIL, LETTER, SMS, DunningPlan, plan_dunning
from models.messages import Message, build_message_context, render_message
from models.policy import Policy

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    """Where messages go: the email transport and one provider per other channel."""

    email: EmailTransport
    sms: Provider
    letter: Provider
    mail_from: str = "Encaisse <encaisse@localhost>"


@dataclass
class RunResult:
    """What a run did: the plan, each message's outcome and the action rows it stored."""

    plan: DunningPlan
    outcomes: pd.DataFrame
    actions: pd.DataFrame
    dry_run: bool
    resent_after_crash: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON summary: ``as_of, planned, sent, skipped, failed, outbox`` with counts per channel."""
        def per_channel(frame: pd.DataFrame) -> dict:
            counts = {ch: int((frame["channel"] == ch).sum()) for ch in CHANNELS}
            return {**counts, "total": int(len(frame))}

        o = self.outcomes
        skipped = self.plan.skipped
        reasons = {str(k): int(v) for k, v in skipped["reason"].value_counts().items()}
        done = o[o["status"].isin(outbox.DONE)] if len(o) else o
        failed = o[o["status"] == outbox.FAILED] if len(o) else o
        return {
            "as_of": str(self.plan.as_of.date()),
            "dry_run": self.dry_run,
            "planned": per_channel(self.plan.messages),
            "sent": per_channel(done),
            "skipped": {"total": int(len(skipped)), "reasons": reasons, "held_invoices": self.plan.held,
                        "not_scored_invoices": self.plan.not_scored,
                        "call_task_instead": int(self.plan.messages["note"].notna().sum())},
            "failed": {**per_channel(failed), "errors": failed["error"].head(5).tolist() if len(failed) else []},
            "outbox": {"resent_after_crash": len(self.resent_after_crash), "cancelled": len(self.cancelled),
                       "locations": sorted({str(Path(p).parent) for p in done.get("location", pd.Series(dtype=object))
                                            .dropna() if not str(p).startswith("smtp")})[:5]},
        }


def _new_id() -> str:
    return uuid.uuid4().hex


def action_id(message_id: str, invoice_id: str) -> str:
    """The ledger action id of a message's invoice: stable, so a resend upserts the same row."""
    return "dun-" + hashlib.sha256(f"{message_id}\x1f{invoice_id}".encode()).hexdigest()[:32]


def _sub_ledger(ledger: Ledger, client_ids) -> Ledger:
    ids = set(client_ids)
    inv = ledger.invoices[isin(ledger.invoices["client_id"], ids)]
    pay = ledger.payments[isin(ledger.payments["invoice_id"], inv["invoice_id"])]
    return Ledger(invoices=inv, payments=pay, clients=ledger.clients[isin(ledger.clients["client_id"], ids)],
                  actions=ledger.actions[isin(ledger.actions["client_id"], ids)])


@dataclass
class Renderer:
    """Renders messages with ``models.messages``: the client, its open invoices at the step, legal amounts."""

    ledger: Ledger
    as_of: pd.Timestamp
    client_ids: list
    company: Mapping | None = None
    overrides_dir: Path | None = None

    def __post_init__(self) -> None:
        sub = _sub_ledger(self.ledger, self.client_ids)
        self.legal = build_legal_amounts(sub, self.as_of)
        self.clients = sub.clients.drop_duplicates("client_id", keep="last").set_index("client_id")
        self.items = build_open_items(sub, self.as_of).drop_duplicates("invoice_id").set_index("invoice_id")
        src = sub.invoices.drop_duplicates("invoice_id", keep="last").set_index("invoice_id")
        self.items["currency"] = self.items.index.map(src["currency"]) if "currency" in src.columns else "EUR"
        act = sub.actions
        self.plans = act[(act["step"] == "payment_plan") & act["promise_date"].notna()] if len(act) else act

    def _instalment(self, client_id: str) -> dict | None:
        """The payment-plan instalment the plan steps follow: the first not more than 8 days past."""
        if not len(self.plans):
            return None
        mine = self.plans[(self.plans["client_id"] == client_id)
                          & (pd.to_datetime(self.plans["promise_date"]) >= self.as_of - pd.Timedelta(days=8))]
        if mine.empty:
            return None
        first = mine.sort_values("promise_date").iloc[0]
        amount = first.get("promise_amount")
        return {"date": pd.Timestamp(first["promise_date"]).date(),
                "amount": None if pd.isna(amount) else float(amount)}

    def render(self, m) -> Message:
        client = self.clients.loc[m.client_id].to_dict() if m.client_id in self.clients.index else {}
        client["client_id"] = m.client_id
        ids = [i for i in m.invoice_ids if i in self.items.index]
        inv = self.items.loc[ids].reset_index()
        legal = self.legal[isin(self.legal["invoice_id"], ids)]
        instalment = self._instalment(m.client_id) if str(m.step).startswith("instalment") else None
        ctx = build_message_context(client, inv, self.as_of, step=m.step, company=self.company, legal=legal,
                                    instalment=instalment if instalment and instalment["amount"] else None)
        lang = m.language if isinstance(m.language, str) and m.language else None
        return render_message(m.template, ctx, language=lang, overrides_dir=self.overrides_dir)


EMAIL_POLICY = email_policy.SMTP.clone(max_line_length=998)
"""CRLF lines; headers folded only past RFC 5322's 998 characters: the standard library's folding of
encoded words drops the space between two of them (an accented subject would lose a space)."""


def build_email(msg: Message, message_id: str, to: str, mail_from: str) -> EmailMessage:
    """A UTF-8 email of a rendered message: text, HTML alternative, attachments, Message-ID set."""
    email = EmailMessage(policy=EMAIL_POLICY)
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    email["Subject"] = msg.subject
    email["From"] = mail_from
    email["To"] = to
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = f"<{message_id}@{domain}>"
    email["Content-Language"] = msg.language
    email.set_content(msg.text, charset="utf-8")
    if msg.html:
        email.add_alternative(msg.html, subtype="html", charset="utf-8")
    for a in msg.attachments:
        maintype, _, subtype = a.mime_type.partition("/")
        email.add_attachment(a.content, maintype=maintype, subtype=subtype or "octet-stream", filename=a.filename)
    return email


def _files(msg: Message) -> list[tuple[str, bytes]]:
    files = [("message.txt", f"{msg.subject}\n\n{msg.text}".encode())]
    return files + [(a.filename, a.content) for a in msg.attachments]


def _deliver(delivery: Delivery, m, msg: Message, message_id: str) -> str:
    if m.channel == EMAIL:
        return delivery.email.send(build_email(msg, message_id, m.recipient, delivery.mail_from))
    if m.channel == SMS:
        return delivery.sms.deliver(message_id, m.recipient, [("sms.txt", msg.text.encode())])
    if m.channel == LETTER:
        return delivery.letter.deliver(message_id, m.recipient, _files(msg))
    raise ValueError(f"channel {m.channel!r} sends nothing")


def _action_rows(m, message_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    channel = {LETTER: m.policy_channel}.get(m.channel, m.channel)
    return pd.DataFrame([{"action_id": action_id(message_id, inv), "invoice_id": inv, "client_id": m.client_id,
                          "action_date": as_of.date().isoformat(), "step": m.step, "channel": channel,
                          "outcome": "sent"} for inv in m.invoice_ids])


def control_salt(policy: Policy, home: Path) -> str | None:
    """The control-group salt: the policy's, else the workspace's; None when the policy holds back nothing."""
    if policy.control.share <= 0:
        return None
    return configured_or_workspace_salt(policy.control.salt, home)


def _record_held_back(engine: sa.Engine, plan: DunningPlan, by: str) -> pd.DataFrame:
    """One action per invoice of each control-group decision (outcome ``held_back``), in one transaction.

    The ids are fixed by (client, step, invoice, day): a rerun on the same day upserts the same rows.
    """
    hb = plan.held_back
    day = plan.as_of.date().isoformat()
    ids = ["ctl-" + hashlib.sha256("\x1f".join((c, s, i, day)).encode()).hexdigest()[:32]
           for c, s, i in zip(hb["client_id"].astype(str), hb["step"].astype(str), hb["invoice_id"].astype(str))]
    rows = pd.DataFrame({"action_id": ids, "invoice_id": hb["invoice_id"].to_numpy(),
                         "client_id": hb["client_id"].to_numpy(), "action_date": day, "step": hb["step"].to_numpy(),
                         "channel": hb["policy_channel"].to_numpy(), "outcome": HELD_BACK})
    good = outbox.validate_actions(rows)
    return write_transaction(engine, lambda conn: outbox.store_actions(conn, good, by))


def run_dunning(
    engine: sa.Engine,
    ledger: Ledger,
    scores: pd.DataFrame,
    client_scores: pd.DataFrame,
    policy: Policy,
    as_of: pd.Timestamp | str,
    delivery: Delivery | None,
    *,
    dry_run: bool = False,
    company: Mapping | None = None,
    overrides_dir: Path | None = None,
    client_id: str | None = None,
    step: str | None = None,
    by: str = "dunning run",
    control_salt: str | None = None,
    on_message: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Plan, then (unless ``dry_run``) send and record the messages due on ``as_of``.

    Args:
        engine: the store (journal and actions are written there).
        ledger: the current ledger; scores, client_scores: the stored score run it plans from.
        delivery: transports (unused for a dry run).
        client_id, step: only this client (and step): the pages' Send.
        by: who the action history names.
        control_salt: the control-group salt (:func:`control_salt`); None: no control group.
        on_message: progress callback (done, total).

    Returns:
        The plan and one outcome row per message (``message_id, client_id, step, channel, status,
        error, location``).
    """
    d = pd.Timestamp(as_of).normalize()
    started = time.perf_counter()
    journal = outbox.load_message_invoices(engine, client_id=client_id)
    plan = plan_dunning(ledger, scores, client_scores, policy, d, journal=journal, client_id=client_id, step=step,
                        control_salt=control_salt)
    msgs = plan.messages
    log.info("planned %d message(s) as of %s in %.1f s (%d skipped)", len(msgs), d.date(),
             time.perf_counter() - started, len(plan.skipped))
    cols = ["message_id", "client_id", "step", "channel", "status", "error", "location"]
    held = _record_held_back(engine, plan, by) if not dry_run and len(plan.held_back) else pd.DataFrame()
    if dry_run:
        return RunResult(plan=plan, outcomes=pd.DataFrame(columns=cols), actions=held, dry_run=True)

    # Pending messages of this scope no longer due (paid, blocked, ...): cancelled.
    pending = journal[journal["status"].isin(outbox.PENDING)]
    if client_id is not None:
        pending = pending[pending["client_id"] == client_id]
    if step is not None:
        pending = pending[pending["step"] == step]
    stuck = pending[(pending["status"] == outbox.SENDING) & (pending["attempts"] >= 2)]
    outbox.mark_status(engine, sorted(set(stuck["message_id"])), outbox.UNCONFIRMED,
                       note="interrupted twice after it was handed to its transport: check whether it arrived")
    cancelled = sorted(set(pending["message_id"]) - set(msgs["message_id"].dropna()) - set(stuck["message_id"]))
    outbox.mark_status(engine, cancelled, outbox.CANCELLED, note=f"no longer due on {d.date()}")
    if msgs.empty:
        return RunResult(plan=plan, outcomes=pd.DataFrame(columns=cols), actions=held, dry_run=False,
                         cancelled=cancelled)
    if delivery is None:
        raise ValueError("run_dunning needs a Delivery to send (or dry_run=True)")

    msgs = msgs.copy()
    msgs["message_id"] = [mid if isinstance(mid, str) else _new_id() for mid in msgs["message_id"]]
    resent = msgs.loc[msgs["previous_status"] == outbox.SENDING, "message_id"].tolist()
    for mid in resent:
        log.warning("message %s was interrupted after it was handed to its transport: sending it once more", mid)
    rows = [{"message_id": m.message_id, "as_of": d.date(), "client_id": m.client_id, "step": m.step,
             "channel": m.channel, "planned_channel": m.policy_channel, "template": m.template,
             "language": m.language if isinstance(m.language, str) else None, "recipient": m.recipient,
             "note": m.note} for m in msgs.itertuples(index=False)]
    outbox.save_planned(engine, rows, dict(zip(msgs["message_id"], [list(x) for x in msgs["invoice_ids"]])))

    # Validated once for the run (validate_frame keeps the index: it maps each row back to its message).
    senders = [m for m in msgs.itertuples(index=False) if m.channel != CALL_TASK]
    action_rows = pd.concat([_action_rows(m, m.message_id, d) for m in senders], ignore_index=True) if senders else None
    actions_of: dict[str, pd.DataFrame] = {}
    if action_rows is not None:
        owner = pd.Series([m.message_id for m in senders for _ in m.invoice_ids])
        good = outbox.validate_actions(action_rows)
        actions_of = {mid: frame for mid, frame in good.groupby(owner.loc[good.index].to_numpy())}
    renderer = Renderer(ledger, d, sorted(set(msgs["client_id"])), company=company, overrides_dir=overrides_dir)
    results, stored = [], []
    for i, m in enumerate(msgs.itertuples(index=False)):
        status, error, location = outbox.TASK, None, None
        try:
            msg = renderer.render(m)
        except Exception as exc:  # noqa: BLE001 - a template error fails this message, not the run
            log.warning("message %s (%s, %s): rendering failed: %s", m.message_id, m.client_id, m.template, exc)
            outbox.mark_failed(engine, m.message_id, f"rendering {m.template!r} failed: {exc}")
            results.append((m.message_id, m.client_id, m.step, m.channel, outbox.FAILED, str(exc), None))
            continue
        content = {"subject": msg.subject, "body": msg.text, "language": msg.language}
        if m.channel == CALL_TASK:
            outbox.mark_sending(engine, m.message_id, **content)
            outbox.mark_sent(engine, m.message_id, pd.DataFrame(), None, by=by, status=outbox.TASK)
        else:
            outbox.mark_sending(engine, m.message_id, **content)
            try:
                location = _deliver(delivery, m, msg, m.message_id)
            except SendError as exc:
                status, error = outbox.FAILED, str(exc)
                log.warning("message %s to %s failed: %s", m.message_id, m.recipient, exc)
                outbox.mark_failed(engine, m.message_id, error)
            else:
                status = outbox.SENT
                stored.append(outbox.mark_sent(engine, m.message_id, actions_of[m.message_id], location, by=by))
        results.append((m.message_id, m.client_id, m.step, m.channel, status, error, location))
        if on_message is not None:
            on_message(i + 1, len(msgs))
    stored = [held, *stored] if len(held) else stored
    actions = pd.concat(stored, ignore_index=True) if stored else pd.DataFrame()
    return RunResult(plan=plan, outcomes=pd.DataFrame(results, columns=cols), actions=actions, dry_run=False,
                     resent_after_crash=resent, cancelled=cancelled)


def preview_message(ledger: Ledger, plan: DunningPlan, index: int = 0, *, company: Mapping | None = None,
                    overrides_dir: Path | None = None) -> Message:
    """Render the plan's ``index``-th message as it would go out, without sending or recording it."""
    m = plan.messages.iloc[index]
    renderer = Renderer(ledger, plan.as_of, [m["client_id"]], company=company, overrides_dir=overrides_dir)
    return renderer.render(m)

"""Dunning on the web pages: Preview and Send of a client's due messages, and the Outbox.

Preview plans the client's messages of the day (``models.dunning_plan``, from the worklist's score
run and the loaded ledger) and renders each as it would go out; Send runs ``models.dunning_run``
for that client and step, the same path as ``encaisse dunning run``, so the journal makes a second
Send (or the nightly run) send nothing twice. The Outbox lists the journal (``ledger.outbox``): what
was sent, what failed, the call tasks, and any message in full.

Roles: preview and the outbox need ``worklist`` (a collector sees their own portfolio only);
Send needs ``actions`` and the session's CSRF token, like the other forms.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledger import outbox
from ledger.outbox_transports import OutboxProvider, email_transport
from models.dunning_plan import plan_dunning
from models.dunning_run import Delivery, Renderer, control_salt, run_dunning
from models.messages import CompanyError, MessageTemplateError, load_company
from models.policy import load_policy
from serving import current, views
from serving.frames import records
from serving.page_context import (Ctx, FormText, check_csrf, check_page_portfolio, client_names, error_page, open_page,
                                  page, render, url)

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

OUTBOX_ROWS = 300
"""Outbox rows shown at once (newest first)."""
STATUS_FILTERS = ("all", outbox.SENT, outbox.FAILED, outbox.TASK, outbox.UNCONFIRMED, outbox.PLANNED,
                  outbox.SENDING, outbox.CANCELLED)


@lru_cache(maxsize=1)
def _policy():
    return load_policy()


def _company(ctx: Ctx):
    return load_company(ctx.state.settings.home_dir)


def _client_plan(ctx: Ctx, client_id: str, step: str | None):
    """The client's messages due on the page's day, planned from the worklist's score run."""
    view = views.worklist_rows(ctx.state, ctx.day)
    scores = view.rows[view.rows["client_id"] == client_id]
    client_scores = scores[["client_id", "profile"]].drop_duplicates("client_id")
    ledger = current.clients_ledger(current.current_ledger(ctx.state), [client_id])
    journal = outbox.load_message_invoices(ctx.state.engine, client_id=client_id)
    plan = plan_dunning(ledger, scores, client_scores, _policy(), ctx.day, journal=journal, client_id=client_id,
                        step=step, control_salt=control_salt(_policy(), ctx.state.settings.home_dir))
    return plan, ledger, scores, client_scores


@router.get("/dunning/preview", response_class=HTMLResponse)
@page
def preview_page(request: Request) -> Response:
    ctx = open_page(request, "worklist")
    client_id = request.query_params.get("client_id") or ""
    step = request.query_params.get("step") or None
    check_page_portfolio(ctx, client_id)
    if not current.current_ledger(ctx.state).knows_client(client_id):
        return error_page(ctx, 404, ctx.t("not_found"))
    plan, ledger, _, _ = _client_plan(ctx, client_id, step)
    try:
        company = _company(ctx)
    except CompanyError as exc:
        return error_page(ctx, 500, str(exc))
    previews = []
    if len(plan.messages):
        renderer = Renderer(ledger, plan.as_of, [client_id], company=company,
                            overrides_dir=ctx.state.settings.home_dir / "templates")
        for m in plan.messages.itertuples(index=False):
            try:
                msg, error = renderer.render(m), None
            except (MessageTemplateError, ValueError) as exc:
                msg, error = None, str(exc)
            previews.append({"plan": m._asdict(), "message": msg, "error": error,
                             "attachments": [a.filename for a in msg.attachments] if msg else []})
    name = client_names(ctx).get(client_id, client_id)
    return render(ctx, "dunning_preview.html", client_id=client_id, client_name=name, only_step=step, previews=previews,
                  skipped=records(plan.skipped), held=plan.held, can_send=ctx.may("actions"),
                  sent=request.query_params.get("sent"), as_of=request.query_params.get("as_of"))


@router.post("/dunning/send")
@page
def send(request: Request, client_id: FormText = "", step: FormText = "", csrf: FormText = "") -> Response:
    ctx = open_page(request, "actions")
    check_csrf(ctx, csrf)
    check_page_portfolio(ctx, client_id)
    if not current.current_ledger(ctx.state).knows_client(client_id):
        return error_page(ctx, 404, ctx.t("not_found"))
    plan, ledger, scores, client_scores = _client_plan(ctx, client_id, step or None)
    if plan.messages.empty:
        return error_page(ctx, 409, ctx.t("dunning_nothing_due"))
    settings = ctx.state.settings
    try:
        company = _company(ctx)
        email = email_transport(settings.smtp_url, settings.outbox_dir)
    except (CompanyError, ValueError) as exc:
        return error_page(ctx, 500, str(exc))
    delivery = Delivery(email=email, sms=OutboxProvider(settings.outbox_dir / "sms"),
                        letter=OutboxProvider(settings.outbox_dir / "letter"), mail_from=settings.mail_from)
    p = ctx.principal
    try:
        result = run_dunning(ctx.state.engine, ledger, scores, client_scores, _policy(), ctx.day, delivery,
                             company=company, overrides_dir=settings.home_dir / "templates", client_id=client_id,
                             step=step or None, by=f"page: key {p.prefix} ({p.role})",
                             control_salt=control_salt(_policy(), settings.home_dir))
    finally:
        email.close()
    if len(result.actions):
        # Read back through the change log, as what other processes store: the rows as the store holds them
        # now (an outcome another worker recorded on one of them since is not undone).
        current.sync_changes(ctx.state)
    summary = result.summary()
    log.info("page send: %s %s by key %s: %s sent, %s failed", client_id, step or "(all due)", p.prefix,
             summary["sent"]["total"], summary["failed"]["total"])
    return RedirectResponse(url("/outbox", client_id=client_id, sent=summary["sent"]["total"],
                                failed=summary["failed"]["total"], as_of=request.query_params.get("as_of")),
                            status_code=303)


def _visible(ctx: Ctx, journal: pd.DataFrame) -> pd.DataFrame:
    """A collector's own portfolio only."""
    collector = views.visible_collector(ctx.principal)
    if collector is None or journal.empty:
        return journal
    clients = current.current_ledger(ctx.state).ledger.clients.drop_duplicates("client_id", keep="last")
    owner = journal["client_id"].map(clients.set_index("client_id")["collector"])
    return journal[owner == collector]


@router.get("/outbox", response_class=HTMLResponse)
@page
def outbox_page(request: Request) -> Response:
    ctx = open_page(request, "worklist")
    q = request.query_params
    status = q.get("status") if q.get("status") in STATUS_FILTERS else "all"
    client_id = q.get("client_id") or None
    if client_id:
        check_page_portfolio(ctx, client_id)
    journal = outbox.load_messages(ctx.state.engine, statuses=None if status == "all" else [status],
                                   client_id=client_id)
    journal = _visible(ctx, journal)
    counts = journal["status"].value_counts().to_dict()
    journal = journal.head(OUTBOX_ROWS).copy()
    journal["client_name"] = journal["client_id"].map(client_names(ctx))
    journal["n_invoices"] = journal["invoice_ids"].map(len)
    return render(ctx, "outbox.html", rows=records(journal.drop(columns=["invoice_ids", "body"])), status=status,
                  statuses=STATUS_FILTERS, counts=counts, client_id=client_id, sent=q.get("sent"),
                  failed=q.get("failed"))


@router.get("/outbox/{message_id}", response_class=HTMLResponse)
@page
def outbox_message(request: Request, message_id: str) -> Response:
    ctx = open_page(request, "worklist")
    found = outbox.load_messages(ctx.state.engine, message_id=message_id)
    if found.empty:
        return error_page(ctx, 404, ctx.t("not_found"))
    row = found.iloc[0]
    check_page_portfolio(ctx, str(row["client_id"]))
    return render(ctx, "outbox_message.html", m=row.to_dict(),
                  client_name=client_names(ctx).get(row["client_id"], row["client_id"]))

"""Web pages for collectors, treasurers and credit managers (Jinja2 templates in ``templates/``).

Pages share ``serving.views`` and ``serving.current`` with the API, and the login form checks a key with
``serving.deps.authenticate``. The session is a signed cookie holding the key's row id (never the
key), checked against the store on every request so a revoked key logs out at once. Cookies are
``HttpOnly`` and ``SameSite=Strict``, and every form POST carries the session's CSRF token (the
login form: a double-submit token).

The day a page shows (``as_of``): ``?as_of=YYYY-MM-DD`` when given, else the day of the latest
stored score run on or before today (what ``encaisse score`` last produced), else today.

Roles follow ``serving.auth``: the worklist and client pages need ``worklist``/``clients`` (a
collector sees their own portfolio only), recording actions needs ``actions``, the forecast
``forecast`` and the KPI page ``kpis``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from models.collection import MAX_HORIZON, PERIOD_COLUMNS
from models.policy import NO_ACTION_BLOCK, NO_ACTION_DONE, RESOLVE_DISPUTE, REVIEW_PLAN, WAIT_PROMISE, load_policy
from serving import current, outcomes, views, writes
from serving.deps import authenticate
from serving.frames import float_values, plain_dict, records
from serving.i18n import fmt_pct
from serving.page_context import (Ctx, FormText, check_csrf, check_page_portfolio, client_names, context, epoch,
                                  error_page, home_path, open_page, page, render, safe_next, url)
from serving.schemas import ActionIn
from serving.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_MAX_AGE, set_cookie, sign_session

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

MAX_ROWS = 300
"""Worklist rows rendered at once (the count of the rest is shown)."""
NOT_ACTIONABLE = {NO_ACTION_BLOCK, NO_ACTION_DONE, RESOLVE_DISPUTE, WAIT_PROMISE, REVIEW_PLAN}
"""Next actions a 'mark done' button cannot close (they need a decision recorded on the client page)."""
SORTS = {"priority": "priority", "client": "client_name", "amount": "amount_remaining",
         "days_overdue": "days_overdue", "p_very_late": "p_very_late", "expected": "expected_payment_date",
         "next_action_date": "next_action_date"}


@lru_cache(maxsize=1)
def _policy():
    return load_policy()


def _step_channel(scenario: str | None, step: str) -> str | None:
    """The channel the policy uses for ``step`` in ``scenario`` (None when it does not say)."""
    policy = _policy()
    sc = policy.scenarios.get(scenario) if scenario else None
    for s in ([*sc.steps, *sc.plan_steps] if sc is not None else []):
        if s.step == step:
            return s.channel
    return None


# --- login -----------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    ctx = context(request)
    return RedirectResponse(home_path(ctx.principal) if ctx.principal else "/login", status_code=303)


def _login_page(ctx: Ctx, next_: str | None, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(ctx, "login.html", status_code=status_code, login_csrf=token, next=next_ or "", error=error)
    set_cookie(response, ctx.request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _login_page(context(request), safe_next(request.query_params.get("next")))


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, key: FormText = "", csrf: FormText = "", next: FormText = "") -> Response:
    ctx = context(request)
    next_ = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    sent = csrf
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        return _login_page(ctx, next_, ctx.t("login_expired"), status_code=403)
    principal = authenticate(ctx.state, key.strip())
    if principal is None:
        return _login_page(ctx, next_, ctx.t("login_invalid"), status_code=401)
    if home_path(principal) == "/login":
        return _login_page(ctx, next_, ctx.t("login_no_pages", role=principal.role), status_code=403)
    session = sign_session(ctx.state.session_secret,
                           {"kid": principal.key_id, "csrf": secrets.token_urlsafe(24), "iat": int(time.time())})
    response = RedirectResponse(next_ or home_path(principal), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, session, max_age=SESSION_MAX_AGE)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    log.info("page login: key %s (%s)", principal.prefix, principal.role)
    return response


@router.post("/logout")
@page
def logout(request: Request, csrf: FormText = "") -> Response:
    ctx = context(request)
    if ctx.principal is not None:
        check_csrf(ctx, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- worklist --------------------------------------------------------------------------------------


def _done_today(ctx: Ctx, invoice_ids) -> set[str]:
    """Invoices with an action recorded on the day shown: done for that day's list."""
    actions = current.current_ledger(ctx.state).ledger.actions
    if actions.empty:
        return set()
    recent = actions[(pd.to_datetime(actions["action_date"]) == ctx.day) & actions["invoice_id"].isin(set(invoice_ids))]
    return set(recent["invoice_id"].astype(str))


def _worklist_frame(ctx: Ctx) -> tuple[views.WorklistView, pd.DataFrame]:
    """The worklist rows of the day, the caller's portfolio only, with display columns added."""
    view = views.worklist_rows(ctx.state, ctx.day)
    rows = views.collector_rows(view.rows, views.visible_collector(ctx.principal)).copy()
    rows["client_name"] = rows["client_id"].map(client_names(ctx))
    if "days_overdue" not in rows.columns:  # stored runs keep the due date, not the days
        rows["days_overdue"] = (ctx.day - pd.to_datetime(rows["due_date"])).dt.days.clip(lower=0).astype("float64")
    rows["done_today"] = rows["invoice_id"].astype(str).isin(_done_today(ctx, rows["invoice_id"]))
    rows["actionable"] = (~rows["next_action"].isin(NOT_ACTIONABLE) & rows["next_action"].notna()
                          & (pd.to_datetime(rows["next_action_date"]) <= ctx.day) & ~rows["done_today"])
    return view, rows


@router.get("/worklist", response_class=HTMLResponse)
@page
def worklist_page(request: Request) -> Response:
    ctx = open_page(request, "worklist")
    q = request.query_params
    view, rows = _worklist_frame(ctx)
    collectors = sorted(rows["collector"].dropna().astype(str).unique())
    profiles = sorted(rows["profile"].dropna().astype(str).unique())
    collector = q.get("collector") or None
    profile = q.get("profile") or None
    show = "all" if q.get("show") == "all" else "today"
    sort = q.get("sort") if q.get("sort") in SORTS else "priority"
    order = "desc" if q.get("order") == "desc" else "asc"
    rows = views.collector_rows(rows, collector)
    if profile:
        rows = rows[rows["profile"] == profile]
    if show == "today":
        rows = rows[rows["priority"].notna() & ~rows["done_today"]]
    rows = views.order_worklist(rows, by=SORTS[sort], descending=order == "desc")
    total = len(rows)
    filters = {"collector": collector, "profile": profile, "show": show, "sort": sort, "order": order,
               "as_of": q.get("as_of")}
    done = q.get("done")
    return render(ctx, "worklist.html", view=view, rows=records(rows.head(MAX_ROWS)), total=total,
                  collectors=collectors, profiles=profiles, filters=filters, done=done,
                  can_act=ctx.may("actions"), back=urlencode({k: v for k, v in filters.items() if v}))


@router.post("/worklist/done")
@page
def mark_done(request: Request, invoice_id: FormText = "", csrf: FormText = "", back: FormText = "") -> Response:
    ctx = open_page(request, "actions")
    check_csrf(ctx, csrf)
    _, rows = _worklist_frame(ctx)
    match = rows[rows["invoice_id"].astype(str) == invoice_id]
    if match.empty:
        return error_page(ctx, 404, ctx.t("not_found"))
    row = match.iloc[0]
    check_page_portfolio(ctx, str(row["client_id"]))
    if not bool(row["actionable"]):
        return error_page(ctx, 409, ctx.t("nothing_to_mark"))
    step = str(row["next_action"])
    writes.record_action(ctx.state, {
        "client_id": str(row["client_id"]), "invoice_id": invoice_id, "action_date": ctx.day.date(), "step": step,
        "channel": _step_channel(row.get("scenario"), step), "outcome": "done"}, principal=ctx.principal)
    params = {k: v for k, v in parse_qsl(back) if k in ("collector", "profile", "show", "sort", "order", "as_of")}
    return RedirectResponse(url("/worklist", **params, done=invoice_id), status_code=303)


# --- client ----------------------------------------------------------------------------------------


def _client_page(ctx: Ctx, client_id: str, status_code: int = 200, error: str | None = None,
                 form: dict | None = None) -> HTMLResponse:
    try:
        view = views.score_client(ctx.state, client_id, ctx.day)
    except current.NoModelError:
        raise
    except LookupError:
        return error_page(ctx, 404, ctx.t("not_found"))
    index = current.current_ledger(ctx.state)
    led = index.ledger
    own = led.invoices.iloc[index.invoices_of_client.get(client_id, np.array([], dtype=int))]
    paid = own[(own["doc_type"] == "invoice") & own["paid_date"].notna() & (own["paid_date"] < ctx.day)]
    paid = paid.sort_values("paid_date", kind="stable")
    history = {"x": epoch(paid["paid_date"]),
               "y": (paid["paid_date"] - paid["due_date"]).dt.days.astype("int64").tolist(),
               "label": ctx.t("days_late")}
    acts = led.actions.iloc[index.actions_of_client.get(client_id, np.array([], dtype=int))]
    acts = acts.sort_values(["action_date", "action_id"], ascending=[False, False], kind="stable").head(CLIENT_ACTION_ROWS)
    inv = view.invoices.copy()
    if "days_overdue" not in inv.columns:
        inv["days_overdue"] = (ctx.day - pd.to_datetime(inv["due_date"])).dt.days.clip(lower=0)
    defaults = {"kind": "call", "invoice_id": "", "action_date": ctx.day.date().isoformat(), "outcome": "no_answer",
                "promise_date": "", "promise_amount": ""}
    return render(ctx, "client.html", status_code=status_code, view=view, history=history,
                  n_paid=len(paid), invoices=records(inv), actions=records(acts), error=error,
                  form={**defaults, **(form or {})}, saved=ctx.request.query_params.get("saved") == "1",
                  can_act=ctx.may("actions"), as_of=ctx.request.query_params.get("as_of"))


@router.get("/clients/{client_id}", response_class=HTMLResponse)
@page
def client_page(request: Request, client_id: str) -> Response:
    ctx = open_page(request, "clients")
    check_page_portfolio(ctx, client_id)
    return _client_page(ctx, client_id)


CLIENT_ACTION_ROWS = 60
"""Actions a client page shows, the newest first (those recorded since the page's day included)."""

KINDS = {"call": ("call", "call"), "promise": ("promise", "call"), "dispute": ("dispute", "call")}
"""Form choice -> (ledger step, channel)."""
CALL_OUTCOMES = ("reached", "no_answer", "refused")


@router.post("/clients/{client_id}/actions", response_class=HTMLResponse)
@page
def record_client_action(request: Request, client_id: str, kind: FormText = "", invoice_id: FormText = "",
                         action_date: FormText = "", outcome: FormText = "", promise_date: FormText = "",
                         promise_amount: FormText = "", csrf: FormText = "") -> Response:
    ctx = open_page(request, "actions")
    form = {k: v.strip() for k, v in dict(kind=kind, invoice_id=invoice_id, action_date=action_date, outcome=outcome,
                                           promise_date=promise_date, promise_amount=promise_amount, csrf=csrf).items()}
    check_csrf(ctx, form.get("csrf"))
    check_page_portfolio(ctx, client_id)
    kind = form.get("kind", "")
    if kind not in KINDS:
        return _client_page(ctx, client_id, 422, ctx.t("action_invalid", detail=f"kind={kind!r}"), form)
    step, channel = KINDS[kind]
    outcome = {"promise": "promise", "dispute": "dispute"}.get(kind) or (
        form.get("outcome") if form.get("outcome") in CALL_OUTCOMES else None)
    row = {"client_id": client_id, "invoice_id": form.get("invoice_id") or None,
           "action_date": form.get("action_date") or ctx.day.date().isoformat(), "step": step, "channel": channel,
           "outcome": outcome}
    if kind == "promise":
        if not form.get("promise_date"):
            return _client_page(ctx, client_id, 422, ctx.t("action_invalid", detail=ctx.t("promise_needs_date")), form)
        row.update(promise_date=form.get("promise_date"), promise_amount=form.get("promise_amount") or None)
    try:
        action = ActionIn.model_validate(row)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _client_page(ctx, client_id, 422, ctx.t("action_invalid", detail=detail), form)
    try:
        writes.record_action(ctx.state, action.model_dump(), principal=ctx.principal)
    except LookupError as exc:
        return _client_page(ctx, client_id, 422, ctx.t("action_invalid", detail=str(exc)), form)
    except outcomes.RowsRejected as exc:
        detail = "; ".join(r["reason"] for r in exc.outcome.rejects)
        return _client_page(ctx, client_id, 422, ctx.t("action_invalid", detail=detail), form)
    return RedirectResponse(url(f"/clients/{client_id}", saved=1, as_of=request.query_params.get("as_of")),
                            status_code=303)


# --- forecast --------------------------------------------------------------------------------------


def _forecast_args(request: Request) -> tuple[int, str]:
    try:
        horizon = min(max(int(request.query_params.get("horizon", 13)), 1), MAX_HORIZON)
    except ValueError:
        horizon = 13
    freq = "D" if request.query_params.get("freq") == "D" else "W"
    return horizon, freq


@router.get("/forecast", response_class=HTMLResponse)
@page
def forecast_page(request: Request) -> Response:
    ctx = open_page(request, "forecast")
    horizon, freq = _forecast_args(request)
    fc = views.forecast(ctx.state, ctx.day, horizon=horizon, freq=freq)
    frame = fc.periods
    chart = {"x": epoch(frame["period_start"]),
             "expected": float_values(frame["expected_amount"]), "low": float_values(frame["low"]),
             "high": float_values(frame["high"]), "due": float_values(frame["due_schedule_amount"]),
             "labels": {"period": ctx.t("col_period"), "expected": ctx.t("col_expected"), "low": ctx.t("col_low"),
                        "high": ctx.t("col_high"), "due": ctx.t("col_due_schedule")}}
    csv_url = url("/forecast.csv", horizon=horizon, freq=freq, as_of=request.query_params.get("as_of"))
    return render(ctx, "forecast.html", periods=records(frame, PERIOD_COLUMNS), chart=chart,
                  totals=plain_dict(fc.totals), n=fc.n_invoices, horizon=horizon, max_horizon=MAX_HORIZON, freq=freq, csv_url=csv_url)


@router.get("/forecast.csv")
@page
def forecast_csv(request: Request) -> Response:
    ctx = open_page(request, "forecast")
    horizon, freq = _forecast_args(request)
    fc = views.forecast(ctx.state, ctx.day, horizon=horizon, freq=freq)
    name = f"encaisse-forecast-{ctx.day.date()}-{horizon}{freq}.csv"
    return Response(fc.to_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# --- KPIs ------------------------------------------------------------------------------------------


@router.get("/kpis", response_class=HTMLResponse)
@page
def kpis_page(request: Request) -> Response:
    ctx = open_page(request, "kpis")
    try:
        period_days = min(max(int(request.query_params.get("period_days", 90)), 1), 3650)
    except ValueError:
        period_days = 90
    k = views.kpis(ctx.state, ctx.day, period_days=period_days)
    buckets = list(k["aging"])
    names = [ctx.t("bucket_not_due") if b == "not_due" else ctx.t("bucket_days", bucket=b) for b in buckets]
    chart = {"labels": names, "amounts": [float(k["aging"][b]["amount"]) for b in buckets],
             "label": ctx.t("amount")}
    doubtful = sorted(k["doubtful"], key=lambda r: -r["outstanding"])
    return render(ctx, "kpis.html", k=k, aging=list(zip(names, [k["aging"][b] for b in buckets])), chart=chart,
                  doubtful=doubtful[:100], n_doubtful=len(doubtful), names=client_names(ctx).to_dict(),
                  period_days=period_days)


# --- measured uplift -------------------------------------------------------------------------------


@router.get("/uplift", response_class=HTMLResponse)
@page
def uplift_page(request: Request) -> Response:
    ctx = open_page(request, "kpis")
    u = views.uplift(ctx.state, ctx.day)

    def points(v) -> str:
        return "" if v is None else ("+" if v > 0 else "") + fmt_pct(v, ctx.lang, 1)

    labels = {"uplift": ctx.t("uplift_chart_estimate"), "low": ctx.t("uplift_chart_low"), "high": ctx.t("uplift_chart_high"),
              "period": ctx.t("col_period")}
    charts = {step: {**c, "labels": labels} for step, c in views.uplift_charts(u).items()}
    return render(ctx, "uplift.html", u=u, windows=(7, 14, 30), points=points, charts=charts)

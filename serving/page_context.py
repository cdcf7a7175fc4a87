"""What every web page shares: who is calling, in which language, on which day, and how a page is rendered.

``open_page`` gives a page its context (``Ctx``) or stops it with a redirect to the login page
or a 403 page; ``page`` turns those stops, a missing model and a busy store into responses.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ledger.rules import FIRST_DAY, LAST_DAY, parse_iso_day
from ledger.scores_store import list_score_runs
from ledger.writes import StoreBusyError
from serving import current
from serving.auth import allows
from serving.deps import check_portfolio
from serving.i18n import LANG_COOKIE, LANGS, fmt_amount, fmt_date, fmt_number, fmt_pct, label, pick_lang, translate
from serving.keys import Principal, principal_of_key_id
from serving.sessions import SESSION_COOKIE, read_session
from serving.state import ServiceState

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

FormText = Annotated[str, Form(max_length=512)]
"""A text field of a page's form (longer is a 422)."""

PAGE_PERMISSIONS = (("worklist", "worklist", "/worklist"), ("forecast", "forecast", "/forecast"),
                    ("kpis", "kpis", "/kpis"), ("uplift", "kpis", "/uplift"), ("outbox", "worklist", "/outbox"),
                    ("forecast_vs_actual", "forecast", "/monitoring/forecast"),
                    ("model_health", "forecast", "/monitoring/health"))
"""(nav key, permission, path) of the pages in the menu."""


@dataclass
class Ctx:
    """What every page knows: the request, the caller, the language, the CSRF token, the day shown."""

    request: Request
    state: ServiceState
    lang: str
    principal: Principal | None = None
    csrf: str = ""
    day: pd.Timestamp | None = None

    def t(self, key: str, **values: Any) -> str:
        return translate(key, self.lang, **values)

    def may(self, permission: str) -> bool:
        return self.principal is not None and allows(self.principal.role, permission)


def lang_of(request: Request) -> str:
    return pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                     request.headers.get("accept-language"))


def context(request: Request) -> Ctx:
    state: ServiceState = request.app.state.encaisse
    ctx = Ctx(request=request, state=state, lang=lang_of(request))
    payload = read_session(state.session_secret, request.cookies.get(SESSION_COOKIE))
    if payload is not None:
        ctx.principal = principal_of_key_id(state.engine, payload.get("kid"))
        ctx.csrf = str(payload.get("csrf", ""))
    return ctx


def page_day(ctx: Ctx) -> pd.Timestamp:
    """``?as_of`` when given; else the latest stored score run's day on or before today; else today.

    Raises:
        Stop: a 422 page when ``as_of`` is not a YYYY-MM-DD day within the API's range of days.
    """
    given = ctx.request.query_params.get("as_of")
    if given:
        day = parse_iso_day(given)
        if day is None:
            raise Stop(error_page(ctx, 422, ctx.t("bad_day", given=given[:40], first=FIRST_DAY.date(),
                                                  last=LAST_DAY.date())))
        return day
    today = current.today()
    runs = list_score_runs(ctx.state.engine)
    runs = runs[runs["as_of"] <= today] if len(runs) else runs
    return pd.Timestamp(runs["as_of"].max()).normalize() if len(runs) else today


def url(path: str, **params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def lang_url(request: Request, lang: str) -> str:
    params = dict(request.query_params)
    params["lang"] = lang
    return url(request.url.path, **params)


def render(ctx: Ctx, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a page with the helpers every template uses; remember a ``?lang=`` choice in a cookie."""
    lang = ctx.lang
    nav = [(translate(f"nav_{key}", lang), path, ctx.request.url.path.startswith(path))
           for key, perm, path in PAGE_PERMISSIONS if ctx.may(perm)]
    response = templates.TemplateResponse(ctx.request, template, {
        "ctx": ctx, "lang": lang, "t": ctx.t, "nav": nav, "principal": ctx.principal, "csrf": ctx.csrf,
        "lang_urls": {code: lang_url(ctx.request, code) for code in LANGS},
        "amount": lambda v, cur="EUR", digits=0: fmt_amount(v, lang, cur, digits),
        "number": lambda v, digits=0: fmt_number(v, lang, digits),
        "pct": lambda v, digits=0: fmt_pct(v, lang, digits),
        "day": lambda v: fmt_date(v, lang),
        "step": lambda v: label("step", v, lang),
        "profile_name": lambda v: label("profile", v, lang),
        "channel": lambda v: label("channel", v, lang),
        "outcome": lambda v: label("outcome", v, lang),
        "url": url, **values,
    }, status_code=status_code)
    chosen = ctx.request.query_params.get("lang")
    if chosen in LANGS:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="strict", path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(ctx: Ctx, status_code: int, message: str) -> HTMLResponse:
    return render(ctx, "error.html", status_code=status_code, message=message)


class Stop(Exception):
    """A response to send instead of the page (a redirect to the login, a 403, a 503)."""

    def __init__(self, response: Response):
        self.response = response


def open_page(request: Request, permission: str) -> Ctx:
    """The page context of a logged-in caller with ``permission``.

    Raises:
        Stop: a redirect to the login page, or a 403 page.
    """
    ctx = context(request)
    if ctx.principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Stop(RedirectResponse(url("/login", next=target), status_code=303))
    if not ctx.may(permission):
        raise Stop(error_page(ctx, 403, ctx.t("forbidden", role=ctx.principal.role)))
    ctx.day = page_day(ctx)
    return ctx


def check_csrf(ctx: Ctx, token: str | None) -> None:
    if not ctx.csrf or not token or not hmac.compare_digest(ctx.csrf, str(token)):
        raise Stop(error_page(ctx, 403, ctx.t("csrf_failed")))


def check_page_portfolio(ctx: Ctx, client_id: str) -> None:
    try:
        check_portfolio(ctx.state, ctx.principal, client_id)
    except HTTPException:
        raise Stop(error_page(ctx, 403, ctx.t("forbidden", role=ctx.principal.role))) from None


def page(handler):
    """Turn a ``Stop`` into its response, and a missing model or a busy store into a 503 page."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Stop as stop:
            return stop.response
        except current.NoModelError as exc:
            request = kwargs.get("request") or args[0]
            return error_page(context(request), 503, translate("no_model", lang_of(request), detail=str(exc)))
        except StoreBusyError as exc:  # nothing was stored: the same form can be sent again
            request = kwargs.get("request") or args[0]
            response = error_page(context(request), 503, str(exc))
            response.headers["Retry-After"] = "5"
            return response

    return wrapper


def home_path(principal: Principal) -> str:
    for _, perm, path in PAGE_PERMISSIONS:
        if allows(principal.role, perm):
            return path
    return "/login"


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no ``//host``) may be a redirect target."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def client_names(ctx: Ctx) -> pd.Series:
    clients = current.current_ledger(ctx.state).ledger.clients
    if clients.empty:
        return pd.Series(dtype=object)
    return clients.drop_duplicates("client_id", keep="last").set_index("client_id")["name"]


def epoch(values: pd.Series) -> list[int]:
    """Days as Unix seconds (what uPlot's time axis reads)."""
    return (pd.to_datetime(values).astype("datetime64[s]").astype("int64")).tolist()

"""Rendering a message from its Jinja2 templates, the company's overrides first.

Each template name of the policy has, per language (``fr``, ``en``), files under
``models/messages/templates/{lang}/``:

* ``NAME.subject.txt``: the subject (or an SMS/call label), folded onto one line;
* ``NAME.txt``: the text body (an email, an SMS, a call script);
* ``NAME.html`` (optional): an HTML body. Without one, emails and letters get the text body in
  ``_layout.html``; SMS and call scripts get none;
* ``NAME.letter.txt`` (optional): the body of a PDF letter attached to the message
  (``mise_en_demeure`` ships one: the formal notice, see :mod:`models.messages.letter`).

A company overrides any of these files by putting one of the same name under
``$ENCAISSE_HOME/templates/{lang}/`` (or the ``overrides_dir`` given): it is looked up there first.
Templates run in Jinja2's sandbox with ``StrictUndefined`` (a misspelt variable is an error naming
the file, the line and the variable, not an empty gap) and HTML files are autoescaped. Filters:
``money(currency)``, ``day``, ``longday`` and ``percent``, formatted for the message's language.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ledger.contracts import LANGUAGES

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

TEMPLATE_KINDS = {
    "notice_before_due": "email",
    "reminder_courteous": "email",
    "reminder_firm": "email",
    "reminder_sms": "sms",
    "call_friendly": "call",
    "call_firm": "call",
    "call_pre_due": "call",
    "mise_en_demeure": "letter",
    "agency_handover": "letter",
    "payment_plan_offer": "call",
    "payment_plan_followup": "email",
    "payment_plan_review": "call",
    "instalment_notice": "email",
    "instalment_reminder": "sms",
    "instalment_call": "call",
}
"""The shipped templates and what each is: an email, an SMS, a call script or a letter (sent by
email with the letter attached, or printed). A template a company adds in its workspace is
rendered as an email."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
_NBSP = "\u00a0"
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message."""

    filename: str
    mime_type: str
    content: bytes


@dataclass(frozen=True)
class Message:
    """One rendered message: for one client, one step, in one language."""

    template: str
    language: str
    subject: str
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]


class MessageTemplateError(ValueError):
    """A template that cannot be rendered: missing, invalid, or using an unknown variable."""


# --- filters ---------------------------------------------------------------------------------------


def _group(value: float, sep: str, dec: str) -> str:
    text = f"{abs(value):,.2f}"
    whole, cents = text.split(".")
    return ("-" if value < 0 else "") + whole.replace(",", sep) + dec + cents


def format_money(value: float, currency: str = "EUR", language: str = "fr") -> str:
    """``1234.5, 'EUR'`` -> ``1 234,50 €`` (fr) or ``€1,234.50`` (en); other currencies by code."""
    value = float(value)
    if language == "fr":
        symbol = "€" if currency == "EUR" else currency
        return _group(value, _NBSP, ",") + _NBSP + symbol
    text = _group(value, ",", ".")
    return ("€" + text) if currency == "EUR" else f"{currency}{_NBSP}{text}"


def format_day(value: dt.date, language: str = "fr") -> str:
    """``04/12/2026`` (fr) or ``2026-12-04`` (en, unambiguous)."""
    return value.strftime("%d/%m/%Y") if language == "fr" else value.isoformat()


def format_long_day(value: dt.date, language: str = "fr") -> str:
    """``4 décembre 2026`` (fr, ``1er`` for the first) or ``4 December 2026`` (en)."""
    month = _MONTHS[language][value.month - 1]
    first = "1er" if language == "fr" and value.day == 1 else str(value.day)
    return f"{first} {month} {value.year}"


def format_percent(value: float, language: str = "fr") -> str:
    """``12.15`` -> ``12,15 %`` (fr) or ``12.15%`` (en)."""
    text = f"{float(value):.2f}"
    return text.replace(".", ",") + _NBSP + "%" if language == "fr" else text + "%"


def _lang(ctx: Any) -> str:
    return ctx.get("language", LANGUAGES[0])


@jinja2.pass_context
def _money(ctx, value, currency="EUR"):
    return format_money(value, currency, _lang(ctx))


@jinja2.pass_context
def _dayf(ctx, value):
    return format_day(value, _lang(ctx))


@jinja2.pass_context
def _longday(ctx, value):
    return format_long_day(value, _lang(ctx))


@jinja2.pass_context
def _percent(ctx, value):
    return format_percent(value, _lang(ctx))


# --- environment -----------------------------------------------------------------------------------


def default_overrides_dir() -> Path:
    """The workspace's template folder: ``$ENCAISSE_HOME/templates`` (not created)."""
    from ledger.workspace import Settings

    return Settings().home.expanduser().resolve() / "templates"


@functools.lru_cache(maxsize=16)
def _environment(overrides: str) -> SandboxedEnvironment:
    loaders = [jinja2.FileSystemLoader(overrides)] if overrides else []
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader([*loaders, jinja2.FileSystemLoader(str(TEMPLATES_DIR))]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(money=_money, day=_dayf, longday=_longday, percent=_percent)
    return env


def _where(exc: BaseException, fallback: str) -> tuple[str, int | None]:
    """The template file and line an error was raised in (Jinja rewrites tracebacks to them)."""
    filename = getattr(exc, "filename", None)
    lineno = getattr(exc, "lineno", None)
    if filename:
        return filename, lineno
    tb = exc.__traceback__
    found: tuple[str, int | None] = (fallback, None)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".txt", ".html")):
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _render(env: SandboxedEnvironment, name: str, context: dict, *, required: bool) -> str | None:
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        if not required:
            return None
        raise MessageTemplateError(f"no template {name!r}: neither the workspace templates nor the shipped ones "
                                   f"(models/messages/templates) have it.") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise MessageTemplateError(f"{exc.filename or name}, line {exc.lineno}: template syntax error: "
                                   f"{exc.message}") from exc
    try:
        return template.render(context)
    except jinja2.TemplateNotFound as exc:
        raise MessageTemplateError(f"{template.filename or name} includes or imports {exc.name!r}, which exists "
                                   "neither in the workspace templates nor in the shipped ones.") from exc
    except jinja2.UndefinedError as exc:
        where, line = _where(exc, template.filename or name)
        raise MessageTemplateError(
            f"{where}{f', line {line}' if line else ''}: {exc.message} (a template sees: "
            f"{', '.join(sorted(context))})") from exc
    except jinja2.TemplateError as exc:
        where, line = _where(exc, template.filename or name)
        raise MessageTemplateError(f"{where}{f', line {line}' if line else ''}: {exc}") from exc


def template_files(name: str, language: str, overrides_dir: Path | None = None) -> dict[str, Path]:
    """Which file each part of a template comes from (override first), for listing and checks."""
    out = {}
    roots = ([Path(overrides_dir)] if overrides_dir else []) + [TEMPLATES_DIR]
    for part in ("subject.txt", "txt", "html", "letter.txt"):
        for root in roots:
            path = root / language / f"{name}.{part}"
            if path.is_file():
                out[part] = path
                break
    return out


def render_message(template: str, context: dict, *, language: str | None = None,
                   overrides_dir: Path | None = None) -> Message:
    """Render the message ``template`` for ``context`` (from ``build_message_context``).

    Args:
        template: a template name of the policy (``reminder_courteous``, ``mise_en_demeure``, ...).
        context: what the templates see.
        language: 'fr' or 'en'; default the context's (the client's language).
        overrides_dir: the company's templates, looked up first (``{lang}/NAME.txt`` ...); default
            ``$ENCAISSE_HOME/templates``. A folder that does not exist means no override.

    Returns:
        The subject (one line), text, HTML (emails and letters) and attachments (the PDF letter
        for templates with a ``.letter.txt``, such as ``mise_en_demeure``).

    Raises:
        MessageTemplateError: unknown template or language, or a template that fails; the message
            names the file, the line and the problem.
    """
    if not isinstance(template, str) or not _NAME.match(template):
        raise MessageTemplateError(f"template names are lower-case letters, digits and '_'. Got {template!r} instead.")
    lang = language or context.get("language") or LANGUAGES[0]
    if lang not in LANGUAGES:
        raise MessageTemplateError(f"language must be one of {', '.join(LANGUAGES)}. Got {lang!r} instead.")
    overrides = Path(overrides_dir) if overrides_dir is not None else default_overrides_dir()
    env = _environment(str(overrides) if overrides.is_dir() else "")
    ctx = {**context, "language": lang, "template": template}
    subject = " ".join((_render(env, f"{lang}/{template}.subject.txt", ctx, required=True) or "").split())
    text = _BLANK_LINES.sub("\n\n", _render(env, f"{lang}/{template}.txt", ctx, required=True) or "").strip() + "\n"
    kind = TEMPLATE_KINDS.get(template, "email")
    html = _render(env, f"{lang}/{template}.html", ctx, required=False)
    if html is None and kind in ("email", "letter"):
        listed = (ctx.get("overdue") or ctx.get("invoices")) if kind == "letter" else ctx.get("invoices")
        html = _render(env, "_layout.html", {**ctx, "subject": subject, "body": text, "listed": listed or []},
                       required=True)
    attachments: tuple[Attachment, ...] = ()
    letter = _render(env, f"{lang}/{template}.letter.txt", ctx, required=False)
    if letter is not None:
        from models.messages.letter import build_letter_pdf, letter_filename

        pdf = build_letter_pdf(ctx, title=subject, body=letter)
        attachments = (Attachment(letter_filename(ctx), "application/pdf", pdf),)
    return Message(template=template, language=lang, subject=subject, text=text, html=html,
                   attachments=attachments)

"""Number, amount, percentage and date formatting per language (English or French)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NNBSP = "\u202f"  # French thousands separator and the space before % and €


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_number(value: Any, lang: str, digits: int = 0) -> str:
    """``1,234.5`` (en) or ``1 234,5`` (fr); empty for a missing value."""
    if _missing(value):
        return ""
    text = f"{float(value):,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", _NNBSP).replace(".", ",")
    return text


def fmt_amount(value: Any, lang: str, currency: str | None = "EUR", digits: int = 0) -> str:
    """``€1,234`` (en) or ``1 234 €`` (fr); the ISO code for currencies without a symbol."""
    if _missing(value):
        return ""
    cur = currency or ""
    symbol = _CURRENCY_SYMBOLS.get(cur, cur)
    number = fmt_number(abs(float(value)), lang, digits)
    sign = "-" if float(value) < 0 else ""
    if lang == "fr":
        return f"{sign}{number}{_NNBSP}{symbol}".strip()
    if symbol in _CURRENCY_SYMBOLS.values():
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {symbol}".strip()


def fmt_pct(value: Any, lang: str, digits: int = 0) -> str:
    """A share in [0, 1] as ``12%`` (en) or ``12 %`` (fr)."""
    if _missing(value):
        return ""
    number = fmt_number(100 * float(value), lang, digits)
    return f"{number}{_NNBSP}%" if lang == "fr" else f"{number}%"


def fmt_date(value: Any, lang: str) -> str:
    """``31 Dec 2025`` (en) or ``31/12/2025`` (fr); empty for a missing value."""
    if value is None or value != value:  # NaT compares unequal to itself
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        try:
            value = value.date()  # pandas Timestamp
        except AttributeError:
            return str(value)
    if lang == "fr":
        return value.strftime("%d/%m/%Y")
    return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"

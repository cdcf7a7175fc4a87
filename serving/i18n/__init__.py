"""Every string of the web pages, in English and French, and number/date formatting per language.

One catalogue (:data:`MESSAGES`), one key per string, merged from the page areas' catalogues
(``pages``, ``dunning``, ``monitoring``); both languages hold the same keys. Templates call
``t("key")``; amounts, percentages and days go through :func:`fmt_amount`, :func:`fmt_pct`,
:func:`fmt_number` and :func:`fmt_date`.

What the model writes (reasons such as "pays 12 days late on average") stays in English: it comes
from ``models/`` and is not translated here.
"""

from __future__ import annotations

import math
from typing import Any

from serving.i18n.dunning import DUNNING_MESSAGES
from serving.i18n.formats import fmt_amount, fmt_date, fmt_number, fmt_pct
from serving.i18n.monitoring import MONITORING_MESSAGES
from serving.i18n.pages import PAGE_MESSAGES

__all__ = ["DEFAULT_LANG", "DUNNING_MESSAGES", "LANG_COOKIE", "LANGS", "MESSAGES", "MONITORING_MESSAGES", "PAGE_MESSAGES",
           "fmt_amount", "fmt_date", "fmt_number", "fmt_pct", "label", "pick_lang", "translate"]

LANGS = ("en", "fr")
DEFAULT_LANG = "en"
LANG_COOKIE = "encaisse_lang"

MESSAGES: dict[str, dict[str, str]] = {
    lang: {**PAGE_MESSAGES[lang], **DUNNING_MESSAGES[lang], **MONITORING_MESSAGES[lang]} for lang in PAGE_MESSAGES
}
"""UI strings by language, then key; ``{name}`` placeholders are filled by :func:`translate`."""


def pick_lang(*candidates: str | None) -> str:
    """The first supported language among ``candidates`` (query, cookie, Accept-Language), else English."""
    for c in candidates:
        if not c:
            continue
        for part in c.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in LANGS:
                return code
    return DEFAULT_LANG


def translate(key: str, lang: str, **values: Any) -> str:
    """The string ``key`` in ``lang`` (English, then the key itself, when missing), placeholders filled."""
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT_LANG].get(key) or key
    return text.format(**values) if values else text


def label(prefix: str, value: Any, lang: str) -> str:
    """A policy name (``step_*``, ``profile_*``) in ``lang``; the raw value when it has no entry."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    key = f"{prefix}_{value}"
    return translate(key, lang) if key in MESSAGES[DEFAULT_LANG] else str(value)

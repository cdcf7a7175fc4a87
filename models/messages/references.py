"""Payment references: an ISO 11649 creditor reference (``RF`` + 2 check digits + up to 21
characters) derived from an invoice id, so the same invoice always carries the same reference.

Scheme: the invoice id's letters and digits, upper-cased, when that keeps it whole and at most 21
characters long (``INV000123`` -> ``RF73INV000123``: the payer and the bank statement show the
invoice itself); otherwise ``H`` + 20 base-36 characters of a BLAKE2b digest of the id (stable,
not reversible: look the invoice up by recomputing its reference). Banks in the SEPA area check the
two digits (mod 97, as for an IBAN), which catches typing errors.
"""

from __future__ import annotations

import hashlib
import re

_ALNUM = re.compile(r"[^0-9A-Za-z]")
_DIGITS36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_BODY = 21


def _to_digits(text: str) -> int:
    """ISO 7064 mod 97-10 conversion: digits stay, A=10 ... Z=35."""
    return int("".join(str(int(ch, 36)) for ch in text))


def creditor_reference(body: str) -> str:
    """``RF`` + check digits + ``body`` (1 to 21 letters or digits)."""
    body = body.upper()
    if not 1 <= len(body) <= MAX_BODY or _ALNUM.search(body):
        raise ValueError(f"A creditor reference body is 1 to {MAX_BODY} letters or digits. Got {body!r} instead.")
    check = 98 - _to_digits(body + "RF00") % 97
    return f"RF{check:02d}{body}"


def is_valid_reference(ref: str) -> bool:
    """Whether ``ref`` (spaces allowed) is a well-formed ISO 11649 reference with correct check digits."""
    ref = ref.replace(" ", "").upper()
    if not re.fullmatch(r"RF\d{2}[0-9A-Z]{1,21}", ref):
        return False
    return _to_digits(ref[4:] + ref[:4]) % 97 == 1


def invoice_reference(invoice_id: str) -> str:
    """The stable payment reference of one invoice (see the module docstring for the scheme)."""
    text = str(invoice_id)
    body = _ALNUM.sub("", text)
    if body != text or not body or len(body) > MAX_BODY:
        n = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")
        chars = []
        for _ in range(MAX_BODY - 1):
            n, r = divmod(n, 36)
            chars.append(_DIGITS36[r])
        body = "H" + "".join(chars)
    return creditor_reference(body)


def format_reference(ref: str) -> str:
    """``RF18539007547034`` -> ``RF18 5390 0754 7034`` (groups of four, as printed on paper)."""
    return " ".join(ref[i:i + 4] for i in range(0, len(ref), 4))

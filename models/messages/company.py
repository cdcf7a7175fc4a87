"""The creditor shown on messages and letters: name, address, SIREN, VAT number, IBAN.

A company writes it once in its workspace, ``$ENCAISSE_HOME/company.yaml``::

    name: Dupont Industrie SAS
    address: |
      12 rue de la Gare
      69002 LYON
    siren: "552100554"
    vat_number: FR40552100554          # optional
    iban: FR7630006000011234567890189
    bic: AGRIFRPP                      # optional
    email: recouvrement@dupont-industrie.fr
    phone: "+33 4 72 00 00 00"
    city: Lyon                         # "Fait à Lyon" on letters; default: none
    signatory: Service recouvrement    # optional

Without that file, :data:`DEMO_COMPANY` is used: an invented company with the French
administration's documentation IBAN, flagged ``demo``, and every letter made with it says so in its
header. Values are checked at load (SIREN and IBAN check digits), so a typo fails before a letter
is sent.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

COMPANY_FILE = "company.yaml"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


class Company(BaseModel):
    """The creditor. ``demo`` marks the invented default (letters then carry a warning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=120)
    address: str = Field(min_length=1, max_length=400, description="Postal address, lines separated by newlines.")
    siren: str = Field(description="French company number, 9 digits (Luhn check).")
    vat_number: str | None = None
    iban: str = Field(description="Account to pay to (mod-97 check).")
    bic: str | None = None
    email: str | None = None
    phone: str | None = None
    city: str | None = None
    signatory: str | None = None
    demo: bool = False

    @field_validator("siren")
    @classmethod
    def _siren(cls, v: str) -> str:
        v = v.replace(" ", "")
        if not (len(v) == 9 and v.isdigit() and _luhn_ok(v)):
            raise ValueError(f"a SIREN is 9 digits with a valid check digit; got {v!r}")
        return v

    @field_validator("iban")
    @classmethod
    def _iban(cls, v: str) -> str:
        v = v.replace(" ", "").upper()
        ok = 15 <= len(v) <= 34 and v[:2].isalpha() and v[2:4].isdigit() and v.isalnum()
        if not ok or int("".join(str(int(c, 36)) for c in v[4:] + v[:4])) % 97 != 1:
            raise ValueError(f"not a valid IBAN (country, check digits, account; mod-97 check): {v!r}")
        return v

    @property
    def address_lines(self) -> list[str]:
        return [line.strip() for line in self.address.splitlines() if line.strip()]

    @property
    def iban_display(self) -> str:
        return " ".join(self.iban[i:i + 4] for i in range(0, len(self.iban), 4))

    def as_context(self) -> dict:
        """What templates see as ``company``."""
        return {**self.model_dump(), "address_lines": self.address_lines, "iban_display": self.iban_display}


DEMO_COMPANY = Company(
    name="Encaisse Démo SAS (société fictive)",
    address="10 rue de la Démonstration\n69002 LYON",
    siren="000000000",
    vat_number=None,
    iban="FR7630006000011234567890189",
    bic=None,
    email="recouvrement@demo.encaisse.invalid",
    phone="+33 4 00 00 00 00",
    city="Lyon",
    signatory="Service recouvrement",
    demo=True,
)
"""An invented creditor for the demo and tests: not a real company, and its IBAN is the
documentation example (``FR76 3000 6000 0112 3456 7890 189``), its SIREN all zeros. Letters made
with it say so."""


class CompanyError(ValueError):
    """A company file that cannot be used, with the file and every problem named."""


def load_company(home: Path | str | None) -> Company:
    """The company of the workspace ``home`` (``company.yaml``), or :data:`DEMO_COMPANY` if it has none.

    Raises:
        CompanyError: the file exists but is unreadable, not YAML, or fails validation.
    """
    if home is None:
        return DEMO_COMPANY
    path = Path(home) / COMPANY_FILE
    if not path.exists():
        return DEMO_COMPANY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Company.model_validate(data if isinstance(data, dict) else {})
    except (OSError, yaml.YAMLError) as exc:
        raise CompanyError(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise CompanyError(f"{path} is not a valid company file: {problems}") from exc

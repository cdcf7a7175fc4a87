"""Mappings: how an ERP export's columns become a canonical table, written as YAML.

A mapping is checked when loaded (pydantic, unknown keys refused), so a typo fails before any row
is read, with the key's path and a suggestion::

    table: invoices
    source: {format: csv, delimiter: ";", encoding: latin-1, decimal: ","}
    columns:
      invoice_id: DOCNUM                       # shorthand for {column: DOCNUM}
      issue_date: {column: DATUM, format: "%Y-%m-%d", not_after: [due_date, paid_date]}
      paid_date: {column: PAYMENT_DATE, format: "%Y%m%d"}   # 20180109 or 20180109.0; empty = open
      currency: {value: EUR}                   # a constant
      doc_type: {column: KIND, values: {Invoice: invoice, Credit memo: credit_note}, default: other}
      disputed: {column: Disputed}             # Yes/No, Y/N, 1/0, true/false (+ true_values:)
    filters:
      - {column: KIND, not_in: [Statistical]}  # filtered rows go to the rejects file, counted
    extra:                                     # attributes stored with invoices, used as features
      rating: {column: RATING, doc: "suspected leak: customer-master snapshot"}

Date formats: ``iso`` (default: ``2018-01-09``, with or without a time), any ``strptime`` format
(``"%m/%d/%Y"``, ``"%d.%m.%Y"``, ``"%Y%m%d"``, ...). ``not_after`` marks a period stamp (a document
month) as an upper bound: the issue date becomes the earliest of the stamp and the named canonical
dates, so a document paid or due before its month stamp is not rejected as impossible.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ledger.contracts import TABLES

TRUE_VALUES = ("yes", "y", "true", "t", "1", "1.0", "x")
FALSE_VALUES = ("no", "n", "false", "f", "0", "0.0")


def _yaml_text(v: Any) -> str:
    if isinstance(v, bool):
        return "Yes" if v else "No"
    return str(v)


TextList = Annotated[list[str] | None, BeforeValidator(lambda v: None if v is None else [_yaml_text(x) for x in v])]
"""A YAML list of source values, read as text (YAML's ``yes``/``no`` booleans back to ``Yes``/``No``)."""


class MappingError(ValueError):
    """A mapping file that cannot be used, with every problem spelled out."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceOptions(_Strict):
    """How to read the file. ``.gz`` files are decompressed on the fly."""

    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="csv or parquet; default: from the file suffix.")
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: str = Field(default=".", description="Decimal mark of amounts, '.' or ','.")
    thousands: str | None = Field(default=None, description="Thousands separator to drop.")
    skip_rows: int = Field(default=0, ge=0, description="Lines to skip before the header.")


class ColumnSpec(_Strict):
    """Where one canonical column comes from."""

    column: str | None = Field(default=None, description="Source column name.")
    value: Any = Field(default=None, description="A constant for every row.")
    format: str | None = Field(default=None, description="Date format: 'iso' or a strptime format.")
    values: dict[str, Any] | None = Field(default=None, description="Source value -> canonical value.")
    default: Any = Field(default=None, description="Canonical value for source values not in `values`.")
    true_values: TextList = Field(default=None, description="More source values meaning True.")
    false_values: TextList = Field(default=None, description="More source values meaning False.")
    not_after: list[str] | None = Field(
        default=None, description="Canonical date columns this date is clipped to (period stamps).")
    type: Literal["str", "number", "bool", "date"] = Field(
        default="str", description="For extras only: how to store the value.")
    doc: str | None = Field(default=None, description="Why this mapping; caveats (e.g. leaks).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"column": data}
        return data

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, v: Any) -> Any:
        # YAML reads unquoted Yes/No/1 as bool/int: source values are compared as text.
        if isinstance(v, dict):
            return {_yaml_text(k): val for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "ColumnSpec":
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of `column` (a source column) or `value` (a constant)")
        if self.default is not None and self.values is None:
            raise ValueError("`default` only applies with a `values` map")
        return self


class FilterSpec(_Strict):
    """Keep rows whose source ``column`` is in ``in_`` / not in ``not_in`` (compared as text)."""

    column: str
    in_: TextList = Field(default=None, alias="in")
    not_in: TextList = None

    @model_validator(mode="after")
    def _one_rule(self) -> "FilterSpec":
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError("give exactly one of `in` or `not_in`")
        return self


class Mapping(_Strict):
    """A validated mapping from one source file layout to one canonical table."""

    name: str | None = Field(default=None, description="Defaults to the file name.")
    description: str | None = None
    table: Literal["invoices", "payments", "clients", "actions"]
    source: SourceOptions = Field(default_factory=SourceOptions)
    columns: dict[str, ColumnSpec]
    filters: list[FilterSpec] = Field(default_factory=list)
    extra: dict[str, ColumnSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_table(self) -> "Mapping":
        spec = TABLES[self.table]
        problems: list[str] = []
        for name, col in self.columns.items():
            if name not in spec.names:
                hint = difflib.get_close_matches(name, spec.names, n=1)
                problems.append(
                    f"columns.{name}: {self.table} has no column {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else f"; it has {spec.names}")
                )
                continue
            kind = spec.column(name).kind
            if col.format is not None and kind != "date":
                problems.append(f"columns.{name}: `format` is for date columns; {name} is {kind}")
            if col.not_after is not None:
                if kind != "date":
                    problems.append(f"columns.{name}: `not_after` is for date columns")
                for other in col.not_after:
                    if other not in spec.names or spec.column(other).kind != "date":
                        problems.append(f"columns.{name}.not_after: {other!r} is not a date column of {self.table}")
            if col.type != "str":
                problems.append(f"columns.{name}: `type` is for extras; canonical columns have theirs")
        optional_missing = {spec.key} if self.table == "actions" else set()
        missing = [n for n in spec.required if n not in self.columns and n not in optional_missing]
        if missing:
            problems.append(
                f"columns: required {self.table} columns not mapped: {', '.join(missing)} "
                "(map each to a source column, or give a constant with `value`)"
            )
        for name in self.extra:
            if name in spec.names or name in ("extra", "row_hash"):
                problems.append(f"extra.{name}: {name!r} is a canonical column; map it under `columns`")
        if self.extra and self.table != "invoices":
            problems.append("extra: only invoices carry extra attributes")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def source_columns(self) -> list[str]:
        """Every source column the mapping reads."""
        specs = list(self.columns.values()) + list(self.extra.values())
        cols = [s.column for s in specs if s.column] + [f.column for f in self.filters]
        return list(dict.fromkeys(cols))


def _format_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            parent = _fields_at(err["loc"][:-1])
            hint = difflib.get_close_matches(key, parent, n=1) if parent else []
            msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            if parent:
                msg += f"; allowed: {', '.join(parent)}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc or '(top)'}: {msg}")
    return f"Invalid mapping {where}:\n" + "\n".join(lines)


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The allowed keys at a location of the mapping document (for typo suggestions)."""
    model: type[BaseModel] = Mapping
    path = [str(p) for p in loc]
    i = 0
    while i < len(path):
        p = path[i]
        if model is Mapping and p in ("columns", "extra"):
            model, i = ColumnSpec, i + 2  # skip the canonical column name
            continue
        if model is Mapping and p == "filters":
            model, i = FilterSpec, i + 2  # skip the list index
            continue
        if model is Mapping and p == "source":
            model = SourceOptions
        i += 1
    return [f.alias or n for n, f in model.model_fields.items()]


def parse_mapping(data: Any, where: str = "(in memory)") -> Mapping:
    """Validate a mapping given as a dict (e.g. parsed YAML). Raises ``MappingError``."""
    if not isinstance(data, dict):
        raise MappingError(f"Invalid mapping {where}: expected a YAML mapping at the top, got {type(data).__name__}.")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(_format_error(exc, where)) from None


def load_mapping(path: Path | str) -> Mapping:
    """Read and validate a mapping YAML file. Raises ``MappingError`` naming each bad key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"Mapping file not found: {path}.") from None
    except IsADirectoryError:
        raise MappingError(f"{path} is a folder: give the mapping YAML file (data/mappings/ has examples).") from None
    except UnicodeDecodeError as exc:
        raise MappingError(f"Mapping {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"Mapping {path} is not valid YAML: {exc}") from None
    mapping = parse_mapping(data, where=str(path))
    if mapping.name is None:
        mapping = mapping.model_copy(update={"name": path.stem})
    return mapping

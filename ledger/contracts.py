"""Canonical data contracts: the four ledger tables, their columns, types and rules.

This module is the one place where the shape of Encaisse's data is written down. The store
(``ledger.writers``, ``ledger.reader``), mapped ingest (``ledger.ingest``), the synthetic
generator (``ledger.synth``), features and the API all follow it.

Conventions:
    * ids are strings (``"0000611365"`` keeps its leading zeros). A loaded or generated ledger
      holds the required ids of invoices, payments and actions as Arrow-backed text, and their
      other text as one shared string per distinct value, None where missing (``compact_frame``);
    * ``*_date`` columns are calendar days (``datetime64[s]`` in frames, ``DATE`` in the store);
    * amounts are positive numbers in the document currency; the sign of a movement comes from
      ``doc_type`` (a credit note reduces what the client owes);
    * ``paid_date`` empty means the document was still open when the export was taken. It is
      censored, not missing: the invoice was not paid *by then*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["str", "date", "amount", "bool", "int"]


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes:
        name: snake_case column name.
        kind: value type: ``str``, ``date``, ``amount`` (float, > 0), ``bool`` or ``int``.
        required: whether every row must carry a value.
        doc: what the column means, with units.
    """

    name: str
    kind: Kind
    required: bool
    doc: str


@dataclass(frozen=True)
class Table:
    """A canonical table: its primary key and its columns, in order.

    Attributes:
        repeated: text columns that repeat a handful of values (codes, steps, countries): held by
            ``compact_frame`` as one shared Python string per distinct value.
    """

    name: str
    key: str
    columns: tuple[Column, ...]
    doc: str
    repeated: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"Table {self.name!r} has no column {name!r}; it has {self.names}.")


DOC_TYPES = ("invoice", "credit_note", "debit_note", "down_payment", "payment_difference", "other")
"""Kinds of receivable documents. Only ``invoice`` rows are scored; the others count in balances."""

INVOICES = Table(
    name="invoices",
    key="invoice_id",
    doc="Receivable documents (invoices and other open-item movements), one row per document.",
    columns=(
        Column("invoice_id", "str", True, "Document id, unique in the ledger."),
        Column("client_id", "str", True, "The client who owes the amount."),
        Column("issue_date", "date", True, "Day the document was issued (known from this day on)."),
        Column("due_date", "date", True, "Day payment is due. Never before issue_date."),
        Column("amount", "amount", True, "Gross amount in `currency`, > 0."),
        Column("currency", "str", True, "ISO 4217 code, e.g. EUR."),
        Column("paid_date", "date", False, "Day the document was cleared; empty = open (censored)."),
        Column("doc_type", "str", True, f"One of {', '.join(DOC_TYPES)}."),
        Column("terms", "str", False, "Payment terms as the source names them, e.g. '30 net'."),
        Column("company", "str", False, "Issuing company (company code)."),
        Column("country", "str", False, "Client country."),
        Column("disputed", "bool", False, "The invoice is or was disputed (as known at export)."),
        Column("dunning_block", "str", False, "Dunning block code; empty = dunning allowed."),
        Column("credit_category", "str", False, "Credit-control risk category from the source."),
    ),
    repeated=("currency", "doc_type", "terms", "company", "country", "dunning_block", "credit_category"),
)

PAYMENTS = Table(
    name="payments",
    key="payment_id",
    doc="Payments applied to invoices; several rows per invoice for partial payments.",
    columns=(
        Column("payment_id", "str", True, "Payment (or payment allocation) id, unique."),
        Column("invoice_id", "str", True, "The invoice the payment is applied to."),
        Column("paid_date", "date", True, "Day the payment was received."),
        Column("amount", "amount", True, "Amount applied, in the invoice currency, > 0."),
    ),
)

CLIENTS = Table(
    name="clients",
    key="client_id",
    doc="Client master data. Optional: clients seen only on invoices get default attributes.",
    columns=(
        Column("client_id", "str", True, "Client id."),
        Column("name", "str", False, "Client name."),
        Column("segment", "str", False, "Segment, e.g. 'SME', 'key account', 'public'."),
        Column("credit_limit", "amount", False, "Credit limit in the ledger currency."),
        Column("strategic", "bool", False, "Strategic client: handled with care in dunning."),
        Column("sector", "str", False, "Business sector."),
        Column("country", "str", False, "Country."),
        Column("collector", "str", False, "Collector owning the client's portfolio."),
        Column("email", "str", False, "Billing-contact email address (one address, e.g. "
               "'compta@client.fr'); empty = no email reminders."),
        Column("phone", "str", False, "Billing-contact phone, international form preferred "
               "(e.g. '+33 6 12 34 56 78'); used for SMS and calls."),
        Column("postal_address", "str", False, "Billing postal address for letters; lines separated "
               "by newlines (at most 255 characters)."),
        Column("language", "str", False, "Language of messages: 'fr' or 'en'; empty = 'fr'."),
        Column("opt_out", "bool", False, "The client refuses automated reminders (emails, SMS, "
               "letters); calls and formal steps stay manual."),
    ),
)

LANGUAGES = ("fr", "en")
"""Languages of client messages; an empty ``clients.language`` means the first."""

ACTIONS = Table(
    name="actions",
    key="action_id",
    doc="Dunning and collection actions, and their outcomes.",
    columns=(
        Column("action_id", "str", True, "Action id; derived from the row's content when absent."),
        Column("invoice_id", "str", False, "The invoice concerned (or empty for a client action)."),
        Column("client_id", "str", True, "The client concerned."),
        Column("action_date", "date", True, "Day the action was taken."),
        Column("step", "str", True, "Ladder step, e.g. 'preventive', 'reminder_1', 'call', "
               "'formal_notice', 'agency', 'promise', 'dispute', 'payment_plan', 'dunning_block'."),
        Column("channel", "str", False, "email, sms, call, letter, registered_letter, agency."),
        Column("outcome", "str", False, "e.g. 'no_answer', 'promise', 'dispute', 'paid', 'refused'."),
        Column("promise_date", "date", False, "Promised payment day, for a promise to pay."),
        Column("promise_amount", "amount", False, "Promised amount, for a promise to pay."),
    ),
    repeated=("step", "channel", "outcome"),
)

TABLES: dict[str, Table] = {t.name: t for t in (INVOICES, PAYMENTS, CLIENTS, ACTIONS)}

ACTION_STEPS = ("preventive", "reminder", "reminder_1", "reminder_2", "call", "formal_notice", "agency",
                "promise", "dispute", "dispute_resolved", "payment_plan", "dunning_block", "dunning_unblock")
"""The action steps the product reads (client features, next steps, the worklist) and the API takes. A dunning
policy names its own ladder steps too (``models.policy.Policy.step_names``), which next steps read; other steps
are stored and reported at ingest."""

# A working set of ISO 4217 codes; unknown codes are rejected at ingest.
CURRENCIES = frozenset(
    "EUR USD GBP CHF SEK NOK DKK PLN CZK HUF RON BGN JPY CNY CAD AUD NZD SGD HKD INR BRL MXN ZAR "
    "TRY MAD TND XOF XAF AED SAR ILS KRW".split()
)


def empty_frame(table: Table) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series(dtype=_DTYPES[c.kind]) for c in table.columns})


_DTYPES = {
    "str": "object",
    "date": "datetime64[s]",
    "amount": "float64",
    "bool": "boolean",
    "int": "Int64",
}


def coerce_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Return ``df`` with every canonical column present and typed; extra columns are kept after.

    Missing optional columns are added empty. Values are converted, not validated: validation
    (with row-level reasons) is ``ledger.ingest``'s job.
    """
    out = pd.DataFrame(index=df.index)
    for c in table.columns:
        if c.name in df.columns:
            s = df[c.name]
        else:
            s = pd.Series([None] * len(df), index=df.index)
        if c.kind == "date":
            out[c.name] = pd.to_datetime(s).astype("datetime64[s]")
        elif c.kind == "amount":
            out[c.name] = pd.to_numeric(s).astype("float64")
        elif c.kind == "bool":
            out[c.name] = s.astype("boolean")
        elif c.kind == "int":
            out[c.name] = pd.to_numeric(s).astype("Int64")
        else:
            out[c.name] = s.astype("object").where(s.notna(), None)
    extras = [c for c in df.columns if c not in table.names]
    for name in extras:
        out[name] = df[name]
    return out


TEXT = pd.StringDtype("pyarrow", na_value=float("nan"))
"""Arrow-backed text (pandas' ``str``): one buffer per column instead of a Python string per cell."""


def isin(values: pd.Series | pd.Index, candidates: Any) -> np.ndarray:
    """``values.isin(candidates)`` as a NumPy bool array, the same answer.

    Arrow-held text (``TEXT``) is looked up by ``pyarrow.compute.is_in`` with the candidates as one
    Arrow array: pandas' own ``isin`` of such text makes a Python scalar of every candidate, which
    takes seconds for the ids of 100k open invoices. Other columns, and candidates that are not all
    text, go through pandas.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(candidates, (pd.Series, pd.Index)):
            raw = candidates.array
        elif isinstance(candidates, (np.ndarray, pd.api.extensions.ExtensionArray)):
            raw = candidates
        else:  # a list, a set, ...
            raw = list(candidates)
        try:
            wanted = pa.array(raw if isinstance(raw, pd.api.extensions.ExtensionArray)
                              else np.asarray(raw, dtype=object), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            wanted = None
        if isinstance(wanted, pa.ChunkedArray):
            wanted = wanted.combine_chunks()
        if wanted is not None and (pa.types.is_string(wanted.type) or pa.types.is_large_string(wanted.type)
                                   or pa.types.is_null(wanted.type)):
            held = pa.chunked_array(pa.array(values.array))
            found = pc.is_in(held, value_set=wanted.cast(held.type))  # a null matches a null candidate
            return found.to_numpy().astype(bool, copy=False)
    return np.asarray(values.isin(candidates), dtype=bool)


COMPACT_TABLES = ("invoices", "payments", "actions")
"""Tables whose text columns ``Ledger.compact`` (and ``ledger.reader.load_ledger``) hold compactly.

Clients keep their frame as it is: one row per client, a small table.
"""


def compact_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``df`` (typed by ``coerce_frame``) with its canonical text columns held compactly, values unchanged.

    Required ids (required text columns outside ``table.repeated``: never missing) become
    Arrow-backed text (``TEXT``). The other text columns stay Python objects, None where missing,
    with one string object per distinct value (a loaded column otherwise holds one per cell).
    Columns holding anything but text are left as they are; the others are shared, not copied.

    Categories would be smaller still, but MLflow's schema enforcement refuses them in the
    invoice rows a pyfunc caller sends, and they (like Arrow text) read a missing value as NaN
    where the contract gives None.
    """
    out = df.copy(deep=False)
    for c in table.columns:
        if c.kind != "str" or c.name not in out.columns:
            continue
        s = out[c.name]
        if c.required and c.name not in table.repeated:
            if s.dtype != TEXT and _all_text(s):
                out[c.name] = s.astype(TEXT)
        elif s.dtype == object and _all_text(s):
            out[c.name] = _shared_strings(s)
    return out


def _all_text(s: pd.Series) -> bool:
    return len(s) == 0 or pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _shared_strings(s: pd.Series) -> pd.Series:
    """``s`` (text, None or NaN where missing) with one string object per distinct value, None where missing."""
    codes, uniques = pd.factorize(s.to_numpy(dtype=object))
    values = np.empty(len(uniques) + 1, dtype=object)  # last slot: code -1 (missing)
    values[:-1] = uniques
    return pd.Series(values[codes], index=s.index, name=s.name, dtype=object)


@dataclass
class Ledger:
    """A company's receivables in memory: the four canonical tables as pandas frames.

    ``invoices`` may carry extra columns (mapped attributes declared as features), after the
    canonical ones. ``payments``, ``clients`` and ``actions`` may be empty.
    """

    invoices: pd.DataFrame
    payments: pd.DataFrame = field(default_factory=lambda: empty_frame(PAYMENTS))
    clients: pd.DataFrame = field(default_factory=lambda: empty_frame(CLIENTS))
    actions: pd.DataFrame = field(default_factory=lambda: empty_frame(ACTIONS))

    @classmethod
    def from_frames(
        cls,
        invoices: pd.DataFrame,
        payments: pd.DataFrame | None = None,
        clients: pd.DataFrame | None = None,
        actions: pd.DataFrame | None = None,
    ) -> "Ledger":
        """Build a ledger from loosely typed frames, adding and typing canonical columns."""
        inv = invoices.copy()
        if "doc_type" not in inv.columns:
            inv["doc_type"] = "invoice"
        if "currency" not in inv.columns:
            inv["currency"] = "EUR"
        return cls(
            invoices=coerce_frame(inv, INVOICES).reset_index(drop=True),
            payments=coerce_frame(payments, PAYMENTS) if payments is not None else empty_frame(PAYMENTS),
            clients=coerce_frame(clients, CLIENTS) if clients is not None else empty_frame(CLIENTS),
            actions=coerce_frame(actions, ACTIONS) if actions is not None else empty_frame(ACTIONS),
        )

    def compact(self) -> "Ledger":
        """The same ledger with the text columns of ``COMPACT_TABLES`` held compactly (``compact_frame``)."""
        frames = {name: getattr(self, name) for name in TABLES}
        return Ledger(**{name: compact_frame(df, TABLES[name]) if name in COMPACT_TABLES else df
                         for name, df in frames.items()})

    def known_at(self, as_of: pd.Timestamp | str) -> "Ledger":
        """The ledger as it was known at the start of day ``as_of``.

        Documents issued on or after ``as_of`` are dropped; payments, paid dates, actions and
        promises dated on or after ``as_of`` are hidden (an invoice paid later is open then).
        Nothing here reads the clock.
        """
        d = pd.Timestamp(as_of)
        inv = _rows_before(self.invoices, "issue_date", d)
        paid = inv["paid_date"]
        if (paid >= d).any():
            inv["paid_date"] = paid.where(paid < d)
        return Ledger(invoices=inv, payments=_rows_before(self.payments, "paid_date", d),
                      clients=self.clients.copy(deep=False), actions=_rows_before(self.actions, "action_date", d))


def _rows_before(frame: pd.DataFrame, column: str, d: pd.Timestamp) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is before ``d``, as a new frame.

    Copy-on-write (pandas >= 3) keeps the result and ``frame`` independent, so when every row is
    kept the result shares the data until one of them is written to.
    """
    mask = frame[column] < d
    return frame.copy(deep=False) if mask.all() else frame[mask]


def describe_contracts() -> str:
    """The contracts as Markdown, for ``docs/contracts.md`` and ``encaisse contracts``."""
    lines = ["# Data contracts", "", __doc__.strip().split("\n\n", 1)[1], ""]
    for t in TABLES.values():
        lines += [f"## {t.name}", "", t.doc, "", f"Key: `{t.key}`.", "",
                  "| column | type | required | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| {c.name} | {c.kind} | {'yes' if c.required else ''} | {c.doc} |" for c in t.columns]
        lines.append("")
    return "\n".join(lines)

"""The contracts documentation is generated from the code and must not drift from it."""

from pathlib import Path

import pandas as pd
import pytest

from ledger.contracts import INVOICES, TABLES, Ledger, coerce_frame, describe_contracts

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"


def test_contracts_doc_is_current():
    assert DOC.read_text() == describe_contracts() + "\n", (
        "docs/contracts.md is stale: regenerate it with "
        "python -c \"from ledger.contracts import describe_contracts; print(describe_contracts())\" > docs/contracts.md"
    )


def test_every_table_documents_its_key_and_columns():
    text = describe_contracts()
    for t in TABLES.values():
        assert f"## {t.name}" in text and t.key in t.names
        for c in t.columns:
            assert f"| {c.name} |" in text


def test_coerce_adds_missing_optional_columns_and_keeps_extras():
    df = pd.DataFrame({"invoice_id": ["1"], "client_id": ["c"], "issue_date": ["2024-01-01"],
                       "due_date": ["2024-01-31"], "amount": ["12.5"], "my_attr": ["x"]})
    out = coerce_frame(df, INVOICES)
    assert list(out.columns[: len(INVOICES.names)]) == INVOICES.names
    assert out["amount"].dtype == "float64" and out["paid_date"].isna().all()
    assert out["my_attr"].iloc[0] == "x"


def test_known_at_hides_what_happened_on_or_after_the_day():
    led = Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["a", "b", "c"], "client_id": ["x"] * 3,
        "issue_date": ["2024-01-01", "2024-01-01", "2024-02-01"],
        "due_date": ["2024-01-31"] * 2 + ["2024-03-01"],
        "paid_date": ["2024-01-31", "2024-02-01", None], "amount": [1.0, 2.0, 3.0],
    }))
    k = led.known_at("2024-02-01")
    assert list(k.invoices["invoice_id"]) == ["a", "b"]  # c issued on the day: not yet known
    assert k.invoices["paid_date"].notna().tolist() == [True, False]  # b paid on the day: open


@pytest.mark.parametrize("schema, table", [("InvoiceIn", "invoices"), ("PaymentIn", "payments"),
                                           ("ActionIn", "actions")])
def test_api_row_schemas_agree_with_the_contracts(schema, table):
    """The API's row schemas take the canonical columns with their kinds; an optional column is optional."""
    import types
    import typing
    from datetime import date

    from serving import schemas

    model, spec = getattr(schemas, schema), TABLES[table]
    assert sorted(model.model_fields) == sorted(spec.names)
    kinds = {"date": date, "amount": float, "bool": bool, "str": str, "int": int}
    for column in spec.columns:
        field = model.model_fields[column.name]
        args = set(typing.get_args(field.annotation)) if typing.get_origin(field.annotation) in (typing.Union, types.UnionType) \
            else {field.annotation}
        args = {typing.get_args(t)[0] if typing.get_origin(t) is typing.Annotated else t for t in args}
        base = {typing.get_origin(t) or t for t in args} - {type(None)}
        assert kinds[column.kind] in base or typing.Literal in base, (column.name, field.annotation)
        if not column.required:
            assert not field.is_required(), column.name

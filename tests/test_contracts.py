"""The contracts documentation is generated from the code and must not drift from it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ledger.contracts import INVOICES, TABLES, TEXT, Ledger, coerce_frame, describe_contracts, isin

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


REPO = Path(__file__).resolve().parents[1]


def test_contact_rules_reject_malformed_emails_and_languages_with_their_reason():
    from ledger.parsing import validate_frame

    rows = pd.DataFrame({
        "client_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
        "email": ["compta@dupont.fr", "Dupont <compta@dupont.fr>", "a@b.fr, c@d.fr", None, "no-at-sign.fr",
                  "factures@sous.domaine.example.com"],
        "language": ["fr", "en", None, "de", "fr", "EN"],
        "postal_address": ["1 rue de la Paix\n75002 PARIS", None, None, None, None, "bad\x07bell"],
        "opt_out": [False, True, None, None, None, None],
    })
    good, rejects = validate_frame("clients", rows)
    assert good["client_id"].tolist() == ["c1"]
    assert good["postal_address"].iloc[0] == "1 rue de la Paix\n75002 PARIS"
    reasons = dict(zip(rejects["client_id"], rejects["reason"]))
    assert set(reasons) == {"c2", "c3", "c4", "c5", "c6"}
    assert "malformed email 'Dupont <compta@dupont.fr>'" in reasons["c2"]
    assert "malformed email 'a@b.fr, c@d.fr'" in reasons["c3"]
    assert reasons["c4"] == "unknown language 'de'"
    assert "malformed email" in reasons["c5"]
    assert "unknown language 'EN'" in reasons["c6"] and "postal_address holds control characters" in reasons["c6"]


def test_ids_with_control_or_direction_characters_are_refused_by_the_ledger_and_the_api():
    from pydantic import TypeAdapter, ValidationError

    from ledger.parsing import validate_frame
    from serving.schemas.fields import Id

    ids = {"plain-1": True, "accents-é-中文-😀": True, "tab\tin": False, "c1\u0085next-line": False,
           "rtl\u202eoverride": False, "isolate\u2067x": False, "mark\u200e": False}
    good, rejects = validate_frame("clients", pd.DataFrame({"client_id": list(ids)}))
    assert set(good["client_id"]) == {k for k, ok in ids.items() if ok}
    assert set(rejects["client_id"]) == {k for k, ok in ids.items() if not ok}
    assert rejects["reason"].str.contains("control characters").all()
    api = TypeAdapter(Id)
    for value, ok in ids.items():
        if ok:
            api.validate_python(value)
        else:
            with pytest.raises(ValidationError):
                api.validate_python(value)


def test_api_amounts_are_numbers_not_booleans():
    from pydantic import TypeAdapter, ValidationError

    from serving.schemas.fields import Amount

    api = TypeAdapter(Amount)
    assert api.validate_python(12) == 12.0 and api.validate_python("12.5") == 12.5
    for value in (True, False):
        with pytest.raises(ValidationError, match="not true or false"):
            api.validate_python(value)


def test_contact_text_is_bounded():
    from ledger.parsing import validate_frame

    rows = pd.DataFrame({"client_id": ["c1"], "postal_address": ["x" * 256]})
    good, rejects = validate_frame("clients", rows)
    assert good.empty and "postal_address of 256 characters (at most 255)" in rejects["reason"].iloc[0]


def test_the_customer_master_mapping_loads_contacts_with_multiline_addresses(tmp_path):
    from ledger.engine import open_store
    from ledger.ingest import ingest_file
    from ledger.reader import load_ledger

    path = tmp_path / "customers.csv"
    path.write_text(
        "KUNNR;NAME1;LAND1;SMTP_ADDR;TELF1;ADRESSE;SPRAS;NO_AUTO_DUNNING\n"
        "0000100;Société Générale d'Études;FR;compta@sge.fr;+33 1 23 45 67 89;"
        "\"Société Générale d'Études\n12 rue de la Gare\n69002 LYON\";F;\n"
        "0000200;Müller GmbH;DE;;+49 30 1234567;;D;X\n"
        "0000300;Bad Mail SA;FR;not an email;;;F;\n", encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    result = ingest_file(engine, path, REPO / "data" / "mappings" / "erp_clients.yaml", rejects_dir=tmp_path)
    assert (result.inserted, result.rejected) == (2, 1)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert "malformed email 'not an email'" in rej["reason"].iloc[0]
    clients = load_ledger(engine).clients.set_index("client_id")
    first, second = clients.loc["0000100"], clients.loc["0000200"]
    assert first["postal_address"] == "Société Générale d'Études\n12 rue de la Gare\n69002 LYON"
    assert (first["language"], first["email"]) == ("fr", "compta@sge.fr") and pd.isna(first["opt_out"])
    assert (second["language"], bool(second["opt_out"])) == ("en", True)
    assert pd.isna(second["email"]) and second["phone"] == "+49 30 1234567"


@pytest.mark.parametrize("candidates", [
    pd.Series(["I2", "I9"], dtype=TEXT), pd.Series(["I2", None], dtype=TEXT), pd.Series([], dtype=TEXT),
    pd.Series(["I3"], dtype=object), pd.Series(["I1", "I3"], dtype="string"), pd.Index(["é", ""]),
    ["I1", np.nan], ["I1", 1], [], {"I1", "I3"}, {"I1", None}, np.array(["I3"], dtype=object),
    pd.Series([1, 2]), pd.Series(["I1"], dtype="category"), pd.array(["I3", "I1"], dtype=TEXT),
])
def test_isin_answers_as_pandas_does(candidates):
    """The Arrow lookup of ids gives pandas' answer, nulls matching a null candidate only."""
    values = pd.Series(["I1", "I2", None, "I3", "é", "", "I1"], dtype=TEXT)
    want = np.asarray(values.isin(candidates), dtype=bool)
    got = isin(values, candidates)
    assert got.dtype == bool and np.array_equal(got, want)
    assert np.array_equal(isin(pd.Index(values), candidates), want)
    assert np.array_equal(isin(values.astype(object), candidates), np.asarray(values.astype(object).isin(candidates)))


def test_isin_on_many_ids_equals_pandas():
    rng = np.random.default_rng(3)
    ids = pd.Series([f"INV{i:06d}" for i in rng.integers(0, 50_000, 20_000)], dtype=TEXT)
    ids[rng.random(len(ids)) < 0.01] = None
    wanted = pd.Series([f"INV{i:06d}" for i in rng.integers(0, 50_000, 8_000)], dtype=TEXT)
    got = isin(ids, wanted)
    assert 0 < got.sum() < len(ids) and np.array_equal(got, np.asarray(ids.isin(wanted), dtype=bool))

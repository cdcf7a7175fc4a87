"""Mapping YAML: typos fail at load with the key's path and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.mapping import MappingError, load_mapping, parse_mapping

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "table": "invoices",
    "columns": {
        "invoice_id": "ID",
        "client_id": "CUST",
        "issue_date": {"column": "D", "format": "%m/%d/%Y"},
        "due_date": {"column": "DUE", "format": "%m/%d/%Y"},
        "amount": "AMT",
        "currency": {"value": "EUR"},
        "doc_type": {"value": "invoice"},
    },
}


def _with(**changes):
    data = {**BASE, "columns": dict(BASE["columns"])}
    data.update(changes)
    return data


def test_misspelt_key_names_path_and_suggestion():
    data = _with()
    data["columns"]["issue_date"] = {"column": "D", "fromat": "%m/%d/%Y"}
    with pytest.raises(MappingError) as exc:
        parse_mapping(data, where="m.yaml")
    msg = str(exc.value)
    assert "m.yaml" in msg
    assert "columns.issue_date.fromat" in msg
    assert "did you mean 'format'" in msg


def test_unknown_canonical_column_and_missing_required():
    data = _with()
    data["columns"]["amout"] = data["columns"].pop("amount")
    with pytest.raises(MappingError) as exc:
        parse_mapping(data)
    msg = str(exc.value)
    assert "invoices has no column 'amout' (did you mean 'amount'?)" in msg
    assert "required invoices columns not mapped: amount" in msg


def test_column_and_value_are_exclusive_and_filters_need_one_rule():
    data = _with(filters=[{"column": "KIND"}])
    data["columns"]["currency"] = {"column": "CUR", "value": "EUR"}
    with pytest.raises(MappingError) as exc:
        parse_mapping(data)
    msg = str(exc.value)
    assert "exactly one of `column`" in msg
    assert "exactly one of `in` or `not_in`" in msg


def test_not_after_must_name_date_columns():
    data = _with()
    data["columns"]["issue_date"] = {"column": "D", "not_after": ["due_date", "amount"]}
    with pytest.raises(MappingError, match="'amount' is not a date column of invoices"):
        parse_mapping(data)


def test_top_level_typo(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("table: invoices\ncolumn: {}\n", encoding="utf-8")
    with pytest.raises(MappingError) as exc:
        load_mapping(path)
    assert "unknown key 'column' (did you mean 'columns'?)" in str(exc.value)


def test_yaml_booleans_in_value_maps_become_text():
    data = _with()
    data["columns"]["doc_type"] = {"column": "K", "values": {True: "invoice", "Credit memo": "credit_note"},
                                   "default": "other"}
    m = parse_mapping(data)
    assert m.columns["doc_type"].values == {"Yes": "invoice", "Credit memo": "credit_note"}


@pytest.mark.parametrize("name", ["sap_ar.yaml", "ibm_ar.yaml"])
def test_shipped_mappings_load(name):
    m = load_mapping(REPO / "data" / "mappings" / name)
    assert m.table == "invoices"
    assert m.name == name.removesuffix(".yaml")

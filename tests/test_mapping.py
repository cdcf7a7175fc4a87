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


BAD_MAPPINGS = [
    pytest.param({"issue_date": {"column": "D", "fromat": "%m/%d/%Y"}}, (), {},
                 ["m.yaml", "columns.issue_date.fromat", "did you mean 'format'"], id="misspelt-key-path-suggestion"),
    pytest.param({"amout": BASE["columns"]["amount"]}, ("amount",), {},
                 ["invoices has no column 'amout' (did you mean 'amount'?)",
                  "required invoices columns not mapped: amount"], id="unknown-column-missing-required"),
    pytest.param({"currency": {"column": "CUR", "value": "EUR"}}, (), {"filters": [{"column": "KIND"}]},
                 ["exactly one of `column`", "exactly one of `in` or `not_in`"], id="column-xor-value-filter-rule"),
    pytest.param({"issue_date": {"column": "D", "not_after": ["due_date", "amount"]}}, (), {},
                 ["'amount' is not a date column of invoices"], id="not-after-names-date-columns"),
]


@pytest.mark.parametrize(("columns", "dropped", "changes", "expected"), BAD_MAPPINGS)
def test_a_bad_mapping_is_refused_naming_what_to_fix(columns, dropped, changes, expected):
    data = _with(**changes)
    for name in dropped:
        del data["columns"][name]
    data["columns"].update(columns)
    with pytest.raises(MappingError) as exc:
        parse_mapping(data, where="m.yaml")
    for fragment in expected:
        assert fragment in str(exc.value)


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

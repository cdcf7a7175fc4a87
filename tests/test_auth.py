"""API keys and roles: hashed storage, 401/403 per role, collector portfolios, the keys CLI."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from encaisse.cli import app as cli
from ledger.schema import api_keys
from ledger.engine import open_store
from serving.keys import create_key, revoke_key, verify_key
from api_helpers import AS_OF, collector_of_first_client, open_ids, start_api


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with start_api(tmp_path_factory.mktemp("auth")) as a:
        yield a


def _calls(api):
    client_id, _ = collector_of_first_client(api.ledger)
    invoice_id = open_ids(api.ledger)[0]
    return {
        "scores": ("post", "/v1/scores", {"as_of": AS_OF, "invoice_ids": [invoice_id]}),
        "clients": ("get", f"/v1/clients/{client_id}?as_of={AS_OF}", None),
        "worklist": ("get", f"/v1/worklist?as_of={AS_OF}", None),
        "actions": ("post", "/v1/actions", {"client_id": client_id, "action_date": "2025-05-01", "step": "call"}),
        "forecast": ("get", f"/v1/forecast?as_of={AS_OF}&horizon=2", None),
        "kpis": ("get", f"/v1/kpis?as_of={AS_OF}", None),
        "invoices": ("post", "/v1/invoices", {"invoices": []}),
        "payments": ("post", "/v1/payments", {"payments": []}),
        "model": ("get", "/v1/model", None),
        "reload": ("post", "/v1/admin/reload", None),
    }


ALLOWED = {
    "collector": {"clients", "worklist", "actions", "model"},
    "treasurer": {"forecast", "kpis", "scores", "clients", "worklist", "model"},
    "system": {"scores", "invoices", "payments", "actions", "model"},
    "admin": {"scores", "clients", "worklist", "actions", "forecast", "kpis", "invoices", "payments", "model",
              "reload"},
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_gets_its_endpoints_and_403_elsewhere(api, role):
    for name, (method, url, body) in _calls(api).items():
        kw = {"json": body} if body is not None else {}
        r = getattr(api.client, method)(url, headers=api.headers(role), **kw)
        if name in ALLOWED[role]:
            assert r.status_code in (200, 201), (role, name, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, name, r.status_code)
            assert r.json()["detail"].startswith(f"A {role} key may not use this endpoint")


@pytest.mark.parametrize("headers,detail", [
    ({}, "Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."),
    ({"Authorization": "Bearer enc_notakeynotakeynotakey"}, "Invalid or revoked API key."),
    ({"X-API-Key": "garbage"}, "Invalid or revoked API key."),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "Missing API key: send 'Authorization: Bearer <key>' or "
                                             "'X-API-Key: <key>'."),
])
def test_missing_or_invalid_key_is_401(api, headers, detail):
    r = api.client.get("/v1/model", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] == detail
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_x_api_key_header_works_and_a_revoked_key_is_refused(api):
    engine = open_store(api.settings.store_url)
    new = create_key(engine, "treasurer", name="tmp")
    assert api.client.get("/v1/model", headers={"X-API-Key": new.token}).status_code == 200
    revoke_key(engine, new.principal.prefix)
    r = api.client.get("/v1/model", headers={"X-API-Key": new.token})
    assert r.status_code == 401 and r.json()["detail"] == "Invalid or revoked API key."
    engine.dispose()


def test_keys_are_stored_hashed(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    new = create_key(engine, "system", name="ERP")
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).mappings().one()
    assert row["key_hash"] == hashlib.sha256(new.token.encode()).hexdigest()
    assert new.token not in {str(v) for v in row.values()} and new.token.startswith(row["prefix"])
    assert verify_key(engine, new.token).role == "system"
    assert verify_key(engine, new.token[:-1] + ("A" if new.token[-1] != "A" else "B")) is None
    with pytest.raises(ValueError, match="--collector"):
        create_key(engine, "collector")
    with pytest.raises(ValueError, match="role must be one of"):
        create_key(engine, "root")
    engine.dispose()


def test_collector_sees_only_their_portfolio(api):
    client_id, collector = collector_of_first_client(api.ledger)
    clients = api.ledger.clients
    mine = set(clients.loc[clients["collector"] == collector, "client_id"])
    other = sorted(set(clients["client_id"]) - mine)[0]
    other_collector = clients.set_index("client_id").loc[other, "collector"]

    r = api.get(f"/v1/worklist?as_of={AS_OF}&limit=10000", role="collector")
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert rows and {x["collector"] for x in rows} == {collector} and {x["client_id"] for x in rows} <= mine
    everyone = api.get(f"/v1/worklist?as_of={AS_OF}&limit=10000").json()["rows"]
    assert r.json()["total"] == sum(x["collector"] == collector for x in everyone) < len(everyone)

    r = api.get(f"/v1/worklist?as_of={AS_OF}&collector={other_collector}", role="collector")
    assert r.status_code == 403
    assert api.get(f"/v1/clients/{client_id}?as_of={AS_OF}", role="collector").status_code == 200
    r = api.get(f"/v1/clients/{other}?as_of={AS_OF}", role="collector")
    assert r.status_code == 403
    assert r.json()["detail"] == f"Client {other!r} is not in the portfolio of collector {collector!r}."
    r = api.post("/v1/actions", {"client_id": other, "action_date": "2025-05-01", "step": "call"}, role="collector")
    assert r.status_code == 403


def test_keys_cli(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")

    def run(*args):
        result = runner.invoke(cli, [*args, "--home", home, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    made = run("keys", "create", "--role", "collector", "--collector", "Camille Martin", "--name", "cm")
    assert made["key"].startswith(made["prefix"]) and made["collector"] == "Camille Martin"
    created = runner.invoke(cli, ["keys", "create", "--role", "collector", "--collector", "Camille Martin",
                                  "--home", home])
    assert created.exit_code == 0 and "no client in the store has collector 'Camille Martin'" in " ".join(
        created.stderr.split())  # an empty store: nobody is assigned yet
    listed = run("keys", "list")["keys"]
    assert [k["prefix"] for k in listed][:1] == [made["prefix"]] and made["key"] not in json.dumps(listed)
    revoked = run("keys", "revoke", made["prefix"])
    assert revoked["revoked_at"] and not revoked["already_revoked"]
    again = run("keys", "revoke", made["prefix"])
    assert again["already_revoked"] and again["revoked_at"] == revoked["revoked_at"]
    assert run("keys", "list")["keys"][0]["revoked_at"] is not None
    bad = runner.invoke(cli, ["keys", "create", "--role", "root", "--home", home])
    assert bad.exit_code == 2 and "role must be one of" in bad.output

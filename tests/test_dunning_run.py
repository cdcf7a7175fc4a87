"""The daily dunning run end to end: a real SMTP server on loopback (aiosmtpd), the journal, the outbox.

The store holds a small synthetic ledger with billing contacts and a stored score run written
directly (``save_scores``): the run plans from it like from one ``encaisse score`` stored, with no
model to fit.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from encaisse.cli import app
from ledger import outbox
from ledger.contracts import TABLES
from ledger.engine import open_store
from ledger.outbox_transports import OutboxEmail, OutboxProvider, SmtpConfig, SmtpTransport
from ledger.reader import load_ledger
from ledger.schema import actions as actions_table
from ledger.scores_store import load_latest_scores, save_scores
from ledger.synth import make_ledger
from ledger.staged_upsert import upsert_frame
from models.dunning_plan import plan_dunning
from models.dunning_run import Delivery, run_dunning
from models.policy import load_policy

DAY = pd.Timestamp("2025-06-02")
ACCENTED = "Société Générale des Écoles — Noël & Çà"
SALT = "fixed-test-salt"


# --- a real SMTP server on loopback ---------------------------------------------------------------


class Recorder:
    """aiosmtpd handler: keeps every message it accepted; can refuse or drop the connection."""

    def __init__(self):
        self.received: list[bytes] = []
        self.refuse_rcpt: str | None = None  # e.g. "550 5.1.1 mailbox unavailable"
        self.refuse_data: str | None = None  # e.g. "421 4.3.2 shutting down"
        self.drop_after: int | None = None  # close the connection at DATA once this many were accepted

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        if self.drop_after is not None and len(self.received) >= self.drop_after:
            session.transport.close()
            return "421 dropped"
        self.received.append(envelope.original_content or envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    handler = Recorder()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.url = f"smtp://127.0.0.1:{port}"
    yield handler
    controller.stop()


# --- a store with contacts and a stored score run ------------------------------------------------


def _ledger():
    led = make_ledger(60, seed=5, end_date="2025-07-31")
    cl = led.clients.copy()
    n = len(cl)
    cl["email"] = [f"compta{i}@client{i}.example" for i in range(n)]
    cl["phone"] = [f"+33 6 00 00 00 {i:02d}" for i in range(n)]
    cl["postal_address"] = [f"{i} rue de la Paix\n75002 Paris" for i in range(n)]
    cl["language"] = ["fr" if i % 2 else "en" for i in range(n)]
    cl["opt_out"] = False
    led.clients = cl
    return led


def _scores(led, day, trusted: set[str] = frozenset()):
    inv = led.known_at(day).invoices
    inv = inv[(inv["doc_type"] == "invoice") & inv["paid_date"].isna()]
    sc = inv[["invoice_id", "client_id", "amount", "due_date", "currency"]].copy()
    sc["p_late"] = 0.5
    sc["p_very_late"] = [0.05 if c in trusted else 0.4 for c in sc["client_id"]]
    cl = pd.DataFrame({"client_id": sorted(sc["client_id"].unique())})
    cl["profile"] = ["trusted" if c in trusted else "standard" for c in cl["client_id"]]
    cl["scenario"] = ["soft" if c in trusted else "standard" for c in cl["client_id"]]
    sc["profile"] = sc["client_id"].map(cl.set_index("client_id")["profile"])
    return sc, cl


@pytest.fixture
def store(_isolated_home):
    led = _ledger()
    trusted = {led.clients["client_id"].iloc[-1]}
    sc, cl = _scores(led, DAY, trusted)
    (_isolated_home).mkdir(parents=True, exist_ok=True)
    (_isolated_home / "control-salt").write_text(SALT)  # the same control groups in every test
    plan = plan_dunning(led, sc, cl, load_policy(), DAY, control_salt=SALT)
    emailed = list(plan.messages.loc[plan.messages["policy_channel"] == "email", "client_id"].unique())
    special = {"no_email": emailed[0], "opt_out": emailed[1], "accented": emailed[2]}
    c = led.clients.set_index("client_id")
    c.loc[special["no_email"], "email"] = None  # its email steps become call tasks
    c.loc[special["opt_out"], "opt_out"] = True  # no automated message at all
    c.loc[special["accented"], "name"] = ACCENTED
    led.clients = c.reset_index()
    engine = open_store(f"sqlite:///{_isolated_home / 'ledger.db'}")
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(led, name))
    save_scores(engine, sc, cl, as_of=DAY, model_version="test")
    yield engine, trusted, special
    engine.dispose()


def _cli(*args, env=None) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["dunning", "run", "--as-of", str(DAY.date()), "--json", *args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def _journal(engine) -> pd.DataFrame:
    return outbox.load_messages(engine)


def _dunning_actions(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(actions_table).where(actions_table.c.action_id.like("dun-%"))).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def _message_ids(raw: list[bytes]) -> set[str]:
    return {email.message_from_bytes(b, policy=email.policy.default)["Message-ID"].strip("<>").split("@")[0]
            for b in raw}


# --- tests -----------------------------------------------------------------------------------------


def test_smtp_receives_exactly_what_the_run_reports_sent_and_a_rerun_sends_none(store, smtp, monkeypatch):
    engine, *_ = store
    monkeypatch.setenv("ENCAISSE_SMTP_URL", smtp.url)
    code, first = _cli()
    assert code == 0 and first["failed"]["total"] == 0
    assert first["sent"]["email"] >= 5, first
    assert len(smtp.received) == first["sent"]["email"]
    j = _journal(engine)
    sent_emails = j[(j["channel"] == "email") & (j["status"] == "sent")]
    assert _message_ids(smtp.received) == set(sent_emails["message_id"])
    # every sent message's invoices got one ledger action naming the step and channel
    acts = _dunning_actions(engine)
    sent = j[j["status"] == "sent"]
    assert len(acts) == sum(len(x) for x in sent["invoice_ids"])
    assert set(acts["outcome"]) == {"sent"} and set(acts["action_date"].astype(str)) == {str(DAY.date())}
    assert first["sent"]["total"] == first["sent"]["email"] + first["sent"]["sms"] + first["sent"]["letter"] \
        + first["sent"]["call_task"]

    code, second = _cli()
    assert code == 0
    assert second["sent"]["total"] == 0 and second["planned"]["total"] == 0
    assert second["skipped"]["reasons"].get("already sent", 0) >= first["sent"]["total"]
    assert len(smtp.received) == first["sent"]["email"]


def test_utf8_accents_arrive_intact(store, smtp, monkeypatch):
    engine, *_ = store
    monkeypatch.setenv("ENCAISSE_SMTP_URL", smtp.url)
    _cli()
    j = _journal(engine).set_index("message_id")
    checked = 0
    for raw in smtp.received:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        mid = msg["Message-ID"].strip("<>").split("@")[0]
        body = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # SMTP line ends
        assert str(msg["Subject"]) == j.at[mid, "subject"]
        assert body.strip() == j.at[mid, "body"].strip()
        if any(ord(ch) > 127 for ch in body + str(msg["Subject"])):
            checked += 1
    assert checked >= 1  # French text and the accented client name went through


def test_a_refusing_server_leaves_nothing_recorded_as_sent_and_the_next_run_retries(store, smtp, monkeypatch):
    engine, *_ = store
    monkeypatch.setenv("ENCAISSE_SMTP_URL", smtp.url)
    smtp.refuse_rcpt = "550 5.1.1 mailbox unavailable"
    code, first = _cli()
    assert code == 1 and first["failed"]["email"] >= 5 and first["sent"]["email"] == 0
    assert any("550" in e for e in first["failed"]["errors"])
    j = _journal(engine)
    emails = j[j["channel"] == "email"]
    assert set(emails["status"]) == {"failed"} and not len(smtp.received)
    acts = _dunning_actions(engine)
    failed_invoices = {i for x in emails["invoice_ids"] for i in x}
    assert acts.empty or not set(acts["invoice_id"]) & failed_invoices

    smtp.refuse_rcpt = None
    code, second = _cli()
    assert code == 0 and second["sent"]["email"] == first["failed"]["email"]
    assert _message_ids(smtp.received) == set(emails["message_id"])  # the same messages, retried


@pytest.mark.parametrize("how", ["421", "drop"])
def test_a_server_failing_mid_run_records_only_what_it_accepted(store, smtp, monkeypatch, how):
    engine, *_ = store
    monkeypatch.setenv("ENCAISSE_SMTP_URL", smtp.url)
    smtp.drop_after = 3
    if how == "421":
        smtp.drop_after = None
        smtp.refuse_data = None

        accepted = []

        async def data(server, session, envelope):
            if len(accepted) >= 3:
                return "421 4.3.2 service shutting down"
            accepted.append(1)
            smtp.received.append(envelope.original_content or envelope.content)
            return "250 OK"

        smtp.handle_DATA = data
    code, first = _cli()
    assert code == 1
    assert len(smtp.received) == 3 == first["sent"]["email"]
    j = _journal(engine)
    sent = j[(j["channel"] == "email") & (j["status"] == "sent")]
    assert _message_ids(smtp.received) == set(sent["message_id"])
    assert first["failed"]["email"] == int(((j["channel"] == "email") & (j["status"] == "failed")).sum()) >= 1


def _stored_inputs(engine):
    """What a dunning run plans from: the ledger, the day's stored score run and the shipped policy."""
    return load_ledger(engine), load_latest_scores(engine, DAY), load_policy()


def _smtp_delivery(transport: SmtpTransport) -> Delivery:
    """Email through ``transport``; SMS and letters to a folder these tests never read."""
    return Delivery(email=transport, sms=OutboxProvider(Path("/x")), letter=OutboxProvider(Path("/x")))


def test_a_crash_between_send_and_record_is_resent_once_and_reported(store, smtp, monkeypatch):
    engine, *_ = store
    ledger, run, pol = _stored_inputs(engine)
    transport = SmtpTransport(SmtpConfig.from_url(smtp.url))
    delivery = _smtp_delivery(transport)
    real = outbox.mark_sent

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    dry = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, None, dry_run=True)
    cid = dry.plan.messages.loc[dry.plan.messages["channel"] == "email", "client_id"].iloc[0]
    monkeypatch.setattr(outbox, "mark_sent", crash)
    with pytest.raises(KeyboardInterrupt):
        run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, client_id=cid, step="reminder_1")
    assert len(smtp.received) == 1
    j = _journal(engine)
    assert list(j["status"]) == ["sending"] or "sending" in set(j["status"])
    crashed = j.loc[j["status"] == "sending", "message_id"].iloc[0]

    monkeypatch.setattr(outbox, "mark_sent", real)
    again = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, client_id=cid, step="reminder_1")
    assert again.resent_after_crash == [crashed]
    assert len(smtp.received) == 2 and _message_ids(smtp.received) == {crashed}
    assert _journal(engine).set_index("message_id").at[crashed, "status"] == "sent"
    third = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, client_id=cid, step="reminder_1")
    assert third.outcomes.empty and len(smtp.received) == 2
    transport.close()


def test_dry_run_writes_nothing_and_plans_what_a_run_sends(store, _isolated_home):
    engine, *_ = store
    code, dry = _cli("--dry-run")
    assert code == 0 and dry["dry_run"] and dry["sent"]["total"] == 0 and dry["planned"]["total"] > 0
    assert _journal(engine).empty and _dunning_actions(engine).empty
    assert not (_isolated_home / "outbox" / "email").exists()
    code, real = _cli()  # no SMTP URL: the outbox folder
    assert real["planned"] == dry["planned"]
    assert real["sent"]["total"] == dry["planned"]["total"]


def test_outbox_folders_contacts_opt_out_and_no_chase(store, _isolated_home):
    engine, trusted, special = store
    code, res = _cli()
    assert code == 0
    j = _journal(engine)
    files = sorted((_isolated_home / "outbox" / "email").glob("*.eml"))
    assert len(files) == res["sent"]["email"] == int(((j["channel"] == "email") & (j["status"] == "sent")).sum())
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] and parsed["Message-ID"] and parsed.get_body(preferencelist=("plain",)).get_content()
    # client without email, and the opted-out one: call tasks, never a message
    for cid, why in ((special["no_email"], "no email"), (special["opt_out"], "opted out")):
        mine = j[j["client_id"] == cid]
        assert not mine.empty
        assert not ((mine["channel"].isin(["email", "sms", "letter"])) & (mine["status"] == "sent")).any()
        if cid == special["opt_out"]:
            assert set(mine["channel"]) == {"call_task"} and mine["note"].str.contains(why).all()
        else:
            emailed = mine[mine["planned_channel"] == "email"]
            assert (emailed["channel"] == "call_task").all() and emailed["note"].str.contains(why).all()
    assert res["skipped"]["call_task_instead"] >= 2
    # the trusted payer is not chased
    assert not j["client_id"].isin(trusted).any()
    if res["skipped"]["reasons"]:
        assert set(res["skipped"]["reasons"]) <= {"no chase (trusted payer)", "already sent", "unconfirmed",
                                                  "held back (control group)"}
    letters = j[(j["channel"] == "letter") & (j["status"] == "sent")]
    assert len(letters) >= 1
    for step, loc in zip(letters["step"], letters["location"]):
        assert (Path(loc) / "message.txt").exists()
        if step == "formal_notice":  # the mise en demeure goes as its PDF letter
            assert list(Path(loc).glob("*.pdf"))
    # call tasks are recorded, without ledger actions: the call stays on the worklist
    tasks = j[j["status"] == "task"]
    acts = _dunning_actions(engine)
    assert not set(acts["invoice_id"]) & {i for x in tasks["invoice_ids"] for i in x}


def test_bad_smtp_url_and_missing_score_run_are_usage_errors(_isolated_home, monkeypatch):
    monkeypatch.setenv("ENCAISSE_SMTP_URL", "http://mail.example")
    result = CliRunner().invoke(app, ["dunning", "run", "--as-of", "2025-06-02"])
    assert result.exit_code == 2 and "ENCAISSE_SMTP_URL" in result.output
    monkeypatch.delenv("ENCAISSE_SMTP_URL")
    result = CliRunner().invoke(app, ["dunning", "run", "--as-of", "2025-06-02"])
    assert result.exit_code == 2 and "encaisse score" in result.output and "Traceback" not in result.output


def test_one_client_without_open_invoices_plans_nothing_and_an_unknown_one_is_a_usage_error(store):
    engine, *_ = store
    row = load_ledger(engine, tables=("clients",)).clients.iloc[[0]].assign(client_id="NO-OPEN-INVOICE")
    with engine.begin() as conn:
        upsert_frame(conn, "clients", row)
    code, res = _cli("--dry-run", "--client", "NO-OPEN-INVOICE")
    assert code == 0 and res["planned"]["total"] == 0 and res["sent"]["total"] == 0
    result = CliRunner().invoke(app, ["dunning", "run", "--as-of", str(DAY.date()), "--dry-run", "--client", "NOSUCH"])
    assert result.exit_code == 2 and "'NOSUCH'" in result.output and "Traceback" not in result.output


def test_outbox_email_writes_whole_files(tmp_path):
    from email.message import EmailMessage

    m = EmailMessage()
    m["Message-ID"] = "<abc123@example>"
    m["Subject"] = "Relance — échéance dépassée"
    m.set_content("Montant dû : 1 234,56 €", charset="utf-8")
    path = Path(OutboxEmail(tmp_path).send(m))
    back = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert path.name == "abc123.eml" and back["Subject"] == "Relance — échéance dépassée"
    assert back.get_content().strip() == "Montant dû : 1 234,56 €"
    assert not list(tmp_path.glob("*.tmp"))


def test_control_group_decisions_are_recorded_held_back_and_never_sent_later(store, _isolated_home):
    engine, *_ = store
    ledger = load_ledger(engine)
    run = load_latest_scores(engine, DAY)
    pol = load_policy()
    pol = pol.model_copy(update={"control": pol.control.model_copy(update={"share": 0.5, "salt": "test-salt-1"})})
    home = _isolated_home
    delivery = Delivery(email=OutboxEmail(home / "outbox" / "email"), sms=OutboxProvider(home / "outbox" / "sms"),
                        letter=OutboxProvider(home / "outbox" / "letter"))
    first = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, control_salt="test-salt-1")
    held = first.plan.held_back
    assert len(held) >= 1 and set(held["step"]) <= set(pol.control.testable_steps)
    sent_keys = set(zip(first.outcomes["client_id"], first.outcomes["step"]))
    assert not sent_keys & set(zip(held["client_id"], held["step"]))  # a control is never sent
    acts = _dunning_actions(engine)
    with engine.connect() as conn:
        ctl = pd.DataFrame(conn.execute(sa.select(actions_table).where(actions_table.c.outcome == "held_back"))
                           .mappings().all())
    assert set(ctl["invoice_id"]) == set(held["invoice_id"]) and acts["outcome"].eq("sent").all()
    # the same day again: the same draw, the same rows (upserted), nothing sent
    again = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, control_salt="test-salt-1")
    assert again.outcomes.empty and set(again.plan.held_back["invoice_id"]) == set(held["invoice_id"])
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(actions_table)
                         .where(actions_table.c.outcome == "held_back")).scalar_one()
    assert n == len(ctl)
    # the next day the ladder has moved on: a held-back step is not sent as a catch-up
    later = run_dunning(engine, load_ledger(engine), run.invoices, run.clients, pol, DAY + pd.Timedelta(days=1),
                        None, dry_run=True, control_salt="test-salt-1")
    planned = set(zip(later.plan.messages["client_id"], later.plan.messages["step"]))
    assert not planned & set(zip(held["client_id"], held["step"]))


def test_only_decisions_the_run_would_send_are_drawn_into_a_control_group(store):
    # A decision that would become a call task records no action when sent, so holding it back would
    # leave controls with no sent counterpart: the arms would differ in who they hold.
    engine, _, special = store
    ledger = load_ledger(engine)
    run = load_latest_scores(engine, DAY)
    pol = load_policy()
    everyone = pol.control.model_copy(update={"share": 1.0, "salt": "test-salt-1"})  # model_copy: not validated
    plan = plan_dunning(ledger, run.invoices, run.clients, pol.model_copy(update={"control": everyone}), DAY,
                        control_salt="test-salt-1")
    held = set(plan.held_back["client_id"])
    assert held, "with share 1, every decision the run would send is held back"
    assert special["no_email"] not in held and special["opt_out"] not in held
    tasks = plan.messages[plan.messages["channel"] == "call_task"]
    assert {special["no_email"], special["opt_out"]} <= set(tasks["client_id"])


def test_load_ledger_reads_only_the_invoices_open_on_a_day(store):
    engine, *_ = store
    full = load_ledger(engine)
    part = load_ledger(engine, tables=("invoices", "clients"), open_on=DAY)
    paid = full.invoices["paid_date"]
    expected = full.invoices.loc[paid.isna() | (paid >= DAY), "invoice_id"]
    assert 0 < len(part.invoices) < len(full.invoices)
    assert part.invoices["invoice_id"].tolist() == expected.tolist()
    assert part.payments.empty and part.actions.empty and len(part.clients) == len(full.clients)


def test_a_message_interrupted_twice_is_not_sent_a_third_time(store, smtp, monkeypatch):
    engine, *_ = store
    ledger, run, pol = _stored_inputs(engine)
    transport = SmtpTransport(SmtpConfig.from_url(smtp.url))
    delivery = _smtp_delivery(transport)
    dry = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, None, dry_run=True)
    cid = dry.plan.messages.loc[dry.plan.messages["channel"] == "email", "client_id"].iloc[0]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(outbox, "mark_sent", crash)
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, client_id=cid, step="reminder_1")
    assert len(smtp.received) == 2  # the first attempt and its one resend
    third = run_dunning(engine, ledger, run.invoices, run.clients, pol, DAY, delivery, client_id=cid,
                        step="reminder_1")
    assert third.outcomes.empty and len(smtp.received) == 2
    assert set(third.plan.skipped["reason"]) == {"unconfirmed"}
    assert set(_journal(engine)["status"]) == {"unconfirmed"}
    transport.close()

"""Dunning messages: templates for every policy step in both languages, the context's figures,
overrides, the sandbox, and the formal notice's PDF read back as text."""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import pytest

from features.kpis import build_open_items
from features.legal import build_legal_amounts
from ledger.contracts import LANGUAGES, Ledger
from models.messages import (
    DEMO_COMPANY, TEMPLATE_KINDS, TEMPLATES_DIR, CompanyError, MessageTemplateError, build_message_context,
    invoice_reference, is_valid_reference, load_company, render_message,
)
from models.messages.references import creditor_reference
from models.messages.render import format_money
from models.policy import load_policy

AS_OF = "2026-12-04"
CLIENT = {"client_id": "C1", "name": "Façonnage Hélène & Fils", "email": "compta@faconnage.fr",
          "phone": "+33 6 11 22 33 44", "postal_address": "Façonnage Hélène & Fils\n3 rue de la Gare\n69002 LYON",
          "language": "fr", "opt_out": False}


def _ledger() -> Ledger:
    """Two late invoices (one partly paid), one not yet due, one paid, and another client's invoice."""
    invoices = pd.DataFrame({
        "invoice_id": ["F-001", "F-002", "F-003", "F-004", "G-001"],
        "client_id": ["C1", "C1", "C1", "C1", "C2"],
        "issue_date": ["2026-09-01", "2026-10-01", "2026-11-20", "2026-08-01", "2026-09-01"],
        "due_date": ["2026-10-01", "2026-10-31", "2026-12-20", "2026-09-01", "2026-10-01"],
        "amount": [1234.50, 800.00, 450.00, 99.00, 10.00],
        "paid_date": [None, None, None, "2026-09-01", None],
    })
    payments = pd.DataFrame({"payment_id": ["P1", "P2"], "invoice_id": ["F-002", "F-004"],
                             "paid_date": ["2026-11-02", "2026-09-01"], "amount": [500.00, 99.00]})
    return Ledger.from_frames(invoices, payments)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return _ledger()


@pytest.fixture(scope="module")
def legal(ledger) -> pd.DataFrame:
    return build_legal_amounts(ledger, AS_OF)


@pytest.fixture(scope="module")
def open_items(ledger) -> pd.DataFrame:
    items = build_open_items(ledger, AS_OF)
    return items[items["client_id"] == "C1"].reset_index(drop=True)


@pytest.fixture(scope="module")
def ctx(open_items, legal) -> dict:
    return build_message_context(CLIENT, open_items, AS_OF, step="formal_notice", legal=legal)


def _policy_templates() -> set[str]:
    policy = load_policy()
    return {s.template for sc in policy.scenarios.values() for s in sc.steps + sc.plan_steps}


# --- every template, both languages --------------------------------------------------------------


def test_every_policy_template_exists_in_both_languages():
    names = _policy_templates()
    assert names == set(TEMPLATE_KINDS), "models.messages.render.TEMPLATE_KINDS must list the policy's templates"
    missing = [f"{lang}/{name}.{part}" for name in sorted(names) for lang in LANGUAGES
               for part in ("subject.txt", "txt") if not (TEMPLATES_DIR / lang / f"{name}.{part}").is_file()]
    assert not missing, f"templates missing: {missing}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_policy_template_renders(ctx, language):
    ctx = {**ctx, "instalment": {"date": dt.date(2026, 12, 10), "amount": 200.0, "currency": "EUR"}}
    for name in sorted(_policy_templates()):
        m = render_message(name, ctx, language=language, overrides_dir=TEMPLATES_DIR / "none")
        assert m.language == language and m.template == name
        assert m.subject and "\n" not in m.subject
        assert "F-001" in m.text or TEMPLATE_KINDS[name] == "sms", name
        assert ("\n\n\n" not in m.text) and m.text.endswith("\n")
        kind = TEMPLATE_KINDS[name]
        assert (m.html is not None) == (kind in ("email", "letter")), name
        assert bool(m.attachments) == (name == "mise_en_demeure"), name


def test_an_sms_stays_short_and_carries_a_reference(ctx):
    company = DEMO_COMPANY.model_copy(update={"name": "Dupont SA"})
    short = {**ctx, "company": company.as_context()}
    for lang in LANGUAGES:
        m = render_message("reminder_sms", short, language=lang, overrides_dir=TEMPLATES_DIR / "none")
        assert len(m.text) <= 200 and ctx["invoices"][0]["reference"] in m.text


# --- the figures -----------------------------------------------------------------------------------


def test_one_message_lists_the_clients_open_invoices_with_amount_due_and_days_overdue(ctx):
    rows = {r["invoice_id"]: r for r in ctx["invoices"]}
    assert list(rows) == ["F-001", "F-002", "F-003"]  # due-date order; paid F-004 and client C2's left out
    assert rows["F-002"]["outstanding"] == 300.00 and rows["F-002"]["paid"] == 500.00
    assert rows["F-001"]["days_overdue"] == 64 and rows["F-003"]["days_overdue"] == -16
    assert [r["invoice_id"] for r in ctx["overdue"]] == ["F-001", "F-002"]
    assert ctx["deadline"] == dt.date(2026, 12, 12) and ctx["formal_notice_days"] == 8


def test_an_instalment_message_lists_the_invoices_and_the_instalment(open_items):
    c = build_message_context(CLIENT, open_items, AS_OF, step="instalment_notice",
                              instalment={"date": "2026-12-10", "amount": 150})
    assert c["instalment"] == {"date": dt.date(2026, 12, 10), "amount": 150.0, "currency": "EUR"}
    assert [(r["invoice_id"], r["amount"]) for r in c["invoices"]] == [("F-001", 1234.5), ("F-002", 800.0),
                                                                       ("F-003", 450.0)]


def test_paid_amount_is_deducted_when_there_is_no_outstanding_column():
    inv = pd.DataFrame({"invoice_id": ["A", "B"], "issue_date": ["2026-10-01"] * 2, "due_date": ["2026-11-01"] * 2,
                        "amount": [100.0, 50.0], "paid_amount": [40.0, 50.0], "currency": ["EUR", "EUR"]})
    c = build_message_context({"client_id": "X"}, inv, AS_OF, step="reminder_1")
    assert [(r["invoice_id"], r["outstanding"]) for r in c["invoices"]] == [("A", 60.0)]  # B fully paid: dropped
    assert c["totals"][0]["outstanding"] == 60.0 and c["client"]["name"] == "X" and c["language"] == "fr"


def test_legal_amounts_are_those_of_features_legal(ctx, legal):
    expected = legal[legal["client_id"] == "C1"].set_index("invoice_id")
    late = {r["invoice_id"]: r for r in ctx["overdue"]}
    assert set(late) == set(expected.index) == {"F-001", "F-002"}
    for iid, r in late.items():
        assert r["late_penalty"] == pytest.approx(expected.loc[iid, "late_penalty"])
        assert r["recovery_indemnity"] == 40.0
        assert r["penalty_rate"] == pytest.approx(expected.loc[iid, "penalty_rate"])
    not_due = next(r for r in ctx["invoices"] if r["invoice_id"] == "F-003")
    assert not_due["late_penalty"] is None
    eur = ctx["totals"][0]
    assert eur["recovery_indemnity"] == 80.0
    assert eur["late_penalty"] == pytest.approx(round(expected["late_penalty"].sum(), 2))
    assert eur["outstanding"] == pytest.approx(1234.50 + 300.00 + 450.00)
    assert eur["claimed"] == pytest.approx(1234.50 + 300.00 + eur["late_penalty"] + 80.0)  # not F-003, not due


def test_a_formal_notice_without_legal_amounts_is_refused(open_items, legal):
    with pytest.raises(ValueError, match="legal has no row for overdue invoice.*F-001, F-002"):
        build_message_context(CLIENT, open_items, AS_OF, step="formal_notice")
    with pytest.raises(ValueError, match="legal has no row for overdue invoice.*F-002"):
        build_message_context(CLIENT, open_items, AS_OF, step="formal_notice",
                              legal=legal[legal["invoice_id"] != "F-002"])
    # An early reminder needs none.
    assert not build_message_context(CLIENT, open_items, AS_OF, step="reminder_1")["has_legal_amounts"]


def test_bad_invoice_frames_get_a_clear_error(open_items):
    with pytest.raises(ValueError, match="lack column.*due_date"):
        build_message_context(CLIENT, open_items.drop(columns="due_date"), AS_OF, step="reminder_1")
    other = open_items.assign(client_id=["C1", "C2", "C1"])
    with pytest.raises(ValueError, match="other clients \\(C2\\)"):
        build_message_context(CLIENT, other, AS_OF, step="reminder_1")
    with pytest.raises(ValueError, match="no invoice left"):
        build_message_context(CLIENT, open_items.assign(outstanding=0.0), AS_OF, step="reminder_1")
    with pytest.raises(ValueError, match="F-002 have no valid due_date"):
        build_message_context(CLIENT, open_items.assign(due_date=["2026-10-01", "someday", "2026-12-20"]), AS_OF,
                              step="reminder_1")


def test_payment_references_are_iso_11649_and_stable():
    assert creditor_reference("539007547034") == "RF18539007547034"  # the standard's example
    assert is_valid_reference("RF18 5390 0754 7034") and not is_valid_reference("RF19 5390 0754 7034")
    for iid in ("F-001", "INV000123", "0000611365", "a" * 40, "Ünïcode/7"):
        ref = invoice_reference(iid)
        assert is_valid_reference(ref) and ref == invoice_reference(iid) and len(ref) <= 25
    assert invoice_reference("INV000123").endswith("INV000123")
    assert invoice_reference("F-001") != invoice_reference("F001")  # stripping never merges two ids


# --- rendering -------------------------------------------------------------------------------------


def test_the_clients_language_picks_the_templates(ctx):
    en = {**ctx, "language": "en"}
    m = render_message("reminder_courteous", en, overrides_dir=TEMPLATES_DIR / "none")
    assert m.language == "en" and "Invoice F-001" in m.text and "€1,234.50" in m.text
    m = render_message("reminder_courteous", ctx, overrides_dir=TEMPLATES_DIR / "none")
    assert m.language == "fr" and "Facture F-001" in m.text and "1\u00a0234,50\u00a0€" in m.text
    assert "L441-10" in m.text
    with pytest.raises(MessageTemplateError, match="language must be one of fr, en"):
        render_message("reminder_courteous", ctx, language="de", overrides_dir=TEMPLATES_DIR / "none")
    assert build_message_context({**CLIENT, "language": "xx"}, pd.DataFrame(ctx["invoices"]), AS_OF,
                                 step="reminder_1")["language"] == "fr"


def test_html_is_escaped_and_text_is_not(open_items):
    company = DEMO_COMPANY.model_copy(update={"name": "<b>Dupont</b> & Fils"})
    c = build_message_context(CLIENT, open_items, AS_OF, step="reminder_1", company=company)
    m = render_message("reminder_courteous", c, overrides_dir=TEMPLATES_DIR / "none")
    assert "<b>Dupont</b> & Fils" in m.text and "&lt;b&gt;" not in m.text
    assert m.html is not None and "<b>Dupont" not in m.html
    assert "&lt;b&gt;Dupont&lt;/b&gt; &amp; Fils" in m.html and "F-001" in m.html and "1\u00a0234,50\u00a0€" in m.html


def test_a_workspace_override_is_used_first(ctx, tmp_path):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "reminder_courteous.txt").write_text(
        "Chère équipe de {{ client.name }}, merci de régler {{ invoices|length }} facture(s).\n", encoding="utf-8")
    m = render_message("reminder_courteous", ctx, overrides_dir=tmp_path)
    assert m.text == "Chère équipe de Façonnage Hélène & Fils, merci de régler 3 facture(s).\n"
    assert m.subject.startswith("Rappel")  # the parts not overridden come from the shipped templates
    m = render_message("reminder_courteous", ctx, language="en", overrides_dir=tmp_path)
    assert m.text.startswith("Hello,")


def test_overrides_default_to_the_workspace_templates(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("ENCAISSE_HOME", str(tmp_path))
    (tmp_path / "templates" / "en").mkdir(parents=True)
    (tmp_path / "templates" / "en" / "reminder_sms.txt").write_text("Pay {{ invoices[0].invoice_id }}.",
                                                                     encoding="utf-8")
    assert render_message("reminder_sms", ctx, language="en").text == "Pay F-001.\n"
    assert render_message("reminder_sms", ctx, language="fr").text.startswith("Encaisse Démo SAS")


def test_a_broken_override_names_the_file_and_the_variable(ctx, tmp_path):
    (tmp_path / "fr").mkdir()
    path = tmp_path / "fr" / "reminder_firm.txt"
    path.write_text("Bonjour,\n\n{{ client.nom }} doit payer.\n", encoding="utf-8")
    with pytest.raises(MessageTemplateError) as exc:
        render_message("reminder_firm", ctx, overrides_dir=tmp_path)
    assert str(path) in str(exc.value) and "line 3" in str(exc.value) and "'nom'" in str(exc.value)
    path.write_text("{% if client.name %}oops\n", encoding="utf-8")
    with pytest.raises(MessageTemplateError, match=re.escape(str(path)) + ".*syntax error"):
        render_message("reminder_firm", ctx, overrides_dir=tmp_path)
    with pytest.raises(MessageTemplateError, match="no template 'fr/no_such_step.subject.txt'"):
        render_message("no_such_step", ctx, overrides_dir=tmp_path)
    with pytest.raises(MessageTemplateError, match="template names are"):
        render_message("../secrets", ctx, overrides_dir=tmp_path)


def test_templates_run_in_the_sandbox(ctx, tmp_path):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "reminder_courteous.txt").write_text(
        "{{ client.__class__.__mro__[1].__subclasses__() }}\n", encoding="utf-8")
    with pytest.raises(MessageTemplateError, match="unsafe"):
        render_message("reminder_courteous", ctx, overrides_dir=tmp_path)


def test_money_formats():
    assert format_money(1234567.891, "EUR", "fr") == "1\u00a0234\u00a0567,89\u00a0€"
    assert format_money(1234.5, "USD", "fr") == "1\u00a0234,50\u00a0USD"
    assert format_money(1234.5, "EUR", "en") == "€1,234.50"
    assert format_money(0.5, "GBP", "en") == "GBP\u00a00.50"


# --- the formal notice's PDF -----------------------------------------------------------------------


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.replace("\u00a0", " ").split())  # lines wrap where the layout wants


def test_the_formal_notice_pdf_holds_invoices_amounts_penalties_indemnity_and_deadline(ctx, legal):
    m = render_message("mise_en_demeure", ctx, overrides_dir=TEMPLATES_DIR / "none")
    (pdf,) = m.attachments
    assert pdf.mime_type == "application/pdf" and pdf.filename == "mise_en_demeure_C1_2026-12-04.pdf"
    assert pdf.content.startswith(b"%PDF")
    assert "F-002" in m.html and "F-003" not in m.html and "F-003" not in m.text  # what is claimed
    text = _pdf_text(pdf.content)
    assert "F-001" in text and "F-002" in text and "F-003" not in text  # F-003 is not due yet: not claimed
    assert "1 234,50 €" in text and "300,00 €" in text and "1 534,50 €" in text
    late = legal.set_index("invoice_id")
    for iid in ("F-001", "F-002"):
        penalty = format_money(late.loc[iid, "late_penalty"], "EUR", "fr").replace("\u00a0", " ")
        assert penalty in text
    assert "40,00 €" in text and "80,00 €" in text  # 40 EUR per late invoice, two late invoices
    assert "12 décembre 2026" in text and "8 jours" in text  # the deadline: as_of + formal_notice_days
    assert "L441-10" in text and "mise en demeure" in text.lower()
    assert "Façonnage Hélène & Fils" in text and "règlement" in text  # ç, é, è, & intact
    assert "DÉMONSTRATION" in text  # the demo creditor says so
    total = format_money(ctx["totals"][0]["claimed"], "EUR", "fr").replace("\u00a0", " ")
    assert total in text
    assert ctx["invoices"][0]["reference"] in text


def test_the_english_formal_notice_and_a_real_company(ctx, tmp_path):
    (tmp_path / "company.yaml").write_text(
        "name: Dupont Industrie SAS\naddress: |\n  12 rue de la Gare\n  69002 LYON\nsiren: '732 829 320'\n"
        "iban: FR76 3000 6000 0112 3456 7890 189\ncity: Lyon\n", encoding="utf-8")
    company = load_company(tmp_path)
    assert not company.demo and company.siren == "732829320"
    c = build_message_context({**CLIENT, "language": "en"}, pd.DataFrame(ctx["invoices"]), AS_OF,
                              step="formal_notice", company=company,
                              legal=pd.DataFrame([r for r in ctx["invoices"] if r["is_overdue"]]))
    m = render_message("mise_en_demeure", c, overrides_dir=TEMPLATES_DIR / "none")
    text = _pdf_text(m.attachments[0].content)
    assert "12 December 2026" in text and "€1,234.50" in text and "Dupont Industrie SAS" in text
    assert "SIREN 732829320" in text and "DEMONSTRATION" not in text


def test_letters_print_names_outside_windows_1252_without_blank_boxes(open_items, legal):
    c = build_message_context({**CLIENT, "name": "Łódź Żabka Sp. z o.o.", "postal_address": ""}, open_items, AS_OF,
                              step="formal_notice", legal=legal)
    text = _pdf_text(render_message("mise_en_demeure", c, overrides_dir=TEMPLATES_DIR / "none").attachments[0].content)
    assert "Lódz Zabka Sp. z o.o." in text  # ó is in Windows-1252; Ł, ź, Ż lose their marks


def test_a_bad_company_file_names_the_file_and_the_field(tmp_path):
    assert load_company(tmp_path) is DEMO_COMPANY
    (tmp_path / "company.yaml").write_text("name: X\naddress: Y\nsiren: '123456789'\niban: FR7630006000011234567890188\n",
                                           encoding="utf-8")
    with pytest.raises(CompanyError) as exc:
        load_company(tmp_path)
    assert "company.yaml" in str(exc.value) and "siren" in str(exc.value) and "iban" in str(exc.value)


def test_a_synthetic_client_gets_its_messages_end_to_end():
    from ledger.synth import make_ledger

    led = make_ledger(40, years=1, seed=3, end_date="2025-12-31")
    as_of = "2026-01-15"
    legal = build_legal_amounts(led, as_of)
    items = build_open_items(led, as_of)
    clients = led.clients.set_index("client_id", drop=False)
    late = legal.groupby("client_id").size().sort_values(ascending=False)
    client_id = next(c for c in late.index if pd.notna(clients.loc[c, "email"]))
    client = clients.loc[client_id]
    mine = items[(items["client_id"] == client_id) & (items["doc_type"] == "invoice")]
    c = build_message_context(client, mine, as_of, step="formal_notice", legal=legal)
    m = render_message("mise_en_demeure", c, overrides_dir=TEMPLATES_DIR / "none")
    assert m.language == c["client"]["language"]
    text = _pdf_text(m.attachments[0].content)
    due = mine.loc[mine["days_past_due"] > 0, "invoice_id"]
    assert len(due) and all(iid in text for iid in due)
    assert not any(iid in text for iid in mine.loc[mine["days_past_due"] <= 0, "invoice_id"])

"""The PDF letter attached to a message (the formal notice, *mise en demeure*).

Made with ReportLab (``reportlab``, BSD): maintained since 2000, pure Python since 4.0 (its only
dependencies, Pillow and charset-normalizer, are wheels), no system library, and its built-in
Helvetica encodes the Windows-1252 set, so French accents, the euro sign and « » need no font
file. WeasyPrint needs Pango (a system library); fpdf2's built-in fonts stop at Latin-1 (no €)
without a TTF file to ship. A character outside Windows-1252 (a Polish ł in a client name) is
printed without its accent rather than as a blank box.

Layout: the creditor (a demo warning when it is the invented default), the client's address where
a window envelope shows it, place and date, the subject, the letter body from the template
(``NAME.letter.txt``; paragraphs split on blank lines; a line ``[INVOICES]`` places the invoice
table, else it follows the body), the invoice table (issue and due dates, days late, amount due,
penalties, indemnity, payment reference), the totals, and the creditor's legal mentions and bank
details at the foot of each page.
"""

from __future__ import annotations

import io
import re
import unicodedata
from xml.sax.saxutils import escape

from models.messages.render import format_day, format_long_day, format_money, format_percent

TABLE_MARK = "[INVOICES]"

_LABELS = {
    "fr": {
        "demo": "DOCUMENT DE DÉMONSTRATION : créancier fictif, ne pas envoyer.",
        "place_date": "À {city}, le {date}", "date": "Le {date}",
        "subject": "Objet : {subject}",
        "head": ("Facture", "Émise le", "Échéance", "Retard (j)", "Reste dû", "Pénalités", "Indemnité", "Référence"),
        "principal": "Principal échu restant dû", "penalties": "Pénalités de retard (taux {rate})",
        "indemnity": "Indemnités forfaitaires pour frais de recouvrement", "claimed": "Total réclamé",
        "foot": "{name} · SIREN {siren}{vat} · IBAN {iban}{bic}",
        "page": "Page {n}",
    },
    "en": {
        "demo": "DEMONSTRATION DOCUMENT: invented creditor, do not send.",
        "place_date": "{city}, {date}", "date": "{date}",
        "subject": "Subject: {subject}",
        "head": ("Invoice", "Issued", "Due", "Days late", "Amount due", "Penalties", "Indemnity", "Reference"),
        "principal": "Overdue principal", "penalties": "Late-payment penalties (rate {rate})",
        "indemnity": "Fixed recovery indemnities", "claimed": "Total claimed",
        "foot": "{name} · SIREN {siren}{vat} · IBAN {iban}{bic}",
        "page": "Page {n}",
    },
}


def _pdf_text(text: str) -> str:
    """Text the built-in fonts can print (Windows-1252), XML-escaped for ReportLab paragraphs."""
    return escape(_cp1252(text))


_FALLBACK = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Ø": "O", "\u202f": "\u00a0"}


def _cp1252(text: str) -> str:
    """``text`` with each character outside Windows-1252 replaced by its unaccented base (or '?')."""
    out = []
    for ch in str(text):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = _FALLBACK.get(ch) or unicodedata.normalize("NFKD", ch).encode("cp1252", "ignore").decode("cp1252")
            out.append(base or "?")
    return "".join(out)


def letter_filename(ctx: dict) -> str:
    """``mise_en_demeure_C00001_2026-12-04.pdf``: template, client and day, safe for any file system."""
    client = re.sub(r"[^0-9A-Za-z_-]+", "-", ctx["client"]["client_id"]).strip("-") or "client"
    return f"{ctx['template']}_{client}_{ctx['as_of'].isoformat()}.pdf"


def build_letter_pdf(ctx: dict, *, title: str, body: str) -> bytes:
    """The letter as PDF bytes (A4), from a message context and its rendered letter body."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    lang = ctx["language"]
    lab = _LABELS[lang]
    company, client = ctx["company"], ctx["client"]
    styles = getSampleStyleSheet()
    normal = ParagraphStyle("body", parent=styles["Normal"], fontName="Helvetica", fontSize=10, leading=13.5,
                            spaceAfter=6)
    small = ParagraphStyle("small", parent=normal, fontSize=8, leading=10, spaceAfter=0)
    bold = ParagraphStyle("bold", parent=normal, fontName="Helvetica-Bold")
    right = ParagraphStyle("right", parent=normal, alignment=TA_RIGHT)
    warn = ParagraphStyle("warn", parent=bold, textColor=colors.HexColor("#b00020"))

    def para(text: str, style=normal) -> Paragraph:
        return Paragraph(_pdf_text(text).replace("\n", "<br/>"), style)

    sender = "\n".join([company["name"], *company["address_lines"],
                        *(x for x in (company.get("email"), company.get("phone")) if x)])
    recipient = "\n".join([client["name"], *[ln for ln in client["address_lines"] if ln != client["name"]]])
    story: list = []
    if company.get("demo"):
        story.append(para(lab["demo"], warn))
    header = Table([[para(sender), ""], ["", para(recipient)]], colWidths=[95 * mm, 75 * mm])
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (1, 1), (1, 1), 10 * mm)]))
    story += [header, Spacer(1, 8 * mm)]
    date = format_long_day(ctx["as_of"], lang)
    place = lab["place_date"].format(city=company["city"], date=date) if company.get("city") else \
        lab["date"].format(date=date)
    story += [para(place, right), Spacer(1, 4 * mm), para(lab["subject"].format(subject=title), bold)]

    before, after = body, ""
    if TABLE_MARK in body:
        before, after = body.split(TABLE_MARK, 1)
    story += [para(p.strip()) for p in re.split(r"\n\s*\n", before.strip()) if p.strip()]
    story += [Spacer(1, 2 * mm), *_invoice_tables(ctx, lab, small, Table, TableStyle, colors, mm), Spacer(1, 4 * mm)]
    story += [para(p.strip()) for p in re.split(r"\n\s*\n", after.strip()) if p.strip()]

    vat = f" · TVA {company['vat_number']}" if company.get("vat_number") and lang == "fr" else \
        (f" · VAT {company['vat_number']}" if company.get("vat_number") else "")
    bic = f" · BIC {company['bic']}" if company.get("bic") else ""
    foot = _cp1252(lab["foot"].format(name=company["name"], siren=company["siren"], vat=vat,
                                        iban=company["iban_display"], bic=bic))

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.drawCentredString(A4[0] / 2, 12 * mm, foot)
        canvas.drawRightString(A4[0] - 20 * mm, 8 * mm, lab["page"].format(n=doc.page))
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=22 * mm, title=_pdf_text(title), author=_pdf_text(company["name"]),
                            invariant=1)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def _invoice_tables(ctx, lab, small, Table, TableStyle, colors, mm) -> list:
    lang = ctx["language"]

    def cell(text: str):
        from reportlab.platypus import Paragraph

        return Paragraph(_pdf_text(text), small)

    rows = [[cell(h) for h in lab["head"]]]
    for inv in ctx["overdue"] or ctx["invoices"]:  # a letter claims what is due
        cur = inv["currency"]
        rows.append([
            cell(inv["invoice_id"]), cell(format_day(inv["issue_date"], lang)), cell(format_day(inv["due_date"], lang)),
            cell(str(max(inv["days_overdue"], 0))), cell(format_money(inv["outstanding"], cur, lang)),
            cell(format_money(inv["late_penalty"], cur, lang) if inv["late_penalty"] is not None else "-"),
            cell(format_money(inv["recovery_indemnity"], "EUR", lang) if inv["recovery_indemnity"] is not None else "-"),
            cell(inv["reference"]),
        ])
    grid = Table(rows, colWidths=[22 * mm, 19 * mm, 19 * mm, 12 * mm, 23 * mm, 20 * mm, 18 * mm, 37 * mm],
                 repeatRows=1)
    grid.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]))
    rate = format_percent(ctx["penalty_rate"], lang) if ctx.get("penalty_rate") is not None else "-"
    sums = []
    for t in ctx["totals"]:
        cur = t["currency"]
        sums.append([cell(lab["principal"]), cell(format_money(t["overdue_outstanding"], cur, lang))])
        if t["late_penalty"]:
            sums.append([cell(lab["penalties"].format(rate=rate)), cell(format_money(t["late_penalty"], cur, lang))])
        if t["recovery_indemnity"]:
            sums.append([cell(lab["indemnity"]), cell(format_money(t["recovery_indemnity"], "EUR", lang))])
        sums.append([cell(lab["claimed"]), cell(format_money(t["claimed"], cur, lang))])
    total = Table(sums, colWidths=[90 * mm, 35 * mm], hAlign="RIGHT")
    total.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                               ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold")]))
    return [grid, total]

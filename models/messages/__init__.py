"""Dunning messages: one per client and step, from Jinja2 templates in French and English.

``build_message_context`` assembles what a message says (the client, its open invoices at the
step, amounts due, payment references, the legal amounts of ``features.legal``, the creditor);
``render_message`` renders a policy template with it, the company's overrides first
(``$ENCAISSE_HOME/templates/{fr,en}/``), and attaches the PDF letter of the formal notice.

Modules: ``context`` (the figures), ``render`` (templates, filters, errors), ``letter`` (the PDF,
ReportLab), ``references`` (ISO 11649 payment references), ``company`` (the creditor block,
``$ENCAISSE_HOME/company.yaml``, or the labelled demo default).
"""

from models.messages.company import DEMO_COMPANY, Company, CompanyError, load_company
from models.messages.context import build_message_context
from models.messages.references import invoice_reference, is_valid_reference
from models.messages.render import (
    TEMPLATE_KINDS, TEMPLATES_DIR, Attachment, Message, MessageTemplateError, default_overrides_dir, render_message,
    template_files,
)

__all__ = [
    "DEMO_COMPANY", "TEMPLATES_DIR", "TEMPLATE_KINDS", "Attachment", "Company", "CompanyError", "Message",
    "MessageTemplateError", "build_message_context", "default_overrides_dir", "invoice_reference",
    "is_valid_reference", "load_company", "render_message", "template_files",
]

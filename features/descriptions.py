"""Plain-word descriptions of features, for the reasons shown beside a score.

A reason names a fact about the invoice or client ("pays 18 days late on average"), not a model
internal. Features without a description are never shown as reasons.
"""

from __future__ import annotations

import math

_TEMPLATES: dict[str, tuple[str, str]] = {
    # feature: (English, French); {v} is the value
    "c_delay_mean": ("pays {v:.0f} days late on average", "paie en moyenne {v:.0f} jours de retard"),
    "c_delay_median": ("usually pays {v:.0f} days after the due date", "paie habituellement {v:.0f} jours après l'échéance"),
    "c_delay_p90": ("1 invoice in 10 paid {v:.0f}+ days late", "1 facture sur 10 payée avec {v:.0f}+ jours de retard"),
    "c_delay_wmean": ("large invoices paid {v:.0f} days late on average", "grosses factures payées avec {v:.0f} jours de retard en moyenne"),
    "c_delay_recent": ("paid {v:.0f} days late on average over the last 90 days", "{v:.0f} jours de retard en moyenne sur 90 jours"),
    "c_delay_trend": ("delays up {v:.0f} days compared with before", "retards en hausse de {v:.0f} jours"),
    "c_last3_delay": ("last 3 invoices paid {v:.0f} days late on average", "3 dernières factures payées avec {v:.0f} jours de retard"),
    "c_late_rate": ("{p:.0f}% of invoices paid late", "{p:.0f} % des factures payées en retard"),
    "c_late_amount_share": ("{p:.0f}% of the amount paid late", "{p:.0f} % du montant payé en retard"),
    "c_n_open_overdue": ("{v:.0f} invoices already overdue", "{v:.0f} factures déjà échues impayées"),
    "c_overdue_amount": ("{v:,.0f} overdue on other invoices", "{v:,.0f} échus impayés"),
    "c_overdue_share": ("{p:.0f}% of the open balance overdue", "{p:.0f} % de l'encours échu"),
    "c_open_overdue_days_max": ("oldest unpaid invoice {v:.0f} days overdue", "plus ancienne facture impayée : {v:.0f} jours de retard"),
    "c_open_overdue_days_mean": ("open invoices {v:.0f} days overdue on average", "factures ouvertes en retard de {v:.0f} jours en moyenne"),
    "c_days_since_last_payment": ("no payment for {v:.0f} days", "aucun paiement depuis {v:.0f} jours"),
    "c_credit_use": ("uses {p:.0f}% of its credit limit", "utilise {p:.0f} % de sa limite de crédit"),
    "c_promises_broken": ("{v:.0f} broken promises to pay", "{v:.0f} promesses de paiement non tenues"),
    "c_reminder_response": ("pays within 14 days of a reminder {p:.0f}% of the time", "paie sous 14 jours après relance dans {p:.0f} % des cas"),
    "c_dispute_rate": ("{p:.0f}% of invoices disputed", "{p:.0f} % des factures en litige"),
    "c_partial_rate": ("{p:.0f}% of invoices paid in parts", "{p:.0f} % des factures payées en plusieurs fois"),
    "c_n_paid": ("only {v:.0f} invoices of payment history", "seulement {v:.0f} factures d'historique"),
    "c_tenure_days": ("client for {v:.0f} days", "client depuis {v:.0f} jours"),
    "i_days_to_due": ("due in {v:.0f} days", "échéance dans {v:.0f} jours"),
    "i_age_days": ("issued {v:.0f} days ago", "émise il y a {v:.0f} jours"),
    "i_amount": ("amount {v:,.0f}", "montant {v:,.0f}"),
    "i_amount_ratio": ("{v:.1f}x the client's usual invoice", "{v:.1f} fois la facture habituelle du client"),
    "i_terms_days": ("{v:.0f}-day payment terms", "délai de paiement de {v:.0f} jours"),
    "i_n_actions": ("{v:.0f} reminders already sent", "{v:.0f} relances déjà envoyées"),
    "i_promise_days": ("promise to pay due in {v:.0f} days", "promesse de paiement dans {v:.0f} jours"),
    "i_paid_share": ("{p:.0f}% already paid", "{p:.0f} % déjà payé"),
    "i_due_august": ("due in August", "échéance en août"),
    "i_due_december": ("due in December", "échéance en décembre"),
}

DESCRIBED_FEATURES = frozenset(_TEMPLATES)
"""Features with a template (``a_*`` attributes are described by name and value besides)."""


def describe(feature: str, value, lang: str = "en") -> str | None:
    """A plain-word reason for ``feature`` at ``value``, or None when there is nothing to say."""
    spec = _TEMPLATES.get(feature)
    if spec is None:
        if feature.startswith("a_") and value is not None and value == value:
            return f"{feature[2:]} {value}"
        return None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = spec[1] if lang == "fr" else spec[0]
    if feature == "i_days_to_due" and value < 0:
        text = "{n:.0f} days overdue" if lang != "fr" else "en retard de {n:.0f} jours"
        return text.format(n=-value)
    return text.format(v=float(value), p=100 * float(value))

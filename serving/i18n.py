"""Every string of the web pages, in English and French, and number/date formatting per language.

One catalogue (:data:`MESSAGES`), one key per string; ``tests/test_pages.py`` checks both languages
hold the same keys. Templates call ``t("key")``; amounts, percentages and days go through
:func:`fmt_amount`, :func:`fmt_pct`, :func:`fmt_number` and :func:`fmt_date`.

What the model writes (reasons such as "pays 12 days late on average") stays in English: it comes
from ``models/`` and is not translated here.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from serving.i18n_monitoring import MONITORING_MESSAGES

LANGS = ("en", "fr")
DEFAULT_LANG = "en"
LANG_COOKIE = "encaisse_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app_name": "Encaisse",
        "nav_worklist": "Worklist",
        "nav_forecast": "Forecast",
        "nav_kpis": "KPIs",
        "nav_uplift": "Reminder effects",
        "uplift_title": "What each reminder changes",
        "uplift_intro": "Measured on control groups: {share} of the eligible decisions of each testable step are held back at random. {conf} intervals.",
        "uplift_step": "Step",
        "uplift_sent": "Sent",
        "uplift_held": "Held back",
        "uplift_window": "Paid within {days} days",
        "uplift_worklist": "Worklist uses",
        "uplift_measured": "the measured uplift ({why})",
        "uplift_default": "the planning default (not enough evidence yet)",
        "uplift_explain": "Each cell: sent minus held back, in points of probability of being paid within the window after the step, with its interval. The worklist uses the {days}-day figure.",
        "uplift_history": "How the {days}-day estimate moved (estimate [interval] · decisions held back)",
        "uplift_no_history": "No earlier estimate.",
        "uplift_chart_estimate": "Estimate (points)",
        "uplift_chart_low": "Low",
        "uplift_chart_high": "High",
        "uplift_chart_band": "{conf} interval",
        "uplift_profiles": "By profile ({days}-day window; profile as of the client's first decision of the step, from the stored score run at or before it)",
        "uplift_profiles_none": "No stored score run precedes these decisions: no profile to split them by.",
        "uplift_profiles_small": "No profile has {n} decisions in each arm yet.",
        "uplift_profile": "Profile",
        "logout": "Log out",
        "signed_in_as": "Signed in: {role}",
        "language": "Language",
        "as_of": "As of {day}",
        "model_version": "model v{version}",
        # login
        "login_title": "Log in",
        "login_intro": "Paste your API key (from `encaisse keys create` or `encaisse demo`).",
        "api_key": "API key",
        "login_button": "Log in",
        "login_invalid": "This key is not valid, or it has been revoked.",
        "login_no_pages": "A {role} key has no web pages; use the API (/docs).",
        "login_expired": "The form expired; please try again.",
        # errors
        "error_title": "Error",
        "forbidden": "Your role ({role}) may not open this page.",
        "not_found": "Not found.",
        "no_model": "No model is loaded yet: train one (`encaisse train` or `encaisse demo`). {detail}",
        "csrf_failed": "The form expired or did not come from this site; reload the page and try again.",
        # worklist
        "worklist_title": "Worklist",
        "worklist_source_stored": "Score run {run} of {day} (model v{version}).",
        "worklist_source_computed": "No score run stored: scored now with model v{version}.",
        "filter_collector": "Collector",
        "filter_profile": "Profile",
        "filter_show": "Show",
        "show_today": "Today's actions",
        "show_all": "All open invoices",
        "all": "All",
        "apply": "Apply",
        "rows_shown": "{shown} of {total} rows",
        "no_rows": "Nothing to do here.",
        "col_priority": "#",
        "col_client": "Client",
        "col_invoice": "Invoice",
        "col_amount": "Amount due",
        "col_days_overdue": "Days overdue",
        "col_p_very_late": "P(very late)",
        "col_expected_date": "Expected payment",
        "col_profile": "Profile",
        "col_next_action": "Next action",
        "col_reasons": "Why",
        "col_collector": "Collector",
        "mark_done": "Mark done",
        "done_saved": "Recorded: {step} on {invoice}.",
        # client
        "client_title": "Client {client}",
        "back_to_worklist": "Back to the worklist",
        "client_master": "Client",
        "segment": "Segment",
        "collector": "Collector",
        "credit_limit": "Credit limit",
        "profile": "Profile",
        "scenario": "Dunning scenario",
        "profile_reason": "Why this profile",
        "no_profile": "No open invoice: no profile today.",
        "payment_history": "Payment history",
        "payment_history_help": "Days late of each paid invoice, by payment day (below zero: paid early).",
        "no_history": "No paid invoice yet.",
        "days_late": "Days late",
        "open_invoices": "Open invoices",
        "col_due_date": "Due date",
        "col_p_late": "P(late)",
        "col_range": "P10 - P90",
        "actions": "Actions",
        "no_actions": "No action recorded.",
        "col_date": "Date",
        "col_step": "Step",
        "col_channel": "Channel",
        "col_outcome": "Outcome",
        "col_promise": "Promise",
        "record_title": "Record an action",
        "record_kind": "What happened",
        "kind_call": "Call",
        "kind_promise": "Promise to pay",
        "kind_dispute": "Dispute",
        "record_invoice": "Invoice",
        "whole_client": "Whole client",
        "record_date": "Date",
        "record_outcome": "Call outcome",
        "outcome_reached": "Reached",
        "outcome_no_answer": "No answer",
        "outcome_refused": "Refused to pay",
        "promise_date": "Promised payment date",
        "promise_amount": "Promised amount",
        "record_button": "Record",
        "action_saved": "Action recorded.",
        "action_invalid": "The action was not recorded: {detail}",
        "promise_needs_date": "a promise to pay needs the promised date",
        "behaviour": "Behaviour",
        # forecast
        "forecast_title": "Collection forecast",
        "forecast_intro": "Expected collections of the {n} open invoices, per {period}, with the P10-P90 band; "
                          "the due-date schedule is what falls due in each period.",
        "period_W": "week",
        "period_D": "day",
        "horizon": "Periods",
        "frequency": "Per",
        "freq_W": "week",
        "freq_D": "day",
        "download_csv": "Download CSV",
        "col_period": "Period from",
        "col_expected": "Expected",
        "col_low": "P10",
        "col_high": "P90",
        "col_due_schedule": "Due-date schedule",
        "col_not_issued": "Not yet issued",
        "total": "Total",
        "open_amount": "Open amount",
        "beyond_horizon": "Expected beyond the horizon",
        "band": "P10-P90",
        # KPIs
        "kpis_title": "Collection KPIs",
        "kpis_period": "Period: the {days} days before {day}.",
        "dso": "DSO (countback)",
        "dso_incomplete": "history shorter than the balance: a lower bound",
        "best_dso": "Best possible DSO",
        "add": "Average days delinquent",
        "cei": "Collection effectiveness index",
        "open_balance": "Open balance",
        "overdue": "Overdue",
        "aging": "Aging",
        "bucket": "Bucket",
        "count": "Invoices",
        "amount": "Amount",
        "doubtful": "Doubtful receivables",
        "doubtful_total": "Doubtful: {amount}; suggested provision: {provision}",
        "no_doubtful": "No doubtful receivable.",
        "col_reasons_doubtful": "Reasons",
        "col_loss_rate": "Loss rate",
        "col_provision": "Provision",
        "days_unit": "{n} d",
        # next actions and profiles (policy names)
        "step_preventive": "Pre-due notice",
        "step_pre_due_call": "Pre-due call",
        "step_reminder": "Reminder",
        "step_reminder_1": "1st reminder",
        "step_reminder_2": "2nd reminder (SMS)",
        "step_call": "Call",
        "step_formal_notice": "Formal notice",
        "step_agency": "Hand over to agency",
        "step_promise": "Promise to pay",
        "step_dispute": "Dispute",
        "step_dispute_resolved": "Dispute resolved",
        "step_payment_plan": "Payment plan",
        "step_payment_plan_offer": "Offer a payment plan",
        "step_plan_offer_followup": "Payment plan follow-up",
        "step_plan_review_call": "Payment plan review call",
        "step_instalment_notice": "Instalment notice",
        "step_instalment_reminder": "Instalment reminder",
        "step_instalment_call": "Instalment call",
        "step_dunning_block": "Dunning block",
        "step_dunning_unblock": "Dunning unblocked",
        "step_none (dunning block)": "None (dunning block)",
        "step_none (ladder complete)": "None (every step done)",
        "step_resolve dispute": "Resolve the dispute",
        "step_wait (promise to pay)": "Wait (promise to pay)",
        "step_review payment plan": "Review the payment plan",
        "profile_difficulty": "In difficulty",
        "profile_high_risk": "High risk",
        "profile_watch": "Watch",
        "profile_trusted": "Trusted",
        "profile_standard": "Standard",
        "bucket_not_due": "Not due",
        "bucket_days": "{bucket} days",
        "channel_email": "Email",
        "channel_sms": "SMS",
        "channel_call": "Call",
        "channel_letter": "Letter",
        "channel_registered_letter": "Registered letter",
        "channel_formal_notice": "Formal notice",
        "channel_agency": "Agency",
        "outcome_promise": "Promise",
        "outcome_dispute": "Dispute",
        "outcome_paid": "Paid",
        "outcome_agreed": "Agreed",
        "outcome_done": "Done",
        "done_today": "done today",
        "nothing_to_mark": "This row has no action to mark done today.",
    },
    "fr": {
        "app_name": "Encaisse",
        "nav_worklist": "Liste de travail",
        "nav_forecast": "Prévision",
        "nav_kpis": "Indicateurs",
        "nav_uplift": "Effet des relances",
        "uplift_title": "Ce que change chaque relance",
        "uplift_intro": "Mesuré sur des groupes témoins : {share} des décisions éligibles de chaque étape testée sont retenues au hasard. Intervalles à {conf}.",
        "uplift_step": "Étape",
        "uplift_sent": "Envoyées",
        "uplift_held": "Retenues",
        "uplift_window": "Payé sous {days} jours",
        "uplift_worklist": "La liste de travail utilise",
        "uplift_measured": "l'effet mesuré ({why})",
        "uplift_default": "la valeur par défaut (pas encore assez de preuves)",
        "uplift_explain": "Chaque case : envoyées moins retenues, en points de probabilité d'être payé dans la fenêtre après l'étape, avec son intervalle. La liste de travail utilise la fenêtre de {days} jours.",
        "uplift_history": "Évolution de l'estimation à {days} jours (estimation [intervalle] · décisions retenues)",
        "uplift_no_history": "Pas d'estimation antérieure.",
        "uplift_chart_estimate": "Estimation (points)",
        "uplift_chart_low": "Bas",
        "uplift_chart_high": "Haut",
        "uplift_chart_band": "Intervalle à {conf}",
        "uplift_profiles": "Par profil (fenêtre de {days} jours ; profil à la première décision de l'étape pour ce client, selon le calcul de scores enregistré ce jour-là ou avant)",
        "uplift_profiles_none": "Aucun calcul de scores enregistré ne précède ces décisions : pas de profil pour les répartir.",
        "uplift_profiles_small": "Aucun profil n'a encore {n} décisions dans chaque groupe.",
        "uplift_profile": "Profil",
        "logout": "Se déconnecter",
        "signed_in_as": "Connecté : {role}",
        "language": "Langue",
        "as_of": "Au {day}",
        "model_version": "modèle v{version}",
        "login_title": "Connexion",
        "login_intro": "Collez votre clé d'API (de `encaisse keys create` ou `encaisse demo`).",
        "api_key": "Clé d'API",
        "login_button": "Se connecter",
        "login_invalid": "Cette clé n'est pas valide, ou elle a été révoquée.",
        "login_no_pages": "Une clé {role} n'a pas de pages web ; utilisez l'API (/docs).",
        "login_expired": "Le formulaire a expiré ; veuillez réessayer.",
        "error_title": "Erreur",
        "forbidden": "Votre rôle ({role}) ne permet pas d'ouvrir cette page.",
        "not_found": "Introuvable.",
        "no_model": "Aucun modèle n'est chargé : entraînez-en un (`encaisse train` ou `encaisse demo`). {detail}",
        "csrf_failed": "Le formulaire a expiré ou ne vient pas de ce site ; rechargez la page et réessayez.",
        "worklist_title": "Liste de travail",
        "worklist_source_stored": "Calcul {run} du {day} (modèle v{version}).",
        "worklist_source_computed": "Aucun calcul enregistré : scores calculés maintenant avec le modèle v{version}.",
        "filter_collector": "Chargé de recouvrement",
        "filter_profile": "Profil",
        "filter_show": "Afficher",
        "show_today": "Actions du jour",
        "show_all": "Toutes les factures ouvertes",
        "all": "Tous",
        "apply": "Appliquer",
        "rows_shown": "{shown} lignes sur {total}",
        "no_rows": "Rien à faire ici.",
        "col_priority": "N°",
        "col_client": "Client",
        "col_invoice": "Facture",
        "col_amount": "Reste dû",
        "col_days_overdue": "Jours de retard",
        "col_p_very_late": "P(très en retard)",
        "col_expected_date": "Paiement attendu",
        "col_profile": "Profil",
        "col_next_action": "Prochaine action",
        "col_reasons": "Pourquoi",
        "col_collector": "Chargé",
        "mark_done": "Fait",
        "done_saved": "Enregistré : {step} sur {invoice}.",
        "client_title": "Client {client}",
        "back_to_worklist": "Retour à la liste de travail",
        "client_master": "Client",
        "segment": "Segment",
        "collector": "Chargé de recouvrement",
        "credit_limit": "Encours autorisé",
        "profile": "Profil",
        "scenario": "Scénario de relance",
        "profile_reason": "Pourquoi ce profil",
        "no_profile": "Aucune facture ouverte : pas de profil aujourd'hui.",
        "payment_history": "Historique de paiement",
        "payment_history_help": "Jours de retard de chaque facture payée, par date de paiement "
                                "(sous zéro : payée en avance).",
        "no_history": "Aucune facture payée pour l'instant.",
        "days_late": "Jours de retard",
        "open_invoices": "Factures ouvertes",
        "col_due_date": "Échéance",
        "col_p_late": "P(retard)",
        "col_range": "P10 - P90",
        "actions": "Actions",
        "no_actions": "Aucune action enregistrée.",
        "col_date": "Date",
        "col_step": "Étape",
        "col_channel": "Canal",
        "col_outcome": "Résultat",
        "col_promise": "Promesse",
        "record_title": "Enregistrer une action",
        "record_kind": "Ce qui s'est passé",
        "kind_call": "Appel",
        "kind_promise": "Promesse de paiement",
        "kind_dispute": "Litige",
        "record_invoice": "Facture",
        "whole_client": "Tout le client",
        "record_date": "Date",
        "record_outcome": "Résultat de l'appel",
        "outcome_reached": "Joint",
        "outcome_no_answer": "Pas de réponse",
        "outcome_refused": "Refus de payer",
        "promise_date": "Date de paiement promise",
        "promise_amount": "Montant promis",
        "record_button": "Enregistrer",
        "action_saved": "Action enregistrée.",
        "action_invalid": "L'action n'a pas été enregistrée : {detail}",
        "promise_needs_date": "une promesse de paiement demande la date promise",
        "behaviour": "Comportement",
        "forecast_title": "Prévision d'encaissements",
        "forecast_intro": "Encaissements attendus des {n} factures ouvertes, par {period}, avec la bande P10-P90 ; "
                          "l'échéancier est ce qui arrive à échéance sur chaque période.",
        "period_W": "semaine",
        "period_D": "jour",
        "horizon": "Périodes",
        "frequency": "Par",
        "freq_W": "semaine",
        "freq_D": "jour",
        "download_csv": "Télécharger le CSV",
        "col_period": "Période du",
        "col_expected": "Attendu",
        "col_low": "P10",
        "col_high": "P90",
        "col_due_schedule": "Échéancier",
        "col_not_issued": "Pas encore facturé",
        "total": "Total",
        "open_amount": "Encours ouvert",
        "beyond_horizon": "Attendu au-delà de l'horizon",
        "band": "P10-P90",
        "kpis_title": "Indicateurs de recouvrement",
        "kpis_period": "Période : les {days} jours avant le {day}.",
        "dso": "DSO (méthode par épuisement)",
        "dso_incomplete": "historique plus court que l'encours : borne basse",
        "best_dso": "Meilleur DSO possible",
        "add": "Retard moyen (jours)",
        "cei": "Indice d'efficacité du recouvrement (CEI)",
        "open_balance": "Encours",
        "overdue": "Échu",
        "aging": "Balance âgée",
        "bucket": "Tranche",
        "count": "Factures",
        "amount": "Montant",
        "doubtful": "Créances douteuses",
        "doubtful_total": "Douteuses : {amount} ; provision suggérée : {provision}",
        "no_doubtful": "Aucune créance douteuse.",
        "col_reasons_doubtful": "Motifs",
        "col_loss_rate": "Taux de perte",
        "col_provision": "Provision",
        "days_unit": "{n} j",
        "step_preventive": "Avis avant échéance",
        "step_pre_due_call": "Appel avant échéance",
        "step_reminder": "Relance",
        "step_reminder_1": "1re relance",
        "step_reminder_2": "2e relance (SMS)",
        "step_call": "Appel",
        "step_formal_notice": "Mise en demeure",
        "step_agency": "Transmission au cabinet de recouvrement",
        "step_promise": "Promesse de paiement",
        "step_dispute": "Litige",
        "step_dispute_resolved": "Litige résolu",
        "step_payment_plan": "Échéancier de paiement",
        "step_payment_plan_offer": "Proposer un échéancier",
        "step_plan_offer_followup": "Suivi de la proposition d'échéancier",
        "step_plan_review_call": "Appel de revue de l'échéancier",
        "step_instalment_notice": "Avis d'échéance",
        "step_instalment_reminder": "Relance d'échéance",
        "step_instalment_call": "Appel d'échéance",
        "step_dunning_block": "Blocage des relances",
        "step_dunning_unblock": "Relances débloquées",
        "step_none (dunning block)": "Aucune (relances bloquées)",
        "step_none (ladder complete)": "Aucune (toutes les étapes faites)",
        "step_resolve dispute": "Résoudre le litige",
        "step_wait (promise to pay)": "Attendre (promesse de paiement)",
        "step_review payment plan": "Revoir l'échéancier",
        "profile_difficulty": "En difficulté",
        "profile_high_risk": "Risque élevé",
        "profile_watch": "À surveiller",
        "profile_trusted": "De confiance",
        "profile_standard": "Standard",
        "bucket_not_due": "Non échu",
        "bucket_days": "{bucket} jours",
        "channel_email": "E-mail",
        "channel_sms": "SMS",
        "channel_call": "Appel",
        "channel_letter": "Courrier",
        "channel_registered_letter": "Lettre recommandée",
        "channel_formal_notice": "Mise en demeure",
        "channel_agency": "Cabinet",
        "outcome_promise": "Promesse",
        "outcome_dispute": "Litige",
        "outcome_paid": "Payé",
        "outcome_agreed": "Accord",
        "outcome_done": "Fait",
        "done_today": "fait aujourd'hui",
        "nothing_to_mark": "Cette ligne n'a pas d'action à marquer faite aujourd'hui.",
    },
}
"""UI strings by language, then key; ``{name}`` placeholders are filled by :func:`translate`."""

DUNNING_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "nav_outbox": "Outbox",
        "dunning_preview": "Preview",
        "dunning_preview_title": "Messages due",
        "dunning_preview_intro": "What the dunning run would send this client today; nothing is sent until you press Send.",
        "dunning_nothing_due": "No message is due for this client today.",
        "dunning_recipient": "To",
        "dunning_template": "Template",
        "dunning_invoices": "{n} invoice(s)",
        "dunning_call_instead": "Call task instead",
        "dunning_previous": "Taken up again: this message was {status} in an earlier run.",
        "dunning_attachments": "Attachments",
        "dunning_send": "Send",
        "dunning_send_task": "Create the call task",
        "dunning_skipped": "Not sent",
        "dunning_held": "Held invoices",
        "dunning_sent_result": "{sent} message(s) sent or recorded, {failed} failed.",
        "dunning_planned_as": "planned as {channel}",
        "outbox_title": "Outbox",
        "outbox_intro": "Every message of the dunning run: sent, failed (tried again by the next run), call tasks.",
        "outbox_status": "Status",
        "outbox_empty": "No message yet.",
        "outbox_when": "Day",
        "outbox_channel": "Channel",
        "outbox_attempts": "Attempts",
        "outbox_subject": "Subject",
        "outbox_read": "Read",
        "outbox_message_title": "Message",
        "outbox_error": "Error",
        "outbox_note": "Note",
        "outbox_message_id": "Message id",
        "outbox_no_body": "No text recorded for this message.",
        "channel_call_task": "Call task",
        "status_planned": "Planned",
        "status_sending": "Sending",
        "status_sent": "Sent",
        "status_failed": "Failed",
        "status_unconfirmed": "Unconfirmed",
        "status_task": "Call task",
        "status_cancelled": "Cancelled",
    },
    "fr": {
        "nav_outbox": "Envois",
        "dunning_preview": "Aperçu",
        "dunning_preview_title": "Messages à envoyer",
        "dunning_preview_intro": "Ce que la relance du jour enverrait à ce client ; rien ne part avant « Envoyer ».",
        "dunning_nothing_due": "Aucun message n'est dû pour ce client aujourd'hui.",
        "dunning_recipient": "À",
        "dunning_template": "Modèle",
        "dunning_invoices": "{n} facture(s)",
        "dunning_call_instead": "Tâche d'appel à la place",
        "dunning_previous": "Repris : ce message était « {status} » lors d'un passage précédent.",
        "dunning_attachments": "Pièces jointes",
        "dunning_send": "Envoyer",
        "dunning_send_task": "Créer la tâche d'appel",
        "dunning_skipped": "Non envoyés",
        "dunning_held": "Factures en attente",
        "dunning_sent_result": "{sent} message(s) envoyé(s) ou enregistré(s), {failed} en échec.",
        "dunning_planned_as": "prévu par {channel}",
        "outbox_title": "Envois",
        "outbox_intro": "Tous les messages de la relance : envoyés, en échec (réessayés au prochain passage), tâches d'appel.",
        "outbox_status": "Statut",
        "outbox_empty": "Aucun message pour l'instant.",
        "outbox_when": "Jour",
        "outbox_channel": "Canal",
        "outbox_attempts": "Tentatives",
        "outbox_subject": "Objet",
        "outbox_read": "Lire",
        "outbox_message_title": "Message",
        "outbox_error": "Erreur",
        "outbox_note": "Note",
        "outbox_message_id": "Identifiant du message",
        "outbox_no_body": "Aucun texte enregistré pour ce message.",
        "channel_call_task": "Tâche d'appel",
        "status_planned": "Prévu",
        "status_sending": "En cours d'envoi",
        "status_sent": "Envoyé",
        "status_failed": "En échec",
        "status_unconfirmed": "Non confirmé",
        "status_task": "Tâche d'appel",
        "status_cancelled": "Annulé",
    },
}
"""The dunning pages' strings (Preview, Send, Outbox), merged into :data:`MESSAGES`."""
for _lang, _extra in DUNNING_MESSAGES.items():
    MESSAGES[_lang].update(_extra)
for _lang, _strings in MONITORING_MESSAGES.items():
    MESSAGES[_lang].update(_strings)

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NNBSP = "\u202f"  # French thousands separator and the space before % and €


def pick_lang(*candidates: str | None) -> str:
    """The first supported language among ``candidates`` (query, cookie, Accept-Language), else English."""
    for c in candidates:
        if not c:
            continue
        for part in c.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in LANGS:
                return code
    return DEFAULT_LANG


def translate(key: str, lang: str, **values: Any) -> str:
    """The string ``key`` in ``lang`` (English, then the key itself, when missing), placeholders filled."""
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT_LANG].get(key) or key
    return text.format(**values) if values else text


def label(prefix: str, value: Any, lang: str) -> str:
    """A policy name (``step_*``, ``profile_*``) in ``lang``; the raw value when it has no entry."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    key = f"{prefix}_{value}"
    return translate(key, lang) if key in MESSAGES[DEFAULT_LANG] else str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_number(value: Any, lang: str, digits: int = 0) -> str:
    """``1,234.5`` (en) or ``1 234,5`` (fr); empty for a missing value."""
    if _missing(value):
        return ""
    text = f"{float(value):,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", _NNBSP).replace(".", ",")
    return text


def fmt_amount(value: Any, lang: str, currency: str | None = "EUR", digits: int = 0) -> str:
    """``€1,234`` (en) or ``1 234 €`` (fr); the ISO code for currencies without a symbol."""
    if _missing(value):
        return ""
    cur = currency or ""
    symbol = _CURRENCY_SYMBOLS.get(cur, cur)
    number = fmt_number(abs(float(value)), lang, digits)
    sign = "-" if float(value) < 0 else ""
    if lang == "fr":
        return f"{sign}{number}{_NNBSP}{symbol}".strip()
    if symbol in _CURRENCY_SYMBOLS.values():
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {symbol}".strip()


def fmt_pct(value: Any, lang: str, digits: int = 0) -> str:
    """A share in [0, 1] as ``12%`` (en) or ``12 %`` (fr)."""
    if _missing(value):
        return ""
    number = fmt_number(100 * float(value), lang, digits)
    return f"{number}{_NNBSP}%" if lang == "fr" else f"{number}%"


def fmt_date(value: Any, lang: str) -> str:
    """``31 Dec 2025`` (en) or ``31/12/2025`` (fr); empty for a missing value."""
    if value is None or value != value:  # NaT compares unequal to itself
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        try:
            value = value.date()  # pandas Timestamp
        except AttributeError:
            return str(value)
    if lang == "fr":
        return value.strftime("%d/%m/%Y")
    return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"

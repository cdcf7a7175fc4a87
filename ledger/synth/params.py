"""Parameters of the synthetic ledger: profiles, segments, habits and how each behaves."""

from __future__ import annotations

import numpy as np

PROFILES = ("punctual", "slightly_late", "chronic_late", "deteriorating", "in_difficulty", "defaulting")
PUNCTUAL, SLIGHTLY_LATE, CHRONIC_LATE, DETERIORATING, IN_DIFFICULTY, DEFAULTING = range(6)
SEGMENTS = ("SME", "mid-market", "key account", "public sector")
SME, MID, KEY, PUBLIC = range(4)
TERMS = ("30_net", "45_eom", "60_net")
PAY_PATTERNS = ("any_day", "monday", "tuesday", "wednesday", "thursday", "friday", "month_end",
                "tenth", "tenth_and_25th")
COUNTRIES = ("FR", "BE", "DE", "ES", "IT")
SECTORS = ("construction", "manufacturing", "wholesale", "retail", "transport", "hospitality",
           "business services", "IT services", "healthcare", "public administration", "education")
COLLECTORS = ("Camille Martin", "Julien Bernard", "Sophie Dubois", "Thomas Leroy", "Nadia Haddad",
              "Lucas Moreau")
STEPS = ("preventive", "reminder_1", "reminder_2", "call", "formal_notice", "agency", "promise",
         "dispute", "payment_plan")
CHANNELS = ("email", "sms", "call", "letter", "registered_letter", "agency")
OUTCOMES = ("no_answer", "promise", "paid", "refused", "dispute", "agreed", None, "held_back")

NEVER = np.int64(10**7)
"""Day number standing for "never paid" (far beyond any calendar)."""

# Rows: segment. Columns: profile.
_PROFILE_BY_SEGMENT = np.array([
    [.30, .25, .15, .09, .12, .09],
    [.38, .27, .13, .08, .08, .06],
    [.45, .30, .12, .06, .05, .02],
    [.20, .40, .35, .05, .00, .00],
])
_SEGMENT_P = np.array([.58, .25, .08, .09])
_COUNTRY_BY_SEGMENT = np.array([
    [.74, .08, .07, .06, .05],
    [.72, .09, .08, .06, .05],
    [.66, .10, .10, .07, .07],
    [.96, .04, .00, .00, .00],
])
_TERMS_BY_SEGMENT = np.array([[.55, .20, .25], [.35, .30, .35], [.20, .35, .45], [1.0, 0, 0]])
_WEEKDAY_SHARE = np.array([.10, .25, .15, .20, .30])
_PATTERN_BY_SEGMENT = np.array([
    [.45, *(.35 * _WEEKDAY_SHARE), .10, .10, .00],
    [.30, *(.35 * _WEEKDAY_SHARE), .15, .10, .10],
    [.15, *(.35 * _WEEKDAY_SHARE), .20, .10, .20],
    [.80, *(.20 * _WEEKDAY_SHARE), .00, .00, .00],
])
_RATE_MEDIAN = np.array([0.9, 2.2, 6.0, 2.0])  # invoices per month
_AMOUNT_MEDIAN = np.array([1200.0, 4500.0, 15000.0, 6000.0])  # EUR per invoice

# Dunning: probability that a step shortens the remaining delay, by behaviour (profile columns).
_EFFECT = {
    "preventive": np.array([.50, .35, .10, .25, .02, 0]),
    "reminder_1": np.array([.70, .50, .10, .40, .03, 0]),
    "reminder_2": np.array([.70, .50, .25, .50, .05, 0]),
    "formal_notice": np.array([.80, .60, .45, .50, .15, 0]),
    "agency": np.array([.80, .60, .50, .50, .25, 0]),
}
_PROMISE_CALL = np.array([.30, .45, .40, .40, .50, .25])
_PROMISE_WRITTEN = np.array([.05, .10, .10, .10, .10, .05])
_KEPT = np.array([.95, .85, .55, .70, .30, 0])
_REFUSED = np.array([0, 0, .05, .05, .30, .40])
_RISK = np.array([0.0, 0.5, 1.2, 0.3, 0.6, 0.9])  # onboarding risk view, blind to the future

"""The ledger's payment calendar: weekdays and the holidays of each country, read before as_of."""

import numpy as np
import pandas as pd
import pytest

from features.calendar import (
    WEEKDAY_MIN_PAYMENTS,
    PaymentCalendar,
    holidays_between,
    invoice_countries,
    knows_country,
    payment_calendar,
)
from ledger.contracts import Ledger


def _paid_ledger(paid_days, countries, clients=None) -> Ledger:
    paid = pd.DatetimeIndex(paid_days)
    inv = pd.DataFrame({"invoice_id": [f"I{i}" for i in range(len(paid))], "client_id": [f"C{i}" for i in range(len(paid))],
                        "issue_date": paid - pd.Timedelta(days=30), "due_date": paid, "amount": 100.0,
                        "currency": "EUR", "paid_date": paid, "country": countries})
    return Ledger(invoices=inv, clients=clients) if clients is not None else Ledger(invoices=inv)


def _business_days(country: str, start, end, per_day: int, open_on=()) -> list[pd.Timestamp]:
    """``per_day`` payments on each weekday of [start, end), none on the country's holidays except
    those named in ``open_on``."""
    hol = holidays_between(country, start, end)
    days = [d for d in pd.bdate_range(start, pd.Timestamp(end) - pd.Timedelta(days=1))
            if d not in hol or hol[d] in open_on]
    return [d for d in days for _ in range(per_day)]


def test_weekday_weights_read_the_ledgers_payment_days_before_as_of():
    weekdays = pd.bdate_range("2024-06-03", periods=WEEKDAY_MIN_PAYMENTS)
    later_sundays = pd.date_range("2025-06-01", periods=50, freq="W-SUN")
    paid = weekdays.append(later_sundays)
    ledger = _paid_ledger(paid, None)
    w = payment_calendar(ledger, "2025-06-01").weekday_weights
    assert w.mean() == pytest.approx(1.0)
    assert (w[5:] < 0.05).all() and (w[:5] > 1.3).all()  # the Sundays after as_of are not known yet
    assert payment_calendar(ledger, "2024-12-01") is None  # too few payments known then
    assert payment_calendar(ledger, "2026-06-01", lookback_days=300) is None  # the weekdays are older
    # A ledger whose payments table holds the dates (invoices left open): read from there.
    pays = pd.DataFrame({"payment_id": [f"P{i}" for i in range(len(weekdays))], "invoice_id": "I0",
                         "paid_date": weekdays, "amount": 1.0})
    open_inv = ledger.invoices.head(1).assign(paid_date=pd.NaT)
    w = payment_calendar(Ledger(invoices=open_inv, payments=pays), "2025-06-01").weekday_weights
    assert (w[5:] < 0.05).all() and (w > 0).all()


def test_each_holiday_weighs_what_it_weighed_last_time_in_its_country():
    # GB closes on every holiday; NL pays as usual on Ascension Day and closes on the others. Forty
    # payments a day: enough for one day's count to outweigh the shrinkage.
    start, as_of = "2024-06-03", "2025-06-30"
    gb = _business_days("GB", start, as_of, 40)
    nl = _business_days("NL", start, as_of, 40, open_on=("Ascension Day",))
    cal = payment_calendar(_paid_ledger(gb + nl, ["GB"] * len(gb) + ["NL"] * len(nl)), as_of)
    assert cal.holiday_weight("GB", "Christmas Day") < 0.1
    assert cal.holiday_weight("NL", "Christmas Day") < 0.1
    assert cal.holiday_weight("NL", "Ascension Day") > 0.7
    # A holiday not seen in the lookback: the country's holidays as a whole; a country not seen: all of them.
    assert cal.holiday_weight("NL", "no such holiday") == pytest.approx(cal.country_weights["NL"])
    assert cal.country_weights["GB"] < cal.country_weights["NL"] < 0.5
    assert cal.holiday_weight("FR", "Christmas Day") == pytest.approx(cal.default_holiday_weight)
    assert 0 < cal.default_holiday_weight < 0.5
    # Payments after as_of (every day, holidays too) are not read.
    late = list(pd.date_range(as_of, periods=200, freq="D"))
    later = payment_calendar(_paid_ledger(gb + nl + late, ["GB"] * len(gb) + ["NL"] * len(nl) + ["GB"] * len(late)),
                             as_of)
    assert later.holiday_weights == cal.holiday_weights and later.country_weights == cal.country_weights


def test_days_outside_a_countrys_history_are_not_taken_for_closed():
    # NL pays on every weekday, holidays too, from January; GB, closed on its holidays, from the summer
    # before. The Christmas before NL's history says nothing about NL, nor do the days after its last
    # payment (its history stops in mid-May).
    nl = _business_days("NL", "2025-01-02", "2025-05-15", 40, open_on=tuple(
        holidays_between("NL", "2025-01-01", "2025-07-01").values()))
    gb = _business_days("GB", "2024-07-01", "2025-06-30", 40)
    cal = payment_calendar(_paid_ledger(nl + gb, ["NL"] * len(nl) + ["GB"] * len(gb)), "2025-06-30")
    assert not {"Christmas Day", "Ascension Day", "Pentecost Monday"} & set(cal.holiday_weights["NL"])
    assert cal.holiday_weight("NL", "Easter Monday") == pytest.approx(1.0, abs=0.05)
    # A holiday outside NL's history takes NL's holidays as a whole, shrunk a little towards GB's.
    assert 0.8 < cal.holiday_weight("NL", "Ascension Day") == cal.country_weights["NL"] < 1.0
    assert cal.holiday_weight("GB", "Christmas Day") < 0.05
    # Weekdays as payments per ordinary day: GB's Mondays hold more of its holidays, not fewer payments.
    gb_w = cal.country_weekday_weights["GB"]
    assert gb_w[:5] == pytest.approx(np.full(5, gb_w[:5].mean()), rel=0.01)


def test_day_weights_multiply_the_weekdays_by_each_countrys_holidays():
    cal = PaymentCalendar(weekday_weights=[1, 1, 1, 1, 1, 0.1, 0.1], holiday_weights={"GB": {"Boxing Day": 0.2}},
                          country_weights={"GB": 0.3}, default_holiday_weight=0.5)
    w = cal.day_weights("2025-12-22", 7, ["GB", "gb", "FR", "XX", None])
    week = np.array([1, 1, 1, 1, 1, 0.1, 0.1])
    np.testing.assert_allclose(w[0], week * [1, 1, 1, 0.3, 0.2, 1, 1])  # Christmas Day: the country's weight
    np.testing.assert_allclose(w[1], w[0])  # codes are read upper-case
    np.testing.assert_allclose(w[2], week * [1, 1, 1, 0.5, 1, 1, 1])  # FR: Christmas Day only, the default
    np.testing.assert_allclose(w[3], week)  # a country the holidays package does not know
    np.testing.assert_allclose(w[4], week)
    # Sweden's de facto days off are holidays too (Christmas Eve, Wednesday 2025-12-24).
    assert pd.Timestamp("2025-12-24") in holidays_between("SE", "2025-12-22", "2025-12-29")
    # A missing country, however spelt, is no country; codes are read trimmed.
    np.testing.assert_allclose(cal.day_weights("2025-12-22", 7, [pd.NA, np.nan, ""]), np.tile(week, (3, 1)))
    assert holidays_between(" gb ", "2025-12-25", "2025-12-26")
    assert not knows_country("XX") and knows_country("se")


def test_invoice_countries_take_the_invoices_own_else_its_clients():
    inv = pd.DataFrame({"invoice_id": ["A", "B", "C", "D"], "client_id": ["K1", "K2", "K3", "K1"],
                        "issue_date": pd.Timestamp("2025-01-01"), "due_date": pd.Timestamp("2025-02-01"),
                        "amount": 1.0, "currency": "EUR", "country": ["se", None, "", " no "]})
    clients = pd.DataFrame({"client_id": ["K1", "K2"], "country": ["DK", "gb"]})
    out = invoice_countries(Ledger(invoices=inv, clients=clients), ["D", "B", "C", "A", "Z"])
    assert list(out) == ["NO", "GB", None, "SE", None]
    assert list(invoice_countries(Ledger(invoices=inv.drop(columns="country")), ["A", "B"])) == [None, None]
    # An id given twice reads its first row.
    twice = pd.concat([inv, inv.assign(country="FI")], ignore_index=True)
    assert list(invoice_countries(Ledger(invoices=twice, clients=clients), ["D", "Z", "A"])) == ["NO", None, "SE"]


def test_each_country_has_its_own_weekdays_shrunk_to_the_ledgers():
    # SE pays on every weekday but Tuesday, NL on every weekday; DK has a handful of payments.
    se = [d for d in _business_days("SE", "2024-06-03", "2025-06-02", 10) if d.day_of_week != 1]
    nl = _business_days("NL", "2024-06-03", "2025-06-02", 10)
    dk = _business_days("DK", "2025-05-01", "2025-06-02", 1)[:5]
    cal = payment_calendar(_paid_ledger(se + nl + dk, ["SE"] * len(se) + ["NL"] * len(nl) + ["DK"] * len(dk)),
                           "2025-06-02")
    se_w, nl_w, dk_w = (cal.country_weekday_weights[c] for c in ("SE", "NL", "DK"))
    assert se_w[1] < 0.1 and se_w[[0, 2, 3, 4]].min() > 1.3
    assert nl_w[:5] == pytest.approx(np.full(5, 1.4), abs=0.05) and nl_w[5:].max() < 0.02
    # Five payments say little: DK is the ledger's shape, near enough.
    np.testing.assert_allclose(dk_w, cal.weekday_weights, atol=0.15)
    # Five payments of a country whose weekend is Friday-Saturday (SA, paid on Sundays): its prior is the
    # ledger's shape with the weekend moved there.
    sa = [d + pd.Timedelta(days=6) for d in _business_days("SE", "2025-05-05", "2025-06-02", 1) if d.day_of_week == 0]
    sa_w = payment_calendar(_paid_ledger(se + nl + sa, ["SE"] * len(se) + ["NL"] * len(nl) + ["SA"] * len(sa)),
                            "2025-06-02").country_weekday_weights["SA"]
    assert sa_w[6] > 1.0 and sa_w[[4, 5]].max() < 0.05 and sa_w[[0, 1, 2, 3]].min() > 0.8
    # Day weights take the country's own; an unknown country the ledger's.
    w = cal.day_weights("2025-06-09", 7, ["SE", "NL", "FR"])  # Whit Monday in NL and FR, not in SE
    np.testing.assert_allclose(w[0], se_w)
    np.testing.assert_allclose(w[1, 1:], nl_w[1:])
    assert w[1, 0] < 0.2 * nl_w[0]  # NL was closed on it
    np.testing.assert_allclose(w[2, 1:], cal.weekday_weights[1:])

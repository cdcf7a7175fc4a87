"""The synthetic ledger's generator: clients, invoices, payer behaviour, dunning, payments, tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ledger.contracts import ACTIONS, CLIENTS, COMPACT_TABLES, INVOICES, PAYMENTS, Ledger, Table, compact_frame
from ledger.synth.calendar import BusinessCalendar
from ledger.synth.contacts import make_contacts
from ledger.synth.columns import _dates, _ids, _labels
from ledger.synth.control import ControlSim
from ledger.synth.ladder import DunningLadder
from ledger.synth.params import (
    PROFILES, PUNCTUAL, SLIGHTLY_LATE, CHRONIC_LATE, DETERIORATING, IN_DIFFICULTY, DEFAULTING, SEGMENTS,
    SME, KEY, PUBLIC, TERMS, PAY_PATTERNS, COUNTRIES, SECTORS, COLLECTORS, STEPS, CHANNELS, OUTCOMES, NEVER,
    _PROFILE_BY_SEGMENT, _SEGMENT_P, _COUNTRY_BY_SEGMENT, _TERMS_BY_SEGMENT, _PATTERN_BY_SEGMENT,
    _RATE_MEDIAN, _AMOUNT_MEDIAN, _RISK,
)

log = logging.getLogger(__name__)



@dataclass
class SyntheticLedger:
    """A synthetic ledger and the hidden truth that generated it.

    Attributes:
        ledger: the four canonical tables.
        profiles: one row per client: ``client_id``, ``profile`` (one of ``PROFILES``),
            ``pay_pattern``, ``preventive`` (gets J-5 notices), ``default_date`` (defaulting
            clients: nothing due is paid from this day on; may fall after ``end_date``),
            ``difficulty_start`` and ``difficulty_end`` (in-difficulty clients; ``difficulty_end``
            empty = never recovered).
        truth: one row per invoice (``doc_type == 'invoice'``): ``invoice_id``, ``client_id``,
            ``profile``, ``cleared_date`` (uncensored clearing day, empty = never paid),
            ``credit_amount`` (EUR settled by a dispute credit note; the payments cover the rest).
        end_date: the export day.
        control_truth: with control groups (:class:`~ledger.synth.control.ControlSim`), one row
            per invoice of each testable step's decisions: ``invoice_id``, ``client_id``,
            ``profile``, ``step``, ``decision_date``, ``held_back``, and its uncensored clearing
            day if the step is sent (``cleared_if_sent``) and if it is held back
            (``cleared_if_held``), everything else equal; None without control groups.
    """

    ledger: Ledger
    profiles: pd.DataFrame
    truth: pd.DataFrame
    end_date: pd.Timestamp
    control_truth: pd.DataFrame | None = None


def _categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element of ``rows`` from the categorical distribution ``probs[row]``."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(rows))
    return np.minimum((u[:, None] >= cum[rows]).sum(axis=1), probs.shape[1] - 1)


def _uniform_days(rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int,
                  size: int) -> np.ndarray:
    """Integer days uniform in [lo, hi] (inclusive), element-wise."""
    lo = np.asarray(lo, dtype=np.int64)
    span = np.maximum(np.asarray(hi, dtype=np.int64) - lo + 1, 1)
    return lo + np.floor(rng.random(size) * span).astype(np.int64)


# --------------------------------------------------------------------------------------------


class _Generator(DunningLadder):
    def __init__(self, n_clients: int, years: int, seed: int, end: pd.Timestamp, control: ControlSim | None = None):
        # One stream per stage, so tuning one stage leaves the others' draws (and the clients) alone.
        stages = ("clients", "invoices", "payments", "disputes", "dunning", "parts", "credit_notes",
                  "outcomes", "names", "contacts")
        seeds = np.random.SeedSequence(seed).spawn(len(stages))
        self.rngs = {stage: np.random.default_rng(s) for stage, s in zip(stages, seeds)}
        self.n_clients = n_clients
        self.end_ts = end
        self.end = int(np.datetime64(end.date(), "D").astype(np.int64))
        start = (end - pd.DateOffset(years=years) + pd.Timedelta(days=1)).date()
        self.start = int(np.datetime64(start, "D").astype(np.int64))
        self.cal = BusinessCalendar(self.start - 400, self.end + 1500)
        self.control = control
        self.control_rows: list = []
        self.inert = frozenset(control.inert) if control is not None else frozenset()

    def run(self) -> SyntheticLedger:
        self._make_clients()
        self._make_invoices()
        self._natural_payment_days()
        self._raise_disputes()
        self._run_dunning()
        self._settle()
        self._split_payments()
        self._make_credit_notes()
        return self._assemble()

    # -- clients -------------------------------------------------------------------------------

    def _make_clients(self) -> None:
        rng, n, start, end = self.rngs["clients"], self.n_clients, self.start, self.end
        seg = rng.choice(4, size=n, p=_SEGMENT_P)
        prof = _categorical(rng, _PROFILE_BY_SEGMENT, seg)
        country = _categorical(rng, _COUNTRY_BY_SEGMENT, seg)
        risky = np.array([1, 1, 1, 1, 1, 1.8, 1, 1, 1])  # hospitality fails more often
        base = np.array([.14, .16, .14, .12, .10, .07, .14, .08, .05, 0, 0])
        rows = []
        for p in range(6):
            w = base.copy()
            if p in (CHRONIC_LATE, IN_DIFFICULTY, DEFAULTING):
                w[:9] *= risky
                w[[0, 3, 4]] *= (1.8, 1.4, 1.3)  # construction, retail, transport
            rows.append(w)
        rows.append(np.array([0, 0, 0, 0, 0, 0, 0, 0, .25, .55, .20]))
        sector = _categorical(rng, np.array(rows), np.where(seg == PUBLIC, 6, prof))

        self.seg, self.prof, self.country, self.sector = seg, prof, country, sector
        self.pattern = _categorical(rng, _PATTERN_BY_SEGMENT, seg)
        self.terms_main = _categorical(rng, _TERMS_BY_SEGMENT, seg)
        self.rate = _RATE_MEDIAN[seg] * rng.lognormal(0, 0.7, n)
        self.amount_median = _AMOUNT_MEDIAN[seg] * rng.lognormal(0, 0.6, n)
        self.preventive = rng.random(n) < np.array([.2, .3, .5, .1])[seg]
        self.strategic = rng.random(n) < np.array([.02, .08, .5, .1])[seg]
        self.company = np.where(rng.random(n) < .85, 0, 1)
        self.collector = np.where(seg == KEY, rng.integers(0, 2, n), rng.integers(0, len(COLLECTORS), n))

        # Payment behaviour (days after due).
        base_delay = np.select(
            [prof == PUNCTUAL, prof == SLIGHTLY_LATE, prof == CHRONIC_LATE, prof == DETERIORATING,
             prof == IN_DIFFICULTY],
            [rng.normal(-2, 2, n), rng.uniform(3, 15, n), rng.uniform(20, 55, n), rng.uniform(0, 8, n),
             rng.uniform(0, 12, n)],
            rng.uniform(5, 25, n))
        base_delay += np.select([seg == PUBLIC, np.isin(country, (3, 4)), country == 2], [5, 3, -1], 0)
        self.base_delay = base_delay
        self.scale = np.array([3, 6, 12, 6, 8, 10])[prof] * rng.uniform(0.7, 1.3, n)
        self.early_payer = (prof == PUNCTUAL) & (rng.random(n) < .2)
        self.slope = np.where(prof == DETERIORATING, rng.uniform(40, 100, n) / 365, 0.0)
        self.onset = _uniform_days(rng, start, end - 120, n)
        diff_start = _uniform_days(rng, start + 60, end - 30, n)
        recovered = rng.random(n) < .6
        diff_end = np.where(recovered, diff_start + rng.integers(90, 301, n), NEVER)
        self.diff_start = np.where(prof == IN_DIFFICULTY, diff_start, NEVER)
        self.diff_end = np.where(prof == IN_DIFFICULTY, diff_end, NEVER)
        self.default_day = np.where(prof == DEFAULTING, _uniform_days(rng, start + 150, end + 120, n), NEVER)

        joins_later = rng.random(n) >= .85
        active_from = np.where(joins_later, _uniform_days(rng, start, end - 60, n), start)
        churns = rng.random(n) < .07
        active_to = np.where(churns, _uniform_days(rng, active_from + 60, end, n), end)
        # A defaulting client's account is blocked a few weeks after it stops paying.
        active_to = np.minimum(active_to, self.default_day + rng.integers(0, 61, n))
        self.active_from = active_from
        self.active_to = np.clip(active_to, active_from, end)

        self.credit_limit = np.maximum(
            1000.0, np.round(2.5 * self.rate * self.amount_median * np.exp(.5 * .25) / 1000) * 1000)
        risk = _RISK[prof] + rng.normal(0, .45, n)
        self.credit_category = np.digitize(risk, [.5, 1.1])

    # -- invoices ------------------------------------------------------------------------------

    def _make_invoices(self) -> None:
        rng, cal = self.rngs["invoices"], self.cal
        i0, i1 = cal.idx(np.int64(self.start)), cal.idx(np.int64(self.end))
        sl = slice(i0, i1 + 1)
        weight = np.where(cal.business[sl], 1.0, np.where(cal.dow[sl] == 5, .03, .01))
        weight = np.where(cal.holiday[sl] & (cal.dow[sl] < 5), .05, weight)
        weight *= np.where(cal.month_end_2[sl], 3.0, 1.0)  # month-end billing
        weight *= np.where(cal.month[sl] == 8, .55, 1.0)
        weight *= np.where((cal.month[sl] == 12) & (cal.dom[sl] >= 24), .5, 1.0)
        weight /= weight.mean()
        cum = np.concatenate([[0.0], np.cumsum(weight)])

        a = self.active_from - self.start
        b = self.active_to - self.start
        mass = cum[b + 1] - cum[a]
        counts = rng.poisson(self.rate / 30.44 * mass)
        cli = np.repeat(np.arange(self.n_clients), counts)
        u = cum[a[cli]] + rng.random(len(cli)) * mass[cli]
        day = np.clip(np.searchsorted(cum, u, side="right") - 1, a[cli], b[cli])
        issue = self.start + day.astype(np.int64)
        order = np.lexsort((cli, issue))
        cli, issue = cli[order], issue[order]
        n = len(cli)

        terms = np.where(rng.random(n) < .9, self.terms_main[cli], rng.integers(0, 3, n))
        terms = np.where(self.seg[cli] == PUBLIC, 0, terms)
        eom = ((issue + 45).astype("datetime64[D]").astype("datetime64[M]") + 1).astype(
            "datetime64[D]").astype(np.int64) - 1
        due = np.select([terms == 0, terms == 1], [issue + 30, eom], issue + 60)
        amount = np.maximum(20.0, np.round(self.amount_median[cli] * rng.lognormal(0, .5, n), 2))
        self.cli, self.issue, self.due, self.terms, self.amount, self.n = cli, issue, due, terms, amount, n

    def _natural_payment_days(self) -> None:
        """Payment day without dunning, disputes or payment runs."""
        rng, cal, cli, n = self.rngs["payments"], self.cal, self.cli, self.n
        prof = self.prof[cli]
        due, issue = self.due, self.issue
        size_effect = 2.5 * np.clip(np.log(self.amount / self.amount_median[cli]), -2, 2)
        tail = np.where(rng.random(n) < .04, rng.exponential(25, n), 0.0)
        delay = self.base_delay[cli] + self.scale[cli] * rng.standard_normal(n) + size_effect + tail
        delay += np.minimum(150, self.slope[cli] * np.maximum(0, due - self.onset[cli]))
        default_day = self.default_day[cli]
        ramp_from = default_day - 150
        delay += 35 * np.clip((due - ramp_from) / 150, 0, 1) * (prof == DEFAULTING)
        pay = due + np.rint(delay).astype(np.int64)
        early = self.early_payer[cli]
        pay = np.where(early, issue + rng.integers(5, 16, n), pay)
        pay = np.maximum(pay, issue + 1)

        # Summer closures and year-end: payments due then slip to late August / early January.
        i = cal.idx(pay)
        month, dom = cal.month[i], cal.dom[i]
        smb = np.where(self.seg[cli] == SME, .6, .45)
        aug = (month == 8) & (dom < 25) & (rng.random(n) < smb)
        pay = np.where(aug, pay - dom + 25 + rng.integers(0, 21, n), pay)
        dec = (month == 12) & (dom >= 20) & (rng.random(n) < .45)
        pay = np.where(dec, pay - dom + 34 + rng.integers(0, 8, n), pay)

        ds, de = self.diff_start[cli], self.diff_end[cli]
        hit = (prof == IN_DIFFICULTY) & (pay >= ds) & (pay < de)
        longer = pay + rng.integers(30, 121, n)
        capped = np.where(de < NEVER, np.minimum(longer, de + rng.integers(0, 46, n)), longer)  # recovery
        pay = np.where(hit, capped, pay)

        lost = (prof == DEFAULTING) & (pay >= default_day)
        pay = np.where(lost, NEVER, pay)
        self.pay, self.hit, self.lost = pay, hit, lost
        # Behaviour that drives the response to dunning.
        beh = np.where(prof == IN_DIFFICULTY, np.where(hit, IN_DIFFICULTY, SLIGHTLY_LATE), prof)
        self.beh = np.where(prof == DEFAULTING, np.where(lost, DEFAULTING, CHRONIC_LATE), beh)

    def _raise_disputes(self) -> None:
        rng, cal, n = self.rngs["disputes"], self.cal, self.n
        prof = self.prof[self.cli]
        p = np.array([.02, .03, .05, .03, .06, .04])[prof]
        p = p * np.where(self.amount > 2 * self.amount_median[self.cli], 1.5, 1.0)
        day = cal.next_business(self.issue + rng.integers(5, 51, n))
        disputed = (rng.random(n) < p) & (self.pay > day)
        resolved = cal.next_business(day + np.where(np.isin(prof, (CHRONIC_LATE, IN_DIFFICULTY)),
                                                    rng.integers(40, 181, n), rng.integers(20, 151, n)))
        kind = rng.choice(3, size=n, p=[.15, .35, .50])  # full credit, partial credit, paid late
        kind = np.where(disputed & (self.pay < NEVER), kind, -1)
        credit = np.select([kind == 0, kind == 1],
                           [self.amount, np.round(self.amount * rng.uniform(.1, .6, n), 2)], 0.0)
        pay = np.select([kind == 0, kind == 1, kind == 2],
                        [resolved, resolved + rng.integers(3, 31, n),
                         np.maximum(self.pay, resolved + rng.integers(0, 21, n))], self.pay)
        self.pay = pay
        self.disputed, self.dispute_day = disputed, np.where(disputed, day, NEVER)
        self.credit_kind, self.credit_amount, self.resolved = kind, credit, resolved

    # -- dunning -------------------------------------------------------------------------------

    def _split_payments(self) -> None:
        rng, cal, n = self.rngs["parts"], self.cal, self.n
        final = self.final
        paid = final < NEVER
        installments = paid & (self.beh == IN_DIFFICULTY) & (rng.random(n) < .5)
        short = paid & ~installments & (rng.random(n) < .04)
        parts = np.where(installments, rng.integers(2, 5, n), np.where(short, 2, 1))
        parts = np.where(self.credit_kind == 0, 0, parts)
        # A last partial payment before a default: the invoice then stays open for good.
        lo = np.maximum(self.issue + 1, self.due - 10)
        hi = self.default_day[self.cli] - 1
        last_gasp = self.lost & (rng.random(n) < .3) & (hi >= lo)
        parts = np.where(self.lost, last_gasp.astype(np.int64), parts)

        inv = np.repeat(np.arange(n), parts)
        m = len(inv)
        starts = np.repeat(np.cumsum(parts) - parts, parts)
        j = np.arange(m) - starts  # 0 = last part (clears the invoice), 1.. = earlier parts
        gap = np.where(installments[inv], rng.integers(20, 36, m), rng.integers(5, 41, m))
        gap = np.where(j == 0, 0, gap)
        back = np.cumsum(gap)
        back -= np.repeat(back[np.cumsum(parts)[parts > 0] - parts[parts > 0]], parts[parts > 0])
        day = cal.prev_business(final[inv] - back)
        day = np.where(j > 0, np.maximum(day, self.issue[inv] + 1), day)
        gasp = self.lost[inv]
        day = np.where(gasp, cal.prev_business(_uniform_days(rng, lo[inv], hi[inv], m)), day)
        day = np.where(gasp, np.maximum(day, self.issue[inv] + 1), day)

        payable = self.amount - self.credit_amount
        w = rng.uniform(.6, 1.4, m)
        share = np.round(payable[inv] * w / np.bincount(inv, weights=w, minlength=n)[inv], 2)
        earlier = np.bincount(inv, weights=np.where(j > 0, share, 0.0), minlength=n)
        amount = np.where(j == 0, np.round(payable[inv] - earlier[inv], 2), share)
        amount = np.where(gasp, np.round(payable[inv] * rng.uniform(.1, .6, m), 2), amount)
        self.parts_inv, self.parts_day, self.parts_amount, self.parts_j = inv, day, amount, j
        self.installments = installments

        # The installment plan agreed before its first part.
        first = np.full(n, NEVER)
        some = np.flatnonzero(parts > 0)
        first[some] = day[np.cumsum(parts)[some] - 1]  # parts run backwards in time within an invoice
        plan = installments & (parts >= 2)
        pday = cal.prev_business(first - rng.integers(1, 8, n))
        plan &= (pday > self.issue) & (pday <= self.end) & (pday < final) & (pday < self.dispute_day)
        pi = np.flatnonzero(plan)
        self.action_rows.append((pi, pday[pi], np.full(len(pi), STEPS.index("payment_plan")),
                                 np.full(len(pi), 2), np.full(len(pi), OUTCOMES.index("agreed")),
                                 final[pi], np.zeros(len(pi))))

    def _make_credit_notes(self) -> None:
        rng, cal, n = self.rngs["credit_notes"], self.cal, self.n
        k = rng.binomial(n, .012) if n else 0
        src = rng.integers(0, max(n, 1), k)
        issue = cal.next_business(self.issue[src] + rng.integers(0, 41, k))
        amount = np.maximum(5.0, np.round(self.amount[src] * rng.uniform(.05, .3, k), 2))
        cleared = cal.next_business(issue + rng.integers(0, 46, k))
        d = np.flatnonzero((self.credit_kind >= 0) & (self.credit_kind <= 1))
        self.cn_cli = np.concatenate([self.cli[src], self.cli[d]])
        self.cn_issue = np.concatenate([issue, self.resolved[d]])
        self.cn_amount = np.concatenate([amount, self.credit_amount[d]])
        self.cn_cleared = np.concatenate([cleared, self.resolved[d]])

    # -- frames --------------------------------------------------------------------------------

    def _assemble(self) -> SyntheticLedger:
        end, n = self.end, self.n
        keep_cn = self.cn_issue <= end
        ncn = int(keep_cn.sum())
        cli = np.concatenate([self.cli, self.cn_cli[keep_cn]])
        issue = np.concatenate([self.issue, self.cn_issue[keep_cn]])
        due = np.concatenate([self.due, self.cn_issue[keep_cn]])
        amount = np.concatenate([self.amount, self.cn_amount[keep_cn]])
        cleared = np.concatenate([self.final, self.cn_cleared[keep_cn]])
        paid = np.where(cleared <= end, cleared, NEVER)
        is_cn = np.concatenate([np.zeros(n, dtype=bool), np.ones(ncn, dtype=bool)])
        disputed = np.concatenate([self.disputed & (self.dispute_day <= end), np.zeros(ncn, dtype=bool)])
        order = np.lexsort((is_cn, cli, issue))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        inv_rank = np.argsort(rank[:n], kind="stable")
        cn_rank = np.argsort(rank[n:], kind="stable")
        doc_id = np.empty(n + ncn, dtype=object)
        doc_id[inv_rank] = _ids("INV", n, 6)
        doc_id[n + cn_rank] = _ids("CN", ncn, 6)
        client_ids = _ids("C", self.n_clients, 5)

        terms = np.concatenate([_labels(TERMS, self.terms), np.full(ncn, None, dtype=object)])
        block = np.where(disputed & (paid >= NEVER), "dispute", None).astype(object)
        invoices = _frame(INVOICES, {
            "invoice_id": doc_id,
            "client_id": client_ids[cli],
            "issue_date": _dates(issue),
            "due_date": _dates(due),
            "amount": amount,
            "currency": np.full(n + ncn, "EUR", dtype=object),
            "paid_date": _dates(paid),
            "doc_type": np.where(is_cn, "credit_note", "invoice").astype(object),
            "terms": terms,
            "company": _labels(("FR01", "FR02"), self.company)[cli],
            "country": _labels(COUNTRIES, self.country)[cli],
            "disputed": disputed,
            "dunning_block": block,
            "credit_category": _labels(("A", "B", "C"), self.credit_category)[cli],
        }, order)

        ok = self.parts_day <= end
        pinv, pday, pamt, pj = self.parts_inv[ok], self.parts_day[ok], self.parts_amount[ok], self.parts_j[ok]
        porder = np.lexsort((-pj, rank[pinv], pday))
        payments = _frame(PAYMENTS, {
            "payment_id": _ids("PAY", len(porder), 7),
            "invoice_id": doc_id[pinv[porder]],
            "paid_date": _dates(pday[porder]),
            "amount": pamt[porder],
        })

        acts = [np.concatenate(col) for col in zip(*self.action_rows)]
        ainv, aday, astep, ach, aout, apd, apa = acts
        ok = aday <= end
        ainv, aday, astep, ach, aout, apd, apa = (x[ok] for x in acts)
        # What the client says on the day: "it is paid" when the money is indeed days away.
        says = self.rngs["outcomes"].random(len(ainv)) < .6
        says_paid = (aout == 0) & (self.final[ainv] - aday <= 3) & says
        aout = np.where(says_paid, OUTCOMES.index("paid"), aout)
        owed = np.flatnonzero(~np.isnan(apa))
        apa[owed] = self._open_amount(ainv[owed], aday[owed])
        aorder = np.lexsort((astep, rank[ainv], aday))
        actions = _frame(ACTIONS, {
            "action_id": _ids("ACT", len(aorder), 7),
            "invoice_id": doc_id[ainv[aorder]],
            "client_id": client_ids[self.cli[ainv[aorder]]],
            "action_date": _dates(aday[aorder]),
            "step": _labels(STEPS, astep[aorder]),
            "channel": _labels(CHANNELS, ach[aorder]),
            "outcome": _labels(OUTCOMES, aout[aorder]),
            "promise_date": _dates(apd[aorder]),
            "promise_amount": apa[aorder],
        })

        c = self.n_clients
        names = self._client_names()
        clients = _frame(CLIENTS, {
            "client_id": client_ids,
            "name": names,
            "segment": _labels(SEGMENTS, self.seg),
            "credit_limit": self.credit_limit,
            "strategic": self.strategic,
            "sector": _labels(SECTORS, self.sector),
            "country": _labels(COUNTRIES, self.country),
            "collector": _labels(COLLECTORS, self.collector),
            **make_contacts(self.rngs["contacts"], names, self.country, self.seg == PUBLIC),
        })

        profiles = pd.DataFrame({
            "client_id": pd.Series(client_ids, dtype=object),
            "profile": pd.Series(_labels(PROFILES, self.prof), dtype=object),
            "pay_pattern": pd.Series(_labels(PAY_PATTERNS, self.pattern), dtype=object),
            "preventive": self.preventive,
            "default_date": _dates(self.default_day),
            "difficulty_start": _dates(self.diff_start),
            "difficulty_end": _dates(self.diff_end),
        })
        truth = pd.DataFrame({
            "invoice_id": pd.Series(doc_id[:n], dtype=object),
            "client_id": pd.Series(client_ids[self.cli], dtype=object),
            "profile": pd.Series(_labels(PROFILES, self.prof[self.cli]), dtype=object),
            "cleared_date": _dates(self.final),
            "credit_amount": self.credit_amount,
        }).iloc[np.argsort(rank[:n], kind="stable")].reset_index(drop=True)
        log.debug("synthetic ledger: %d clients, %d invoices, %d credit notes, %d payments, %d actions",
                  c, n, ncn, len(payments), len(actions))
        return SyntheticLedger(
            ledger=Ledger(invoices=invoices, payments=payments, clients=clients, actions=actions),
            profiles=profiles, truth=truth, end_date=self.end_ts,
            control_truth=self._control_truth(doc_id, client_ids) if self.control is not None else None)

    def _open_amount(self, inv: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Amount still owed on ``day`` (parts paid before that day deducted), per (invoice, day)."""
        left = pd.DataFrame({"row": np.arange(len(inv)), "inv": inv, "day": day})
        parts = pd.DataFrame({"inv": self.parts_inv, "pday": self.parts_day, "amt": self.parts_amount})
        m = left.merge(parts, on="inv", how="inner")
        m = m[m["pday"] <= m["day"]]
        paid = np.bincount(m["row"].to_numpy(), weights=m["amt"].to_numpy(), minlength=len(inv))
        return np.round(np.maximum(self.amount[inv] - paid, 0.01), 2)

    def _client_names(self) -> np.ndarray:
        rng, n = self.rngs["names"], self.n_clients
        trades = np.array(["Transports", "Menuiserie", "Boulangerie", "Atelier", "Groupe", "Garage",
                           "Imprimerie", "Laboratoire", "Cabinet", "Distribution", "Bâtiment",
                           "Hôtel", "Conseil", "Informatique", "Métallerie", "Logistique"])
        families = np.array(["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit",
                             "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel",
                             "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier", "Morel",
                             "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François",
                             "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guerin"])
        forms = np.array(["SAS", "SARL", "SA", "SRL", "GmbH", "SL", "S.r.l."])
        form_by_country = np.array([[.5, .35, .15, 0, 0, 0, 0], [0, 0, .4, .6, 0, 0, 0],
                                    [0, 0, 0, 0, 1, 0, 0], [0, 0, .3, 0, 0, .7, 0],
                                    [0, 0, .2, 0, 0, 0, .8]])
        towns = np.array(["Lyon", "Lille", "Nantes", "Rennes", "Tours", "Dijon", "Reims", "Metz",
                          "Angers", "Nîmes", "Limoges", "Amiens", "Brest", "Pau", "Annecy", "Caen"])
        bodies = np.array(["Mairie de", "Communauté de communes de", "Centre hospitalier de",
                           "Lycée de", "Syndicat des eaux de"])
        company = np.strings.add(np.strings.add(np.strings.add(
            trades[rng.integers(0, len(trades), n)], " "), families[rng.integers(0, len(families), n)]),
            np.strings.add(" ", forms[_categorical(rng, form_by_country, self.country)]))
        public = np.strings.add(np.strings.add(bodies[rng.integers(0, len(bodies), n)], " "),
                                towns[rng.integers(0, len(towns), n)])
        return np.where(self.seg == PUBLIC, public, company).astype(object)


def _frame(table: Table, columns: dict, order: np.ndarray | None = None) -> pd.DataFrame:
    """A frame with exactly the table's columns and dtypes, rows taken in ``order``.

    Text columns are built as ``object`` (the contract's dtype), not pandas' inferred ``str``; the
    tables of ``COMPACT_TABLES`` then hold them compactly (``compact_frame``), one table at a time.
    """
    data = {}
    for c in table.columns:
        values = columns[c.name]
        if order is not None:
            values = values[order]
        if c.kind == "str":
            data[c.name] = pd.Series(np.asarray(values, dtype=object), dtype=object)
        elif c.kind == "bool":
            data[c.name] = pd.array(values, dtype="boolean")
        else:
            data[c.name] = values
    frame = pd.DataFrame(data)
    return compact_frame(frame, table) if table.name in COMPACT_TABLES else frame

"""The synthetic ledger's dunning ladder, walked step by step, with control groups and their truth.

A mixin of the generator (``ledger.synth.generator._Generator``): it reads the invoices, payer
behaviour and natural payment days the generator made, and sets the payment days after dunning
(``pay``), kept promises (``kept``), the action rows and, with control groups, each testable
step's paired replays (:mod:`ledger.synth.control`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ledger.control_groups import held_back
from ledger.synth.columns import _dates, _ids, _labels
from ledger.synth.control import PairedDraws, SequentialDraws
from ledger.synth.params import (
    _EFFECT, _KEPT, _PROMISE_CALL, _PROMISE_WRITTEN, _REFUSED, NEVER, OUTCOMES, PROFILES, PUBLIC, SME, STEPS,
)

HELD_CODE = OUTCOMES.index("held_back")


class DunningLadder:
    """Dunning, settlement and the control truth of the synthetic generator."""

    def _run_dunning(self) -> None:
        """Walk the ladder in order; each step sees (and may shorten) the current payment day.

        With control groups, the held-back decisions get no effect, and each testable step is
        replayed with every decision forced sent and forced held back (paired draws) to know its
        true effect (:mod:`ledger.synth.control`).
        """
        if self.control is None:
            self.pay, self.kept, self.action_rows = self._dunning_pass(SequentialDraws(self.rngs["dunning"]))
            return
        seed = int(self.rngs["dunning"].integers(2 ** 62))
        pay0 = self.pay.copy()
        client_ids = _ids("C", self.n_clients, 5)
        salt, share, testable = self.control.salt, self.control.share, self.control.testable

        def assign(name: str, idx: np.ndarray) -> np.ndarray:
            return held_back(client_ids[self.cli[idx]], [name] * len(idx), salt=salt, share=share, testable=testable)

        realized = self._dunning_pass(PairedDraws(seed, self.n), assign)
        self.action_rows = realized[2]
        truth = []
        for step in testable:
            worlds = {}
            for forced in (False, True):
                def forced_assign(name, idx, step=step, forced=forced):
                    return np.full(len(idx), forced) if name == step else assign(name, idx)
                self.pay = pay0.copy()
                pay, kept, rows = self._dunning_pass(PairedDraws(seed, self.n), forced_assign)
                worlds[forced] = self._settle_days(pay, kept)
            code = STEPS.index(step)
            for idx, day, st, _ch, out, *_ in self.action_rows:
                mine = st == code
                if mine.any():
                    truth.append((idx[mine], day[mine], np.full(int(mine.sum()), code), out[mine] == HELD_CODE,
                                  worlds[False][idx[mine]], worlds[True][idx[mine]]))
        self.pay, self.kept, _ = realized
        self.control_rows = truth

    def _dunning_pass(self, draws, assign=None):
        """One walk down the ladder from ``self.pay``: (payment days, kept promises, action rows).

        ``assign(step, invoices)`` says which decisions are held back (none when None).
        """
        cal, n, cli = self.cal, self.n, self.cli
        seg, beh = self.seg[cli], self.beh
        no_escalation = self.strategic[cli] | (seg == PUBLIC)
        ladder = [
            ("preventive", -5, -5, self.preventive[cli]),
            ("reminder_1", 1, 3, np.ones(n, dtype=bool)),
            ("reminder_2", 10, 15, np.ones(n, dtype=bool)),
            ("formal_notice", 30, 34, ~no_escalation),
            ("agency", 60, 75, ~no_escalation & (self.amount >= 150)),
        ]
        rows = []
        pay = self.pay.copy()
        kept_any = np.zeros(n, dtype=bool)
        everyone = np.arange(n)
        for name, lo, hi, allowed in ladder:
            draws.start_step(name)
            day = cal.next_business(self.due + draws.integers(lo, hi + 1, everyone))
            sent = allowed & (day <= self.end) & (day > self.issue) & (pay > day) & (day < self.dispute_day)
            idx = np.flatnonzero(sent)
            k = len(idx)
            a, b = day[idx], beh[idx]
            if name == "reminder_1":
                channel = np.where((seg[idx] == SME) & (draws.random(idx) < .15), 1, 0)
            elif name == "reminder_2":
                call = (seg[idx] != SME) | (self.amount[idx] > 10000) | (draws.random(idx) < .5)
                channel = np.where(call, 2, np.where(draws.random(idx) < .7, 0, 3))
            elif name == "formal_notice":
                channel = np.full(k, 4)
            elif name == "agency":
                channel = np.full(k, 5)
            else:
                channel = np.zeros(k, dtype=np.int64)
            step = np.full(k, STEPS.index(name))
            if name == "reminder_2":
                step = np.where(channel == 2, STEPS.index("call"), step)
            held = np.zeros(k, dtype=bool)
            # An inert step is sent but changes nothing: it draws as a held-back one does.
            mute = np.full(k, name in self.inert)
            if assign is not None:
                for code in np.unique(step):
                    on = step == code
                    held[on] = assign(STEPS[code], idx[on])
            spoken = channel >= 2
            promise = (name != "preventive") & (
                draws.random(idx) < np.where(spoken, _PROMISE_CALL[b], _PROMISE_WRITTEN[b])) & ~held & ~mute
            promise_day = cal.next_business(a + draws.integers(2, 15, idx))
            kept = promise & (draws.random(idx) < _KEPT[b])
            refused = ~promise & spoken & (draws.random(idx) < _REFUSED[b]) & ~held & ~mute
            outcome = np.select([held, promise, refused], [HELD_CODE, 1, 3], 0)

            # Effects on the payment day (disputed invoices wait for their resolution).
            p = pay[idx]
            free = ~self.disputed[idx]
            if name == "preventive":
                new = np.maximum(self.due[idx] + draws.integers(-2, 4, idx), np.maximum(a, self.issue[idx]) + 1)
            else:
                lag = draws.integers(2, 6, idx)
                f = draws.uniform(0, .5, idx)
                new = a + lag + np.ceil(np.maximum(p - a - lag, 0) * f).astype(np.int64)
            acts = free & ~promise & ~held & ~mute & (draws.random(idx) < _EFFECT[name][b])
            p = np.where(acts, np.minimum(p, new), p)
            p = np.where(free & kept, np.minimum(p, promise_day + draws.integers(0, 3, idx)), p)
            pay[idx] = p
            kept_any[idx] |= free & kept

            rows.append((idx, a, step, channel, outcome, np.full(k, NEVER), np.full(k, np.nan)))
            pi = np.flatnonzero(promise)
            rows.append((idx[pi], a[pi], np.full(len(pi), STEPS.index("promise")), channel[pi],
                         np.full(len(pi), OUTCOMES.index(None)), promise_day[pi], np.zeros(len(pi))))

        d = np.flatnonzero(self.disputed & (self.dispute_day <= self.end))
        draws.start_step("dispute")
        ch = np.where(draws.random(d) < .6, 0, 2)
        rows.append((d, self.dispute_day[d], np.full(len(d), STEPS.index("dispute")), ch,
                     np.full(len(d), OUTCOMES.index("dispute")), np.full(len(d), NEVER),
                     np.full(len(d), np.nan)))
        return pay, kept_any, rows

    def _settle(self) -> None:
        self.final = self._settle_days(self.pay, self.kept)

    def _settle_days(self, pay: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Final clearing day: the client's next payment run (a kept promise: next business day)."""
        cal = self.cal
        runs = cal.next_run(pay, self.pattern[self.cli])
        final = np.where(kept, cal.next_business(pay), runs)
        return np.where(self.credit_kind == 0, self.resolved, final)

    def _control_truth(self, doc_id: np.ndarray, client_ids: np.ndarray) -> pd.DataFrame:
        cols = [np.concatenate(col) for col in zip(*self.control_rows)] if self.control_rows else [
            np.zeros(0, dtype=np.int64)] * 3 + [np.zeros(0, dtype=bool)] + [np.zeros(0, dtype=np.int64)] * 2
        inv, day, step, held, sent_day, held_day = cols
        ok = day <= self.end
        inv, day, step, held, sent_day, held_day = (x[ok] for x in cols)
        return pd.DataFrame({
            "invoice_id": pd.Series(doc_id[inv], dtype=object),
            "client_id": pd.Series(client_ids[self.cli[inv]], dtype=object),
            "profile": pd.Series(_labels(PROFILES, self.prof[self.cli[inv]]), dtype=object),
            "step": pd.Series(_labels(STEPS, step), dtype=object),
            "decision_date": _dates(day),
            "held_back": held.astype(bool),
            "cleared_if_sent": _dates(sent_day),
            "cleared_if_held": _dates(held_day),
        })

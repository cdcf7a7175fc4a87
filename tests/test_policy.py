"""The dunning policy: loading and validation, profile assignment, next steps. Frames built by hand."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from models.dunning import assign_profiles, next_steps
from models.policy import (CLIENT_SCORE_COLUMNS, DEFAULT_POLICY_PATH, NO_ACTION_BLOCK, NO_ACTION_DONE, RESOLVE_DISPUTE,
                           REVIEW_PLAN, WAIT_PROMISE, Policy, PolicyError, load_policy)

D = "2025-04-01"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def _profile(data: dict, name: str) -> dict:
    return next(p for p in data["profiles"] if p["name"] == name)


def _write(tmp_path, data) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


# --- the default policy ------------------------------------------------------------------------

def test_default_policy_follows_the_ladder(policy):
    assert [p.name for p in policy.ordered_profiles] == ["difficulty", "high_risk", "watch", "trusted", "standard"]

    def ladder(profile):
        return [(s.offset_days, s.channel) for s in policy.scenarios[policy.profile(profile).scenario].steps]

    assert ladder("trusted") == [(7, "email"), (20, "call")]
    assert ladder("standard") == [(-5, "email"), (1, "email"), (12, "call"), (30, "formal_notice"), (45, "agency")]
    assert ladder("high_risk") == [(-7, "email"), (-1, "call"), (1, "email"), (7, "call"), (15, "formal_notice"),
                                   (30, "agency")]
    assert policy.scenarios["payment_plan"].plan_steps
    assert policy.promise_grace_days == 3 and policy.formal_notice_days == 8


# --- validation ----------------------------------------------------------------------------------

def test_typo_in_a_key_fails_at_load(tmp_path, raw):
    _profile(raw, "watch")["whenn"] = _profile(raw, "watch").pop("when")
    with pytest.raises(PolicyError, match=r"(?s)policy\.yaml.*whenn.*Extra inputs are not permitted"):
        load_policy(_write(tmp_path, raw))


def test_unknown_channel(tmp_path, raw):
    raw["scenarios"]["standard"]["steps"][2]["channel"] = "fax"
    with pytest.raises(PolicyError, match=r"(?s)scenarios\.standard\.steps\.2\.channel.*'email'.*fax"):
        load_policy(_write(tmp_path, raw))


def test_unknown_field_and_missing_file(tmp_path, raw):
    _profile(raw, "watch")["when"][0]["field"] = "p_very_lat_max"
    with pytest.raises(PolicyError, match="unknown client field 'p_very_lat_max'"):
        load_policy(_write(tmp_path, raw))
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_steps_out_of_order(raw):
    steps = raw["scenarios"]["standard"]["steps"]
    steps[2]["offset_days"] = 35  # call J+35 now after formal notice J+30
    with pytest.raises(ValueError, match=r"scenario 'standard': steps out of order: 'formal_notice' \(J\+30\) "
                                         r"comes after 'call' \(J\+35\)"):
        Policy.model_validate(raw)


def test_same_priority_names_both_profiles(raw):
    _profile(raw, "trusted")["priority"] = 30
    with pytest.raises(ValueError, match="profiles 'watch' and 'trusted' have the same priority 30"):
        Policy.model_validate(raw)


def test_shadowed_threshold_rule_names_both_profiles(raw):
    # watch (p_very_late_max >= 0.15) tried before high_risk (>= 0.30 and not strategic): high_risk never wins.
    _profile(raw, "watch")["priority"] = 15
    with pytest.raises(ValueError, match=r"profile 'high_risk' \(priority 20\) can never be selected: profile "
                                         r"'watch' \(priority 15\).*p_very_late_max >= 0.3 implies "
                                         r"p_very_late_max >= 0.15"):
        Policy.model_validate(raw)


def test_not_shadowed_when_later_rule_is_narrower_on_another_field(raw):
    # high_risk tried first and watch after: watch also matches 0.15-0.30 and strategic clients. Valid.
    Policy.model_validate(raw)
    # ...but a catch-all before other profiles shadows them.
    _profile(raw, "standard")["priority"] = 5
    with pytest.raises(ValueError, match="'difficulty'.*'standard' has no conditions"):
        Policy.model_validate(raw)


def test_last_profile_must_be_a_catch_all(raw):
    _profile(raw, "standard")["when"] = [{"field": "open_amount", "op": ">", "value": 0}]
    with pytest.raises(ValueError, match="'standard' is tried last but has conditions"):
        Policy.model_validate(raw)


def test_contradictory_conditions(raw):
    _profile(raw, "trusted")["when"].append({"field": "p_late_mean", "op": ">=", "value": 0.5})
    with pytest.raises(ValueError, match="'trusted' can never be selected: its conditions contradict"):
        Policy.model_validate(raw)


def test_bool_field_needs_true_or_false(raw):
    _profile(raw, "difficulty")["when"][0] = {"field": "in_difficulty", "op": ">=", "value": 0.5}
    with pytest.raises(ValueError, match="'in_difficulty' is a yes/no fact"):
        Policy.model_validate(raw)


def test_agency_needs_formal_notice_first_and_domain_rules(raw):
    bad = copy.deepcopy(raw)
    bad["scenarios"]["firm"]["steps"][4]["offset_days"] = 25  # formal notice J+25, agency J+30 < 25 + 8
    with pytest.raises(ValueError, match=r"agency step 'agency' \(J\+30\) needs a formal_notice step at least 8"):
        Policy.model_validate(bad)
    bad = copy.deepcopy(raw)
    bad["scenarios"]["soft"]["steps"].insert(0, {"offset_days": -2, "step": "fn", "channel": "formal_notice",
                                                 "template": "x"})
    with pytest.raises(ValueError, match="before the invoice is past due"):
        Policy.model_validate(bad)
    bad = copy.deepcopy(raw)
    _profile(bad, "trusted")["scenario"] = "gentle"
    with pytest.raises(ValueError, match="unknown scenario 'gentle'"):
        Policy.model_validate(bad)


# --- assign_profiles -----------------------------------------------------------------------------

def _clients() -> pd.DataFrame:
    nan = float("nan")
    rows = [
        # client, p_late_mean, p_very_late_max, overdue_share, open_amount, broken, days_since_pay, strategic, difficulty
        ("c1", 0.60, 0.50, 0.70, 9000.0, 2, 60.0, False, True),    # difficulty first, whatever the scores
        ("c2", 0.50, 0.42, 0.40, 5000.0, 1, 45.0, False, False),   # high_risk
        ("c3", 0.50, 0.42, 0.40, 5000.0, 1, 45.0, True, False),    # strategic: not high_risk -> watch
        ("c4", 0.10, 0.05, 0.05, 1000.0, 0, 10.0, False, False),   # trusted
        ("c5", 0.25, 0.05, 0.05, 1000.0, 0, 10.0, False, False),   # p_late_mean 0.25 -> standard
        ("c6", 0.10, nan, 0.00, 200.0, 0, nan, None, False),       # missing p_very_late: no risk rule -> trusted
    ]
    return pd.DataFrame(rows, columns=list(CLIENT_SCORE_COLUMNS))


def test_assign_profiles_first_match_with_reasons(policy):
    out = assign_profiles(_clients(), policy).set_index("client_id")
    assert out["profile"].to_dict() == {"c1": "difficulty", "c2": "high_risk", "c3": "watch", "c4": "trusted",
                                        "c5": "standard", "c6": "trusted"}
    assert out["scenario"].to_dict()["c2"] == "firm"
    assert out.loc["c1", "reason"] == "in_difficulty true == true"
    assert out.loc["c2", "reason"] == "p_very_late_max 0.42 >= 0.3; strategic false == false"
    assert out.loc["c3", "reason"] == "p_very_late_max 0.42 >= 0.15"
    assert out.loc["c4", "reason"] == "p_late_mean 0.1 < 0.15; overdue_share 0.05 < 0.1; broken_promises 0 == 0"
    assert out.loc["c5", "reason"] == "no earlier profile matched"
    assert "change_reason" not in out.columns


def test_assign_profiles_change_reason(policy):
    prev = pd.DataFrame({"client_id": ["c2", "c4", "c1", "c3", "c6"],
                         "profile": ["standard", "trusted", "difficulty", "watch", "trusted"]})
    out = assign_profiles(_clients(), policy, previous=prev).set_index("client_id")
    assert out.loc["c2", "change_reason"] == "standard -> high_risk: p_very_late_max 0.42 >= 0.3; strategic false == false"
    assert out.loc["c5", "change_reason"] == "new -> standard: no earlier profile matched"
    assert out["change_reason"].isna().sum() == 4


def test_assign_profiles_contract_errors(policy):
    with pytest.raises(ValueError, match=r"missing required columns \['broken_promises'\]"):
        assign_profiles(_clients().drop(columns="broken_promises"), policy)
    with pytest.raises(ValueError, match="duplicated client_id"):
        assign_profiles(pd.concat([_clients(), _clients().iloc[:1]]), policy)


def test_in_payment_plan_optional_column(raw):
    # A custom policy keyed on in_payment_plan: absent column means False for everyone.
    _profile(raw, "difficulty")["when"] = [{"field": "in_payment_plan", "op": "==", "value": True}]
    pol = Policy.model_validate(raw)
    assert assign_profiles(_clients(), pol).set_index("client_id").loc["c1", "profile"] == "high_risk"
    with_plan = _clients().assign(in_payment_plan=[False, True, False, False, False, False])
    assert assign_profiles(with_plan, pol).set_index("client_id").loc["c2", "profile"] == "difficulty"


# --- next_steps ----------------------------------------------------------------------------------

ASSIGN = pd.DataFrame({"client_id": ["c1", "c2", "c3", "c4", "c5"],
                       "profile": ["difficulty", "high_risk", "watch", "trusted", "standard"]})


def _invoices(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["invoice_id", "client_id", "due_date"])
    return df.assign(amount=100.0, p_late=0.5, p_very_late=0.2)


def _actions(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["action_id", "invoice_id", "client_id", "action_date", "step", "outcome",
                                       "promise_date"])


def _one(out, invoice_id) -> dict:
    return out.set_index("invoice_id").loc[invoice_id].to_dict()


def test_next_steps_ladders(policy):
    inv = _invoices([
        ("s1", "c5", "2025-04-04"),  # standard, due in 3 days: preventive J-5 (03-30) is late -> today
        ("s2", "c5", "2025-03-25"),  # standard, reminder_1 done: call J+12 = 04-06
        ("t1", "c4", "2025-04-10"),  # trusted: no pre-due notice; reminder J+7 = 04-17
        ("t2", "c4", "2025-02-01"),  # trusted, both steps done -> ladder complete
        ("h1", "c2", "2025-04-05"),  # high_risk, preventive done: pre-due call J-1 = 04-04
        ("h2", "c2", "2025-03-01"),  # high_risk, 31 days late, nothing done: pre-due steps skipped, reminder today
    ])
    act = _actions([
        ("a1", "s2", "c5", "2025-03-26", "reminder_1", None, None),
        ("a2", "t2", "c4", "2025-02-08", "reminder_1", None, None),
        ("a3", "t2", "c4", "2025-02-21", "call", "no_answer", None),
        ("a4", "h1", "c2", "2025-03-29", "preventive", None, None),
        ("a5", "h1", "c2", "2025-04-01", "pre_due_call", None, None),  # on as_of: not yet known
    ])
    out = next_steps(inv, ASSIGN, policy, D, act)
    assert list(out["invoice_id"]) == ["s1", "s2", "t1", "t2", "h1", "h2"]
    got = {r.invoice_id: (r.next_action, r.next_action_date, r.channel, r.template) for r in out.itertuples()}
    T = pd.Timestamp
    assert got["s1"] == ("preventive", T("2025-04-01"), "email", "notice_before_due")
    assert got["s2"] == ("call", T("2025-04-06"), "call", "call_firm")
    assert got["t1"] == ("reminder_1", T("2025-04-17"), "email", "reminder_courteous")
    assert got["t2"][0] == NO_ACTION_DONE and pd.isna(got["t2"][1])
    assert got["h1"] == ("pre_due_call", T("2025-04-04"), "call", "call_pre_due")
    assert got["h2"] == ("reminder_1", T("2025-04-01"), "email", "reminder_firm")


def test_next_steps_block_dispute_promise(policy):
    inv = _invoices([
        ("b1", "c5", "2025-03-01"),  # dunning_block column set
        ("b2", "c3", "2025-03-01"),  # client-level block action on c3
        ("d1", "c5", "2025-03-10"),  # dispute action
        ("p1", "c5", "2025-03-01"),  # promise for 03-30: wait until 03-30 + 3 = 04-02
        ("p2", "c5", "2025-03-01"),  # promise for 03-20: broken (03-23 < 04-01) -> ladder: reminder_1 today
        ("u1", "c4", "2025-03-01"),  # blocked then unblocked: trusted ladder, reminder J+7 -> today
    ]).assign(dunning_block=["R", None, "", None, None, None])
    act = _actions([
        ("a1", None, "c3", "2025-03-05", "dunning_block", None, None),
        ("a2", "d1", "c5", "2025-03-15", "dispute", "dispute", None),
        ("a3", "p1", "c5", "2025-03-25", "call", "promise", "2025-03-30"),
        ("a4", "p2", "c5", "2025-03-12", "promise", None, "2025-03-20"),
        ("a5", "u1", "c4", "2025-03-02", "dunning_block", None, None),
        ("a6", "u1", "c4", "2025-03-09", "dunning_unblock", None, None),
    ])
    out = next_steps(inv, ASSIGN, policy, D, act)
    assert _one(out, "b1")["next_action"] == NO_ACTION_BLOCK and pd.isna(_one(out, "b1")["next_action_date"])
    assert _one(out, "b2")["next_action"] == NO_ACTION_BLOCK
    assert _one(out, "d1")["next_action"] == RESOLVE_DISPUTE
    assert _one(out, "d1")["next_action_date"] == pd.Timestamp(D)
    assert _one(out, "p1")["next_action"] == WAIT_PROMISE
    assert _one(out, "p1")["next_action_date"] == pd.Timestamp("2025-04-02")
    assert _one(out, "p2")["next_action"] == "reminder_1"
    assert _one(out, "u1")["next_action"] == "reminder_1"
    assert _one(out, "u1")["next_action_date"] == pd.Timestamp(D)


def test_next_steps_payment_plan(policy):
    inv = _invoices([("f1", "c1", "2025-03-20")])
    # No plan yet: offer J+1 (03-21) is late -> today, by call.
    out = next_steps(inv, ASSIGN, policy, D, None)
    assert (_one(out, "f1")["next_action"], _one(out, "f1")["channel"]) == ("payment_plan_offer", "call")
    # Plan agreed on 03-25 with instalments 04-03 and 05-03 (client-level actions).
    plan = [("a1", "f1", "c1", "2025-03-22", "payment_plan_offer", "promise", None),
            ("i1", None, "c1", "2025-03-25", "payment_plan", None, "2025-04-03"),
            ("i2", None, "c1", "2025-03-25", "payment_plan", None, "2025-05-03")]
    # Instalment 04-03: notice at J-3 = 03-31 is late -> today.
    out = next_steps(inv, ASSIGN, policy, D, _actions(plan))
    assert (_one(out, "f1")["next_action"], _one(out, "f1")["next_action_date"]) == \
        ("instalment_notice", pd.Timestamp(D))
    # Notice sent 03-31: reminder at 04-03 + 1 = 04-04, by sms.
    plan.append(("n1", None, "c1", "2025-03-31", "instalment_notice", None, None))
    out = next_steps(inv, ASSIGN, policy, D, _actions(plan))
    assert _one(out, "f1")["next_action"] == "instalment_reminder"
    assert _one(out, "f1")["next_action_date"] == pd.Timestamp("2025-04-04")
    assert _one(out, "f1")["channel"] == "sms"
    # On 04-20 the first instalment's window (up to 04-11) is past: second instalment, notice at 04-30.
    out = next_steps(inv, ASSIGN, policy, "2025-04-20", _actions(plan))
    assert (_one(out, "f1")["next_action"], _one(out, "f1")["next_action_date"]) == \
        ("instalment_notice", pd.Timestamp("2025-04-30"))
    # After the last instalment's window (05-11): review the plan.
    assert _one(next_steps(inv, ASSIGN, policy, "2025-05-20", _actions(plan)), "f1")["next_action"] == REVIEW_PLAN


def test_next_steps_paid_and_contract_errors(policy):
    inv = _invoices([("x1", "c5", "2025-03-01"), ("x2", "c5", "2025-03-01")]).assign(
        paid_date=[pd.Timestamp("2025-03-15"), pd.Timestamp("2025-04-01")])
    out = next_steps(inv, ASSIGN, policy, D)
    assert list(out["invoice_id"]) == ["x2"]     # paid on as_of: still open at the start of the day
    with pytest.raises(ValueError, match=r"no profile in assignments, e.g. \['zz'\]"):
        next_steps(_invoices([("y", "zz", "2025-03-01")]), ASSIGN, policy, D)
    with pytest.raises(ValueError, match=r"invoices is missing required columns \['p_very_late'\]"):
        next_steps(_invoices([("y", "c5", "2025-03-01")]).drop(columns="p_very_late"), ASSIGN, policy, D)


# --- next_steps against a per-invoice reference, on random small ledgers ------------------------

def _reference_next_steps(invoices, assignments, policy, as_of, actions):
    """The rules of ``next_steps``' docstring, one invoice at a time, on plain Python records."""
    d = pd.Timestamp(as_of).normalize()
    grace = pd.Timedelta(days=policy.promise_grace_days)
    acts = []
    if actions is not None:
        for a in actions.to_dict("records"):
            a["action_date"], a["promise_date"] = pd.Timestamp(a["action_date"]), pd.Timestamp(a["promise_date"])
            if a["action_date"] < d:
                blank = a["invoice_id"] is None or pd.isna(a["invoice_id"]) or not str(a["invoice_id"]).strip()
                acts.append({**a, "invoice_id": None if blank else a["invoice_id"]})
    acts.sort(key=lambda a: a["action_date"])   # stable: ties keep the table's order
    profile_of = dict(zip(assignments["client_id"], assignments["profile"]))
    rows = []
    for r in invoices.to_dict("records"):
        if pd.notna(r.get("paid_date")) and pd.Timestamp(r["paid_date"]) < d:
            continue
        due = pd.Timestamp(r["due_date"])
        prof = policy.profile(profile_of[r["client_id"]])
        sc = policy.scenarios[prof.scenario]
        own = [a for a in acts if a["invoice_id"] == r["invoice_id"]]
        cl = [a for a in acts if a["invoice_id"] is None and a["client_id"] == r["client_id"]]
        mine = sorted(own + cl, key=lambda a: a["action_date"])   # ties: the invoice's own first

        def row(what, when=pd.NaT, step=None, why=""):
            rows.append({"invoice_id": r["invoice_id"], "client_id": r["client_id"], "profile": prof.name,
                         "next_action": what, "next_action_date": when, "channel": step.channel if step else None,
                         "template": step.template if step else None, "reason": why})

        def blocked(group):
            flags = [a["step"] for a in group if a["step"] in ("dunning_block", "dunning_unblock")]
            return bool(flags) and flags[-1] == "dunning_block"

        def disputed(group):
            opened = [a["action_date"] for a in group if "dispute" in (a["step"], a["outcome"])]
            closed = [a["action_date"] for a in group if a["step"] == "dispute_resolved" or a["outcome"] == "resolved"]
            return bool(opened) and (not closed or max(closed) < max(opened))

        block, flag = r.get("dunning_block"), r.get("disputed")
        if (isinstance(block, str) and block.strip()) or blocked(own) or blocked(cl):
            row(NO_ACTION_BLOCK, why="dunning block")
            continue
        if (flag is not None and pd.notna(flag) and bool(flag)) or disputed(own) or disputed(cl):
            row(RESOLVE_DISPUTE, d, why="open dispute")
            continue
        prom = [a for a in mine if pd.notna(a["promise_date"]) and "promise" in (a["step"], a["outcome"])]
        if prom and d < prom[-1]["promise_date"] + grace:
            p = prom[-1]["promise_date"]
            row(WAIT_PROMISE, p + grace, why=f"promise to pay on {p.date()} + {policy.promise_grace_days} days grace")
            continue
        plan = sorted({a["promise_date"] for a in mine if a["step"] == "payment_plan" and pd.notna(a["promise_date"])})
        if sc.plan_steps and plan:
            for t in plan:
                if d > t + pd.Timedelta(days=sc.plan_steps[-1].offset_days):
                    continue
                start = t + pd.Timedelta(days=sc.plan_steps[0].offset_days)
                window = {a["step"] for a in mine if a["action_date"] >= start}
                todo = [s for s in sc.plan_steps if s.step not in window]
                if todo:
                    s = todo[0]
                    row(s.step, max(t + pd.Timedelta(days=s.offset_days), d), s,
                        f"payment plan instalment {t.date()} J{s.offset_days:+d}")
                    break
            else:
                row(REVIEW_PLAN, d, why="no payment-plan instalment left to follow up")
            continue
        done = {a["step"] for a in own}
        todo = [s for s in sc.steps if s.step not in done and not (s.offset_days <= 0 and d > due)]
        if todo:
            s = todo[0]
            row(s.step, max(due + pd.Timedelta(days=s.offset_days), d), s,
                f"{prof.scenario} J{s.offset_days:+d} from due date {due.date()}")
        else:
            row(NO_ACTION_DONE, why=f"every step of {prof.scenario!r} is done")
    cols = ["invoice_id", "client_id", "profile", "next_action", "next_action_date", "channel", "template", "reason"]
    out = pd.DataFrame(rows, columns=cols)
    out["next_action_date"] = pd.to_datetime(out["next_action_date"])
    return out


def _random_ledger(seed: int, policy):
    """Invoices of 6 clients and actions drawn so that every rule of next_steps is reached."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2025-04-01")
    clients = [f"c{i}" for i in range(6)]
    names = [p.name for p in policy.profiles]
    assign = pd.DataFrame({"client_id": clients, "profile": rng.choice(names, len(clients))})
    assign.loc[0, "profile"] = "difficulty"   # a scenario with plan steps
    n = 60
    inv = pd.DataFrame({
        "invoice_id": [f"i{k:03d}" for k in range(n)],
        "client_id": rng.choice(clients, n),
        "due_date": day + pd.to_timedelta(rng.integers(-80, 20, n), unit="D"),
        "amount": 100.0, "p_late": 0.5, "p_very_late": 0.2,
        "paid_date": np.where(rng.random(n) < 0.1, day - pd.to_timedelta(rng.integers(-3, 5, n), unit="D"), pd.NaT),
        "dunning_block": rng.choice([None, None, None, None, None, None, "", " ", "R"], n),
        "disputed": rng.choice([None, False, False, False, False, True], n),
    })
    steps = sorted({s.step for sc in policy.scenarios.values() for s in sc.steps + sc.plan_steps})
    kinds = steps + ["dunning_block", "dunning_unblock", "dispute", "dispute_resolved", "promise", "payment_plan",
                     "call", "call"]
    m = 200
    step = rng.choice(kinds, m)
    client_level = rng.random(m) < 0.2
    target = rng.integers(0, n, m)
    promise = (day + pd.to_timedelta(rng.integers(-30, 60, m), unit="D")).to_numpy()
    has_promise = np.isin(step, ["promise", "payment_plan"]) | (rng.random(m) < 0.1)
    outcome = np.where(step == "call", rng.choice([None, "promise", "dispute", "resolved", "no_answer"], m), None)
    act = pd.DataFrame({
        "action_id": [f"a{k}" for k in range(m)],
        "invoice_id": np.where(client_level, rng.choice([None, "", "  "], m), inv["invoice_id"].to_numpy()[target]),
        "client_id": np.where(client_level, rng.choice(clients, m), inv["client_id"].to_numpy()[target]),
        "action_date": day - pd.to_timedelta(rng.integers(-5, 90, m), unit="D"),   # some on or after as_of
        "step": step, "outcome": outcome,
        "promise_date": np.where(has_promise | (outcome == "promise"), promise, np.datetime64("NaT")),
        "channel": None,
    })
    return inv, assign, act


@pytest.mark.parametrize("seed", range(12))
def test_next_steps_equals_the_per_invoice_reference(policy, seed):
    inv, assign, act = _random_ledger(seed, policy)
    for as_of in ("2025-04-01", "2025-04-20"):
        got = next_steps(inv, assign, policy, as_of, act)
        want = _reference_next_steps(inv, assign, policy, as_of, act)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    pd.testing.assert_frame_equal(next_steps(inv, assign, policy, "2025-04-01"),
                                  _reference_next_steps(inv, assign, policy, "2025-04-01", None), check_exact=True)


def test_random_ledgers_reach_every_rule(policy):
    """The random ledgers above exercise each rule (else the comparison proves little)."""
    seen = set()
    for seed in range(12):
        inv, assign, act = _random_ledger(seed, policy)
        for as_of in ("2025-04-01", "2025-04-20"):
            out = next_steps(inv, assign, policy, as_of, act)
            seen |= set(out["next_action"])
            seen |= {"plan:" + a for a in out.loc[out["reason"].str.startswith("payment plan"), "next_action"]}
            prevented = set(act.loc[act["step"] == "preventive", "invoice_id"])
            seen |= {"skipped pre-due" for r in out.itertuples() if r.next_action == "reminder_1"
                     and r.profile != "trusted" and r.invoice_id not in prevented
                     and pd.Timestamp(r.reason[-10:]) < pd.Timestamp(as_of)}
    assert {NO_ACTION_BLOCK, RESOLVE_DISPUTE, WAIT_PROMISE, REVIEW_PLAN, NO_ACTION_DONE} <= seen
    assert any(s.startswith("plan:") for s in seen) and "skipped pre-due" in seen

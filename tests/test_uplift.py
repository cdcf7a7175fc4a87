"""Control groups and the uplift estimate (models/uplift.py), and the policy's control settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.policy import Policy, PolicyError, load_policy
from models.uplift import (
    HELD_BACK,
    build_decisions,
    decision_outcomes,
    diff_proportions_interval,
    estimate_uplift,
    held_back,
    measured_uplifts,
    wilson_interval,
)


@pytest.mark.parametrize("x1,n1,x0,n0,low,high", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10, 95 %.
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
])
def test_newcombe_interval_matches_the_published_table(x1, n1, x0, n0, low, high):
    d, lo, hi = diff_proportions_interval(x1, n1, x0, n0, confidence=0.95)
    assert d == pytest.approx(x1 / n1 - x0 / n0)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_by_hand():
    # p = 0.3, n = 100, z = 1.6449 (90 %): centre (0.3 + z²/200) / (1 + z²/100), half-width by the formula.
    z = 1.6448536269514722
    centre = (0.3 + z * z / 200) / (1 + z * z / 100)
    half = z / (1 + z * z / 100) * np.sqrt(0.3 * 0.7 / 100 + z * z / 40000)
    assert wilson_interval(30, 100, 0.9) == pytest.approx((centre - half, centre + half))
    assert np.isnan(diff_proportions_interval(1, 0, 1, 2)[0])


def test_control_assignment_is_deterministic_salted_and_near_its_share():
    clients = [f"C{i}" for i in range(20000)]
    steps = ["reminder_1"] * len(clients)
    a = held_back(clients, steps, salt="salt-one-xx", share=0.1, testable=["reminder_1"])
    assert (a == held_back(clients, steps, salt="salt-one-xx", share=0.1, testable=["reminder_1"])).all()
    b = held_back(clients, steps, salt="salt-two-xx", share=0.1, testable=["reminder_1"])
    assert (a != b).any()
    assert 0.09 < a.mean() < 0.11
    # Not testable, never held back; share 0, nobody.
    assert not held_back(clients, ["formal_notice"] * len(clients), salt="salt-one-xx", share=0.1,
                         testable=["reminder_1"]).any()
    assert not held_back(clients, steps, salt="salt-one-xx", share=0.0, testable=["reminder_1"]).any()


def _actions(rows):
    return pd.DataFrame(rows, columns=["action_id", "invoice_id", "client_id", "action_date", "step", "outcome"])


def test_decisions_group_invoices_and_windows_are_censored():
    actions = _actions([
        ("a1", "I1", "C1", "2025-01-10", "reminder_1", None),
        ("a2", "I2", "C1", "2025-01-10", "reminder_1", None),
        ("a3", "I3", "C2", "2025-01-10", "reminder_1", HELD_BACK),
        ("a4", "I4", "C3", "2025-01-25", "reminder_1", None),
        ("a5", "I5", "C3", "2025-01-25", "call", None),
        ("a6", "I6", "C4", "2025-01-10", "reminder_1", None),
    ])
    invoices = pd.DataFrame({"invoice_id": ["I1", "I2", "I3", "I4", "I6"],
                             "paid_date": pd.to_datetime(["2025-01-12", "2025-01-20", "2025-01-14", "2025-01-30",
                                                          None])})
    dec = build_decisions(actions, invoices, ["reminder_1"], "2025-02-01")
    assert len(dec) == 4
    c1 = dec[dec["client_id"] == "C1"].iloc[0]
    assert c1["n_invoices"] == 2 and c1["treated"] and c1["paid_date"] == pd.Timestamp("2025-01-20")
    assert not dec.loc[dec["client_id"] == "C2", "treated"].iloc[0]
    out = decision_outcomes(dec, "2025-02-01", windows=(7, 14)).set_index("client_id")
    # C1 is paid when its last invoice is (01-20): not within 7 days, within 14.
    assert out.loc["C1", "paid_7"] == 0.0 and out.loc["C1", "paid_14"] == 1.0
    assert out.loc["C2", "paid_7"] == 1.0
    assert out.loc["C4", "paid_14"] == 0.0  # still open
    # C3's 7-day window ends 02-01, not before as_of: unknown; its 14-day one too.
    assert np.isnan(out.loc["C3", "paid_7"]) and np.isnan(out.loc["C3", "paid_14"])
    # A payment dated on as_of or later is not known yet.
    early = decision_outcomes(build_decisions(actions, invoices, ["reminder_1"], "2025-01-19"), "2025-01-19",
                              windows=(7,)).set_index("client_id")
    assert early.loc["C1", "paid_7"] == 0.0


def _simulate(seed: int, n: int, effect: float, base: float = 0.4):
    rng = np.random.default_rng(seed)
    clients = [f"S{seed}-{i}" for i in range(n)]
    control = held_back(clients, ["reminder_1"] * n, salt=f"seed-salt-{seed}", share=0.3, testable=["reminder_1"])
    p = np.where(control, base, base + effect)
    paid = rng.random(n) < p
    day = pd.Timestamp("2025-03-01")
    actions = _actions([(f"a{i}", f"I{i}", c, day, "reminder_1", HELD_BACK if ctl else None)
                        for i, (c, ctl) in enumerate(zip(clients, control))])
    invoices = pd.DataFrame({"invoice_id": [f"I{i}" for i in range(n)],
                             "paid_date": np.where(paid, day + pd.Timedelta(days=5), day + pd.Timedelta(days=60))})
    invoices["paid_date"] = pd.to_datetime(invoices["paid_date"])
    return actions, invoices


def test_estimate_covers_a_known_effect_and_finds_none_where_there_is_none():
    actions, invoices = _simulate(1, 3000, effect=0.12)
    est = estimate_uplift(actions, invoices, "2025-06-01", ["reminder_1"], windows=(7, 14))
    w = est["reminder_1"]["window_days"]["14"]
    assert w["low"] <= 0.12 <= w["high"] and w["low"] > 0
    assert est["reminder_1"]["n_control"] + est["reminder_1"]["n_treated"] == 3000
    actions, invoices = _simulate(2, 3000, effect=0.0)
    w = estimate_uplift(actions, invoices, "2025-06-01", ["reminder_1"], windows=(14,))["reminder_1"]["window_days"]["14"]
    assert w["low"] <= 0.0 <= w["high"]
    # Nothing known yet at the step's date + 14 days: the window is censored, no decision counts.
    early = estimate_uplift(actions, invoices, "2025-03-10", ["reminder_1"], windows=(14,))
    assert early["reminder_1"]["window_days"]["14"]["n_treated"] == 0


def test_measured_uplift_replaces_the_default_when_significant_or_numerous():
    est = {"reminder_1": {"window_days": {"14": {"uplift": 0.1, "low": 0.04, "high": 0.16,
                                                  "n_treated": 200, "n_control": 40}}},
           "preventive": {"window_days": {"14": {"uplift": 0.02, "low": -0.05, "high": 0.09,
                                                  "n_treated": 900, "n_control": 100}}},
           "reminder_2": {"window_days": {"14": {"uplift": -0.03, "low": -0.06, "high": 0.01,
                                                  "n_treated": 4000, "n_control": 400}}}}
    got = measured_uplifts(est, window=14, min_decisions=300)
    assert set(got) == {"reminder_1", "reminder_2"}
    assert "excludes zero" in got["reminder_1"]["why"]
    assert got["reminder_2"]["uplift"] == 0.0


def test_policy_control_settings_are_validated():
    base = load_policy().model_dump()
    assert base["control"]["share"] == 0.10
    for bad, message in [({"share": 0.9}, "less than or equal"),
                         ({"testable_steps": ["formal_notice"]}, "never held back"),
                         ({"testable_steps": ["payment_plan_offer"]}, "payment-plan step"),
                         ({"testable_steps": ["remindr_1"]}, "no scenario has"),
                         ({"salt": "short"}, "at least 8"),
                         ({"sharee": 0.1}, "Extra inputs")]:
        data = {**base, "control": {**base["control"], **bad}}
        data["control"] = {k: v for k, v in data["control"].items() if not (k == "share" and "sharee" in bad)}
        with pytest.raises((ValueError, PolicyError), match=message):
            Policy.model_validate(data)


def test_design_effect_is_one_for_independent_units_and_grows_with_clusters():
    from models.uplift import design_effect
    y = pd.Series([1, 0, 1, 0, 1, 0, 0, 1.0])
    assert design_effect(y, pd.Series(range(8))) == pytest.approx(8 / 7)
    # Two clients whose decisions all agree: the proportion rests on two units, not eight.
    assert design_effect(pd.Series([1, 1, 1, 1, 0, 0, 0, 0.0]), pd.Series([0, 0, 0, 0, 1, 1, 1, 1])) == pytest.approx(8.0)


def test_effective_df_counts_the_clients_the_variance_rests_on_and_widens_the_interval():
    from models.uplift import _window_estimate, cluster_variance_terms, effective_df
    assert effective_df(np.full(40, 0.01)) == pytest.approx(40)
    assert effective_df(np.array([1.0, 1e-4, 1e-4])) == pytest.approx(1.0, abs=1e-3)
    assert effective_df(np.zeros(3)) == float("inf")
    # Two arms of 400 decisions: 40 clients of 10 in one case, one client of 361 beside 39 of 1 in the other.
    # The same rates and design effects would give the same Rao-Scott interval; the lopsided arms rest on
    # fewer clients, so theirs is wider.
    def frame(sizes, seed):
        r = np.random.default_rng(seed)
        rows = []
        for arm in (True, False):
            for c, k in enumerate(sizes):
                p = r.uniform(0.2, 0.8)
                rows += [(f"{arm}-{c}", arm, float(r.random() < p)) for _ in range(k)]
        return pd.DataFrame(rows, columns=["client_id", "treated", "paid_14"])

    even, lopsided = frame([10] * 40, 1), frame([361] + [1] * 39, 2)
    for f in (even, lopsided):
        t, c = f[f["treated"]], f[~f["treated"]]
        f.attrs["df"] = effective_df(cluster_variance_terms(t["paid_14"], t["client_id"]),
                                     cluster_variance_terms(c["paid_14"], c["client_id"]))
    assert even.attrs["df"] > 20 and lopsided.attrs["df"] < 3
    est = _window_estimate(lopsided, 14, 0.9)
    from models.uplift import design_effect, diff_proportions_interval
    t, c = lopsided[lopsided["treated"]], lopsided[~lopsided["treated"]]
    e1, e0 = design_effect(t["paid_14"], t["client_id"]), design_effect(c["paid_14"], c["client_id"])
    _, lo, hi = diff_proportions_interval(t["paid_14"].sum() / e1, len(t) / e1, c["paid_14"].sum() / e0, len(c) / e0, 0.9)
    assert est.high - est.low > 1.5 * (hi - lo)


# --- against the synthetic generator's known effects ------------------------------------------------

@pytest.fixture(scope="module")
def controlled():
    from ledger.synth import ControlSim, make_synthetic
    return make_synthetic(1200, years=2, seed=11,
                          control=ControlSim(share=0.3, salt="test-salt-11", inert=("reminder_2",)))


def test_synthetic_control_groups_are_the_run_s_hash_and_get_no_contact(controlled):
    truth = controlled.control_truth
    acts = controlled.ledger.actions
    expect = held_back(truth["client_id"], truth["step"], salt="test-salt-11", share=0.3,
                       testable=["preventive", "reminder_1", "reminder_2"])
    assert (truth["held_back"].to_numpy() == expect).all()
    assert 0.25 < truth["held_back"].mean() < 0.35
    held = acts[acts["outcome"] == HELD_BACK]
    assert set(held["step"]) <= {"preventive", "reminder_1", "reminder_2"}
    # A held-back decision draws no promise on its day.
    promised = acts[acts["step"] == "promise"].set_index(["invoice_id", "action_date"]).index
    assert not held.set_index(["invoice_id", "action_date"]).index.isin(promised).any()


def test_estimate_covers_the_generator_s_true_effects(controlled):
    from ledger.synth import true_uplift
    as_of = controlled.end_date + pd.Timedelta(days=1)
    truth = true_uplift(controlled.control_truth, as_of).set_index("step")
    assert (truth.loc["reminder_2", ["uplift_7", "uplift_14", "uplift_30"]] == 0).all()
    assert truth.loc["reminder_1", "uplift_14"] > 0.05
    est = estimate_uplift(controlled.ledger.actions, controlled.ledger.invoices[["invoice_id", "paid_date"]], as_of,
                          ["preventive", "reminder_1", "reminder_2"])
    # Every testable step's interval holds its true effect, in every window (the issue asks the 14-day one
    # at least); the inert reminder_2's holds zero; reminder_1's effect is found.
    for step in ("preventive", "reminder_1", "reminder_2"):
        for days in ("7", "14", "30"):
            w = est[step]["window_days"][days]
            assert w["low"] <= truth.loc[step, f"uplift_{days}"] <= w["high"], (step, days, w, truth.loc[step])
    assert est["reminder_1"]["window_days"]["14"]["low"] > 0
    for days in ("7", "14", "30"):
        assert est["reminder_2"]["window_days"][days]["low"] <= 0 <= est["reminder_2"]["window_days"][days]["high"]


def test_uplift_command_on_a_sample_with_control_groups(tmp_path):
    import json

    from typer.testing import CliRunner

    from encaisse.cli import app
    runner = CliRunner()
    data, home = tmp_path / "data", tmp_path / "ws"
    res = runner.invoke(app, ["sample", "--out", str(data), "--clients", "300", "--control-share", "0.2", "--json"])
    assert res.exit_code == 0, res.output
    assert (data / "truth" / "control_truth.csv").exists()
    for table in ("clients", "invoices", "payments", "actions"):
        res = runner.invoke(app, ["ingest", str(data / f"{table}.csv"), "--home", str(home), "--json"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["uplift", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["as_of"] == "2026-01-01"
    assert set(got["steps"]) == {"preventive", "reminder_1", "reminder_2"}
    r1 = got["steps"]["reminder_1"]
    assert r1["n_treated"] > 0 and r1["n_control"] > 0
    assert set(r1["window_days"]) == {"7", "14", "30"}
    assert {"uplift", "low", "high"} <= set(r1["window_days"]["14"])
    assert r1["window_days"]["14"]["low"] <= r1["window_days"]["14"]["uplift"] <= r1["window_days"]["14"]["high"]
    assert got["profile_basis"] == "no_stored_run" and r1["profiles"] == {}
    # The command's 14-day intervals hold the generator's hidden true effects (truth/, never ingested).
    from ledger.synth import true_uplift
    hidden = pd.read_csv(data / "truth" / "control_truth.csv",
                         parse_dates=["decision_date", "cleared_if_sent", "cleared_if_held"])
    truth = true_uplift(hidden, got["as_of"]).set_index("step")
    for step, e in got["steps"].items():
        w = e["window_days"]["14"]
        assert w["low"] <= truth.loc[step, "uplift_14"] <= w["high"], (step, w, truth.loc[step])
    # A stored run dated before the decisions gives each client its profile; one dated after them does not.
    from ledger.engine import open_store
    from ledger.scores_store import save_scores
    from encaisse.console import settings_for
    clients = pd.read_csv(data / "clients.csv")["client_id"].astype(str).tolist()
    engine = open_store(settings_for(home).store_url)
    inv = pd.DataFrame({"invoice_id": ["X1"], "client_id": [clients[0]], "amount": [1.0]})
    early = pd.DataFrame({"client_id": clients, "profile": ["watch" if i % 2 else "standard" for i in range(len(clients))]})
    save_scores(engine, inv, early, as_of="2023-01-01", model_version="test")
    save_scores(engine, inv, early.assign(profile="high_risk"), as_of="2025-12-31", model_version="test")
    res = runner.invoke(app, ["uplift", "--home", str(home), "--as-of", "2025-12-31", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["profile_basis"] == "run_at_first_decision"
    assert set(got["steps"]["reminder_1"]["profiles"]) == {"standard", "watch"}


def test_profile_is_the_stored_run_s_at_the_client_s_first_decision_of_the_step():
    from models.uplift import profiles_at_first_decision
    dec = pd.DataFrame({"client_id": ["A", "A", "A", "B", "B"],
                        "step": ["reminder_1", "reminder_1", "reminder_2", "reminder_1", "reminder_2"],
                        "decision_date": pd.to_datetime(["2025-01-10", "2025-03-10", "2025-03-20", "2024-12-01",
                                                         "2025-02-01"])})
    runs = pd.DataFrame({"run_id": ["r1", "r2", "r3"], "as_of": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-06-01"])})
    profiles = {"r1": {"A": "standard", "B": "watch"}, "r2": {"A": "high_risk", "B": "difficulty"},
                "r3": {"A": "trusted", "B": "trusted"}}
    loaded = []

    def load(run):
        loaded.append(run["run_id"])
        return pd.DataFrame({"client_id": list(profiles[run["run_id"]]), "profile": list(profiles[run["run_id"]].values())})

    got = profiles_at_first_decision(dec, runs, load).tolist()
    # A's reminder_1 decisions both take the profile at its first one (01-10, run r1), not r2's; A's
    # reminder_2 starts 03-20 (run r2). B's first reminder_1 precedes every run: unknown. A run dated
    # on the decision day counts (B's reminder_2 on 02-01 takes r2). The later run r3 is never read.
    assert got == ["standard", "standard", "high_risk", None, "difficulty"]
    assert sorted(loaded) == ["r1", "r2"]
    assert profiles_at_first_decision(dec, runs.iloc[:0], load).isna().all()


def test_control_salt_is_the_policy_s_or_made_once_in_the_workspace(tmp_path):
    from ledger.control_groups import SALT_FILE, control_salt
    assert control_salt("configured-salt", tmp_path) == "configured-salt"
    assert not (tmp_path / SALT_FILE).exists()
    first = control_salt(None, tmp_path)
    assert len(first) == 32 and control_salt(None, tmp_path) == first
    (tmp_path / SALT_FILE).unlink()
    assert control_salt(None, tmp_path) != first


def test_worklist_switches_from_the_default_to_the_measured_uplift_once_enough_decisions_exist(controlled):
    from models.scoring import measured_step_uplifts
    from models.worklist import UPLIFT_BY_STEP, rank_worklist
    control = load_policy().control  # min_decisions 300, 14-day window
    start = pd.to_datetime(controlled.ledger.actions["action_date"]).min()
    early = measured_step_uplifts(controlled.ledger, start + pd.Timedelta(days=20), control)
    late = measured_step_uplifts(controlled.ledger, controlled.end_date + pd.Timedelta(days=1), control)
    assert "reminder_1" not in early and "reminder_1" in late
    d = pd.Timestamp("2025-03-01")
    scores = pd.DataFrame({"invoice_id": ["A"], "client_id": ["C1"], "amount": [10_000.0],
                           "due_date": pd.to_datetime(["2025-02-27"]), "p_very_late": [0.5], "currency": ["EUR"],
                           "p_late": [1.0], "reasons": ["r"]})
    steps = pd.DataFrame({"invoice_id": ["A"], "next_action": ["reminder_1"], "next_action_date": [d],
                          "channel": ["email"]})
    assign = pd.DataFrame({"client_id": ["C1"], "profile": ["standard"], "scenario": ["standard"]})
    before = rank_worklist(scores, None, assign, steps, d, measured=early).iloc[0]
    after = rank_worklist(scores, None, assign, steps, d, measured=late).iloc[0]
    assert before["uplift"] == UPLIFT_BY_STEP["reminder_1"] and "planning default" in before["why"]
    assert after["uplift"] == pytest.approx(late["reminder_1"]["uplift"]) and "measured on control groups" in after["why"]
    assert after["expected_gain"] == pytest.approx(10_000 * 0.5 * late["reminder_1"]["uplift"])

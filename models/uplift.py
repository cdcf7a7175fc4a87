"""What each dunning step changes, measured on randomized control groups.

The dunning run holds back a share of the eligible (client, step) decisions of the steps the
policy marks as testable (:class:`models.policy.ControlGroups`). Which ones is decided by a hash of
the client, the step and a salt (:func:`held_back`), so that a rerun decides the same, anyone can
audit it, and nothing about the client (risk, amount) enters the draw. A held-back decision is
recorded as an action row with ``outcome = "held_back"``: the ladder sees the step as done, so it is
never sent later as a catch-up, and the estimate can find it.

A *decision* is one (client, step, day): the action rows of a client's invoices for that step on
that day. Its outcome for a window of ``w`` days is whether every invoice it covered was paid on or
before ``day + w``. The effect of sending is the difference of those proportions between sent and
held-back decisions (:func:`estimate_uplift`), with Newcombe's hybrid score interval
(:func:`diff_proportions_interval`), which keeps its coverage with small groups and proportions near
0 or 1, where the Wald interval does not. Since a client stays in its group for a step, its
decisions are clustered: the interval is computed on counts divided by each arm's Rao-Scott design
effect (:func:`design_effect`), shrunk further by Korn and Graubard's degrees-of-freedom factor
``(z / t_df)^2`` where ``df`` is the number of clients the variance effectively rests on
(:func:`effective_df`): a few large clients can carry most of it, and a normal quantile would then
give too narrow an interval (``bench/UPLIFT.md``). Censoring: a decision whose window has not ended at
``as_of`` does not count for that window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from ledger.control_groups import HELD_BACK, held_back

__all__ = ["HELD_BACK", "PROFILE_AT_FIRST_DECISION", "PROFILE_NONE", "WINDOWS", "build_decisions",
           "decision_outcomes", "diff_proportions_interval", "estimate_uplift", "evaluate_uplift", "held_back",
           "measured_uplifts", "profiles_at_first_decision", "wilson_interval"]

WINDOWS = (7, 14, 30)
"""Days after the step's date within which payment is counted."""


def wilson_interval(x: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``x / n``."""
    if n <= 0:
        return 0.0, 1.0
    z = norm.ppf(0.5 + confidence / 2)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def diff_proportions_interval(x1: float, n1: float, x0: float, n0: float, confidence: float = 0.9
                              ) -> tuple[float, float, float]:
    """``p1 - p0`` and its interval by Newcombe's hybrid score method (method 10 of Newcombe 1998).

    Returns ``(difference, low, high)``; NaNs when either group is empty.
    """
    if n1 <= 0 or n0 <= 0:
        return math.nan, math.nan, math.nan
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, confidence)
    l0, u0 = wilson_interval(x0, n0, confidence)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return d, low, high


def build_decisions(actions: pd.DataFrame, invoices: pd.DataFrame, steps: Iterable[str], as_of) -> pd.DataFrame:
    """One row per (client, step, day) of the given steps: ``client_id, step, decision_date, treated,
    n_invoices, paid_date`` (the day its last invoice was paid, NaT while one is open at ``as_of``),
    and ``profile`` when the actions carry one.

    A decision is a control when its rows' outcome is :data:`HELD_BACK`. ``invoices`` holds
    ``invoice_id, paid_date`` as known at ``as_of``: a payment dated on or after it is unknown.
    """
    steps = list(steps)
    cols = {"client_id": object, "step": object, "decision_date": "datetime64[s]", "treated": bool,
            "n_invoices": "int64", "paid_date": "datetime64[s]"}
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})
    if actions is None or actions.empty:
        return empty
    act = actions[actions["step"].isin(steps)]
    act = act[act["invoice_id"].notna() & (act["invoice_id"].astype(str).str.strip() != "")]
    if act.empty:
        return empty
    d = pd.Timestamp(as_of).normalize()
    paid = pd.to_datetime(invoices.drop_duplicates("invoice_id", keep="last").set_index("invoice_id")["paid_date"])
    paid = paid.where(paid < d)
    # A never-paid (or not yet paid) invoice keeps its decision unpaid: it counts as paid at the far end.
    far = pd.Timestamp("2262-01-01")
    frame = pd.DataFrame({
        "client_id": act["client_id"].to_numpy(),
        "step": act["step"].to_numpy(),
        "decision_date": pd.to_datetime(act["action_date"]).dt.normalize().to_numpy(),
        "control": (act["outcome"].astype(object).eq(HELD_BACK) if "outcome" in act.columns
                    else pd.Series(False, index=act.index)).to_numpy(dtype=bool),
        "paid": act["invoice_id"].map(paid).fillna(far).to_numpy(),
    })
    if "profile" in act.columns:
        frame["profile"] = act["profile"].to_numpy()
    agg = {"n_invoices": ("paid", "size"), "paid_date": ("paid", "max"), "control": ("control", "max")}
    if "profile" in frame.columns:
        agg["profile"] = ("profile", "first")
    out = frame.groupby(["client_id", "step", "decision_date"], sort=True).agg(**agg).reset_index()
    out["paid_date"] = out["paid_date"].where(out["paid_date"] < far)
    out["treated"] = ~out.pop("control").astype(bool)
    return out


def decision_outcomes(decisions: pd.DataFrame, as_of, windows: Iterable[int] = WINDOWS) -> pd.DataFrame:
    """Each decision's outcome per window: ``paid_<w>`` is 1.0/0.0, NaN while the window is open at ``as_of``."""
    d = pd.Timestamp(as_of).normalize()
    out = decisions.copy()
    for w in windows:
        end = out["decision_date"] + pd.Timedelta(days=int(w))
        value = (out["paid_date"].notna() & (out["paid_date"] <= end)).astype(float)
        out[f"paid_{w}"] = value.where(end < d)
    return out


@dataclass(frozen=True)
class WindowEstimate:
    uplift: float
    low: float
    high: float
    n_treated: int
    n_control: int
    rate_treated: float
    rate_control: float

    def as_dict(self) -> dict:
        def num(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)
        return {"uplift": num(self.uplift), "low": num(self.low), "high": num(self.high),
                "n_treated": self.n_treated, "n_control": self.n_control,
                "rate_treated": num(self.rate_treated), "rate_control": num(self.rate_control)}


def design_effect(outcomes: pd.Series, clusters: pd.Series) -> float:
    """Rao-Scott design effect of a proportion whose units come in clusters (at least 1).

    A client is held back for a step on every invoice it has, so its decisions are not independent:
    the variance of the proportion is estimated between clients (the ratio estimator's), and the
    design effect is its ratio to the binomial variance.
    """
    n = len(outcomes)
    if n < 2:
        return 1.0
    p = float(outcomes.mean())
    if p <= 0.0 or p >= 1.0:
        return 1.0
    per = pd.DataFrame({"x": outcomes.to_numpy(dtype=float), "c": clusters.to_numpy()}).groupby("c")["x"].agg(["sum", "size"])
    m = len(per)
    if m < 2:
        return 1.0
    v_cluster = m / (m - 1) * float(((per["sum"] - p * per["size"]) ** 2).sum()) / n ** 2
    return max(1.0, v_cluster / (p * (1 - p) / n))


def cluster_variance_terms(outcomes: pd.Series, clusters: pd.Series) -> np.ndarray:
    """Each client's term in the between-client variance of a proportion: ``(x_c - p n_c)^2 / n^2``
    (their sum is the variance :func:`design_effect` compares with the binomial one)."""
    n = len(outcomes)
    if n == 0:
        return np.zeros(0)
    p = float(outcomes.mean())
    per = pd.DataFrame({"x": outcomes.to_numpy(dtype=float), "c": clusters.to_numpy()}).groupby("c")["x"].agg(["sum", "size"])
    return ((per["sum"].to_numpy() - p * per["size"].to_numpy()) ** 2) / n ** 2


def effective_df(*terms: np.ndarray) -> float:
    """Satterthwaite's degrees of freedom of a variance that is a sum of per-client terms:
    ``(sum a)^2 / sum a^2``, the number of clients it effectively rests on (inf when it is zero).

    With equal terms it is the number of clients; when one client carries the variance it is near 1.
    """
    a = np.concatenate([np.asarray(t, dtype=float) for t in terms]) if terms else np.zeros(0)
    total, sq = float(a.sum()), float((a ** 2).sum())
    return math.inf if sq <= 0.0 else total * total / sq


def _window_estimate(frame: pd.DataFrame, w: int, confidence: float) -> WindowEstimate:
    col = frame[f"paid_{w}"]
    known = frame[col.notna()]
    t = known[known["treated"].astype(bool)]
    c = known[~known["treated"].astype(bool)]
    x1, n1 = float(t[f"paid_{w}"].sum()), len(t)
    x0, n0 = float(c[f"paid_{w}"].sum()), len(c)
    # Newcombe's interval on effective counts (Rao-Scott): the counts divided by each arm's design effect.
    e1 = design_effect(t[f"paid_{w}"], t["client_id"])
    e0 = design_effect(c[f"paid_{w}"], c["client_id"])
    # A few large clients can carry most of the variance (a key account with dozens of decisions), so
    # it rests on fewer clients than there are: the effective counts shrink by (z / t_df)^2, with df
    # Satterthwaite's over both arms' clients (Korn & Graubard's degrees-of-freedom adjustment), which
    # widens the interval as a t quantile would instead of the normal one.
    df = effective_df(cluster_variance_terms(t[f"paid_{w}"], t["client_id"]),
                      cluster_variance_terms(c[f"paid_{w}"], c["client_id"]))
    q = 0.5 + confidence / 2
    shrink = 1.0 if math.isinf(df) else (norm.ppf(q) / student_t.ppf(q, df)) ** 2
    _, lo, hi = diff_proportions_interval(x1 / e1 * shrink, n1 / e1 * shrink, x0 / e0 * shrink, n0 / e0 * shrink,
                                          confidence)
    r1 = x1 / n1 if n1 else math.nan
    r0 = x0 / n0 if n0 else math.nan
    return WindowEstimate(r1 - r0, lo, hi, n1, n0, r1, r0)


PROFILE_AT_FIRST_DECISION = "run_at_first_decision"
"""``profile_basis``: each decision's profile is the one the latest stored score run at or before the
client's first decision of that step gave it (:func:`profiles_at_first_decision`)."""
PROFILE_NONE = "no_stored_run"
"""``profile_basis`` when no stored score run precedes any decision: every decision's profile is unknown."""


def profiles_at_first_decision(decisions: pd.DataFrame, runs: pd.DataFrame | None,
                               load_profiles: Callable[[dict], pd.DataFrame]) -> pd.Series:
    """Each decision's client profile as of the client's first decision of that step.

    Point in time: the profile comes from the latest run scored at or before that day (a run dated D
    is what the dunning run of day D planned from), never from a later run. It is taken at the
    *first* decision of the step, not at each decision, because a client stays in its group for a
    step: a held-back client pays later, so a profile computed after its first decision would
    already carry the step's own effect, and splitting by it would compare unlike clients.

    Args:
        decisions: :func:`build_decisions`' rows (``client_id, step, decision_date``).
        runs: stored runs (``ledger.scores_store.list_score_runs``: ``as_of`` and the run's row).
        load_profiles: run row -> its ``client_id, profile`` rows; called once per run used.

    Returns:
        The profile per decision (aligned on ``decisions``' index), None where no run precedes.
    """
    out = pd.Series(None, index=decisions.index, dtype=object)
    if decisions.empty or runs is None or runs.empty:
        return out
    first = decisions.groupby(["client_id", "step"])["decision_date"].transform("min")
    order = [c for c in ("as_of", "created_at") if c in runs.columns]
    r = runs.sort_values(order, kind="stable").drop_duplicates("as_of", keep="last").reset_index(drop=True)
    days = pd.to_datetime(r["as_of"]).to_numpy(dtype="datetime64[ns]")
    pos = days.searchsorted(pd.to_datetime(first).to_numpy(dtype="datetime64[ns]"), side="right") - 1
    for p in sorted(set(pos[pos >= 0].tolist())):
        prof = load_profiles(r.iloc[p].to_dict())
        if prof is None or "profile" not in prof.columns:
            continue
        on = pos == p
        out[on] = decisions.loc[on, "client_id"].map(dict(zip(prof["client_id"], prof["profile"]))).to_numpy()
    return out.where(out.notna(), None)


def estimate_uplift(
    actions: pd.DataFrame,
    invoices: pd.DataFrame,
    as_of,
    steps: Iterable[str],
    *,
    windows: Iterable[int] = WINDOWS,
    confidence: float = 0.9,
    profiles: Mapping[str, str] | Callable[[pd.DataFrame], pd.Series] | None = None,
    min_per_arm: int = 30,
) -> dict:
    """Per step (and per profile with at least ``min_per_arm`` decisions in each arm): the effect of
    sending on the probability of being paid within each window, with its ``confidence`` interval.

    Args:
        actions: the ledger's actions known at ``as_of`` (sent steps and held-back controls).
        invoices: ``invoice_id, paid_date`` as known at ``as_of``.
        steps: the testable steps.
        profiles: used when the actions carry no ``profile`` column: client -> profile (a fixed
            profile per client), or a function of the decisions returning each one's profile
            (e.g. :func:`profiles_at_first_decision`).

    Returns:
        ``{step: {"n_treated", "n_control", "window_days": {"7": {...}, ...}, "profiles": {...}}}``
        where each window holds :meth:`WindowEstimate.as_dict`.
    """
    windows = [int(w) for w in windows]
    d = pd.Timestamp(as_of).normalize()
    known = actions[pd.to_datetime(actions["action_date"]) < d] if actions is not None and len(actions) else actions
    decisions = build_decisions(known, invoices, steps, d)
    if "profile" not in decisions.columns:
        if callable(profiles):
            decisions["profile"] = profiles(decisions) if len(decisions) else pd.Series(dtype=object)
        else:
            decisions["profile"] = decisions["client_id"].map(dict(profiles or {}))
    outcomes = decision_outcomes(decisions, d, windows)
    result: dict = {}
    for step in steps:
        rows = outcomes[outcomes["step"] == step] if len(outcomes) else outcomes
        entry = {"n_treated": int(rows["treated"].sum()) if len(rows) else 0,
                 "n_control": int((~rows["treated"].astype(bool)).sum()) if len(rows) else 0,
                 "window_days": {str(w): _window_estimate(rows, w, confidence).as_dict() for w in windows}
                 if len(rows) else {},
                 "profiles": {}}
        # No profile at all (no stored run): no split, rather than one "unknown" group repeating the step.
        if len(rows) and rows["profile"].notna().any():
            for prof, part in rows.groupby(rows["profile"].astype(object).fillna("unknown").astype(str)):
                n1, n0 = int(part["treated"].sum()), int((~part["treated"].astype(bool)).sum())
                if min(n1, n0) < min_per_arm:
                    continue
                entry["profiles"][prof] = {
                    "n_treated": n1, "n_control": n0,
                    "window_days": {str(w): _window_estimate(part, w, confidence).as_dict() for w in windows}}
        result[step] = entry
    return result


def measured_uplifts(estimates: Mapping[str, dict], *, window: int, min_decisions: int) -> dict[str, dict]:
    """The steps whose measured uplift should replace the planning default in the worklist.

    A step qualifies once its ``window``-day interval excludes zero, or once each arm holds at least
    ``min_decisions`` decisions with a known outcome for that window. Returns
    ``{step: {"uplift", "low", "high", "n_treated", "n_control", "why"}}``; the uplift is floored at 0
    (a step measured to do harm is worth nothing to the ranking).
    """
    out: dict[str, dict] = {}
    for step, entry in estimates.items():
        est = entry.get("window_days", {}).get(str(window))
        if not est or est.get("uplift") is None:
            continue
        excl = est["low"] is not None and not (est["low"] <= 0.0 <= est["high"])
        enough = min(est["n_treated"], est["n_control"]) >= min_decisions
        if not (excl or enough):
            continue
        why = ("its interval excludes zero" if excl else
               f"{min(est['n_treated'], est['n_control'])} decisions per arm >= {min_decisions}")
        out[step] = {"uplift": max(0.0, float(est["uplift"])), "low": est["low"], "high": est["high"],
                     "n_treated": est["n_treated"], "n_control": est["n_control"], "why": why}
    return out


def evaluate_uplift(ledger, as_of, control, *, engine=None, confidence: float = 0.9) -> dict:
    """The uplift answer the CLI, the API and the page share: per testable step, the estimate per
    window (and per profile where each arm is large enough), and the steps whose measured uplift
    the worklist uses.

    Args:
        ledger: the whole ledger (only actions and payments dated before ``as_of`` are read); a
            ledger cut to some clients would measure those clients only.
        control: the policy's :class:`models.policy.ControlGroups`.
        engine: the store whose score runs give each decision's profile
            (:func:`profiles_at_first_decision`; ``profile_basis`` says which); None: no profiles.
    """
    d = pd.Timestamp(as_of).normalize()
    steps = list(control.testable_steps)
    profiles, basis = None, PROFILE_NONE
    if engine is not None:
        from ledger.scores_store import list_score_runs, load_run_clients

        runs = list_score_runs(engine)
        runs = runs[runs["as_of"] < d]
        if len(runs):
            basis = PROFILE_AT_FIRST_DECISION

            def profiles(decisions: pd.DataFrame) -> pd.Series:
                return profiles_at_first_decision(decisions, runs, lambda run: load_run_clients(engine, run))
    # estimate_uplift reads only actions dated before d and payments dated before d: no known_at copy.
    estimates = estimate_uplift(ledger.actions, ledger.invoices[["invoice_id", "paid_date"]], d, steps,
                                confidence=confidence, profiles=profiles)
    return {"as_of": str(d.date()), "confidence": confidence, "share_held_back": control.share,
            "worklist_window_days": control.window_days, "profile_basis": basis, "steps": estimates,
            "measured": measured_uplifts(estimates, window=control.window_days, min_decisions=control.min_decisions)}

"""Why the uplift intervals miss when they miss: bias, spread against the standard error, and other
interval methods, over many synthetic seeds with known effects.

For each seed (a 2-year ledger, 10 % held back, reminder_2 inert, as ``bench_uplift.py``) and each
step and window it compares the estimate with the generator's true effect and records:

* ``sd / se``: the spread over seeds of estimate minus truth, over the mean cluster-robust standard
  error (CR2 by client; Rao-Scott's is the same to three decimals): near 1 when the error is right;
* coverage of 90 % intervals: Newcombe on Rao-Scott effective counts without the df factor (the
  estimator before), cluster-robust normal, a cluster bootstrap (resampling clients within each arm,
  percentile), and the cluster-robust one with a t quantile on Satterthwaite's effective number of
  clients (the factor ``models.uplift`` now applies);
* a regression-adjusted estimate (Lin 2013: outcome on sent, centred covariates and their
  interactions, cluster-robust SE) with pre-treatment covariates (the decision's amount, invoice
  count, days overdue, terms, and the client's payment history before its first decision of the
  step) and with the client's payment history *at* the decision, which earlier decisions of the same
  step have already changed (a post-treatment covariate, like a risk score computed then).

    .venv/bin/python bench/uplift_variance.py --seeds 100 --clients 3000
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from bench_uplift import STEPS, parse_study_args  # bench/, beside this script
from ledger.synth import ControlSim, make_synthetic
from models.uplift import build_decisions, decision_outcomes, design_effect, diff_proportions_interval

Z = norm.ppf(0.95)


def _sums(y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    per = pd.DataFrame({"y": y, "g": g}).groupby("g")["y"].agg(["sum", "size"])
    return per["sum"].to_numpy(float), per["size"].to_numpy(float)


def _cr2_terms(y: np.ndarray, g: np.ndarray) -> np.ndarray:
    s, n = _sums(y, g)
    total = n.sum()
    return ((s - s.sum() / total * n) ** 2) / (1 - n / total) / total ** 2


def _bootstrap(y1, g1, y0, g0, rng, b=400) -> tuple[float, float]:
    s1, n1 = _sums(y1, g1)
    s0, n0 = _sums(y0, g0)
    w1 = rng.multinomial(len(s1), np.full(len(s1), 1 / len(s1)), size=b)
    w0 = rng.multinomial(len(s0), np.full(len(s0), 1 / len(s0)), size=b)
    d = (w1 @ s1) / (w1 @ n1) - (w0 @ s0) / (w0 @ n0)
    return tuple(np.quantile(d, [0.05, 0.95]))


def _lin(frame: pd.DataFrame, y: str, covs: list[str]) -> tuple[float, float]:
    """Lin (2013) regression adjustment; the sent coefficient and its cluster-robust (CR1) SE."""
    yy = frame[y].to_numpy(float)
    t = frame["treated"].to_numpy(float)
    x = frame[covs].to_numpy(float)
    x = x - x.mean(axis=0)
    d = np.column_stack([np.ones(len(yy)), t, x, x * t[:, None]])
    inv = np.linalg.pinv(d.T @ d)
    beta = inv @ d.T @ yy
    e = yy - d @ beta
    g = pd.factorize(frame["client_id"].to_numpy())[0]
    u = np.zeros((g.max() + 1, d.shape[1]))
    np.add.at(u, g, d * e[:, None])
    m, n, k = len(u), len(yy), d.shape[1]
    v = inv @ (u.T @ u * m / (m - 1) * (n - 1) / (n - k)) @ inv
    return float(beta[1]), math.sqrt(v[1, 1])


def _history(client_ids: pd.Series, days: pd.Series, invoices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The client's mean days late over its invoices paid before each day (NaN: none yet), and how many."""
    p = invoices[(invoices["doc_type"] == "invoice") & invoices["paid_date"].notna()][["client_id", "paid_date", "due_date"]]
    p = p.assign(late=(p["paid_date"] - p["due_date"]).dt.days.clip(-30, 120)).sort_values("paid_date")
    p["n"] = p.groupby("client_id").cumcount() + 1
    p["cum"] = p.groupby("client_id")["late"].cumsum()
    p["paid_date"] = p["paid_date"].astype("datetime64[ns]")
    d = pd.DataFrame({"client_id": client_ids.to_numpy(), "day": (days.astype("datetime64[ns]")
                                                                   - pd.Timedelta(days=1)).to_numpy(),
                      "i": np.arange(len(days))}).sort_values("day")
    m = pd.merge_asof(d, p[["client_id", "paid_date", "n", "cum"]], left_on="day", right_on="paid_date",
                      by="client_id").sort_values("i")
    n = m["n"].fillna(0).to_numpy()
    return np.where(n > 0, m["cum"].to_numpy() / np.maximum(n, 1), np.nan), n


def _covariates(out: pd.DataFrame, actions: pd.DataFrame, invoices: pd.DataFrame) -> pd.DataFrame:
    inv = invoices.drop_duplicates("invoice_id").set_index("invoice_id")
    a = actions[actions["step"].isin(STEPS) & actions["invoice_id"].notna()].copy()
    a["decision_date"] = pd.to_datetime(a["action_date"]).dt.normalize().astype(out["decision_date"].dtype)
    a["amount"] = a["invoice_id"].map(inv["amount"]).astype(float)
    a["due"] = pd.to_datetime(a["invoice_id"].map(inv["due_date"]))
    a["terms"] = (a["due"] - pd.to_datetime(a["invoice_id"].map(inv["issue_date"]))).dt.days
    per = a.groupby(["client_id", "step", "decision_date"]).agg(amount=("amount", "sum"), due=("due", "min"),
                                                               terms=("terms", "mean")).reset_index()
    out = out.merge(per, on=["client_id", "step", "decision_date"], how="left", validate="1:1")
    out["log_amount"] = np.log1p(out["amount"].clip(lower=0))
    out["log_n"] = np.log(out["n_invoices"])
    out["overdue"] = (out["decision_date"] - out["due"]).dt.days
    first = out.groupby(["client_id", "step"])["decision_date"].transform("min")
    for name, days in (("pre", first), ("now", out["decision_date"])):
        late, n = _history(out["client_id"], days, invoices)
        out[f"{name}_late"] = np.where(np.isnan(late), np.nanmean(late), late)
        out[f"{name}_none"] = (n == 0).astype(float)
    return out


def one_seed(seed: int, clients: int, share: float, rng: np.random.Generator) -> list[dict]:
    s = make_synthetic(clients, years=2, seed=seed,
                       control=ControlSim(share=share, salt=f"bench-{seed}", inert=("reminder_2",)))
    as_of = s.end_date + pd.Timedelta(days=1)
    inv = s.ledger.invoices
    out = decision_outcomes(build_decisions(s.ledger.actions, inv[["invoice_id", "paid_date"]], STEPS, as_of), as_of)
    out = _covariates(out, s.ledger.actions, inv)
    never = pd.Timestamp("2262-01-01")
    ct = s.control_truth.fillna({"cleared_if_sent": never, "cleared_if_held": never})
    truth = ct.groupby(["client_id", "step", "decision_date"]).agg(sent=("cleared_if_sent", "max"),
                                                                   held=("cleared_if_held", "max")).reset_index()
    out = out.merge(truth, on=["client_id", "step", "decision_date"], how="left", validate="1:1")
    recs = []
    for step in STEPS:
        for w in (7, 14, 30):
            f = out[(out["step"] == step) & out[f"paid_{w}"].notna()]
            end = f["decision_date"] + pd.Timedelta(days=w)
            true = float(((f["sent"] <= end).astype(float) - (f["held"] <= end).astype(float)).mean())
            t, c = f[f["treated"]], f[~f["treated"]]
            y1, y0 = t[f"paid_{w}"], c[f"paid_{w}"]
            est = float(y1.mean() - y0.mean())
            e1, e0 = design_effect(y1, t["client_id"]), design_effect(y0, c["client_id"])
            _, lo, hi = diff_proportions_interval(y1.sum() / e1, len(y1) / e1, y0.sum() / e0, len(y0) / e0, 0.9)
            a = np.concatenate([_cr2_terms(y1.to_numpy(float), t["client_id"].to_numpy()),
                                _cr2_terms(y0.to_numpy(float), c["client_id"].to_numpy())])
            se = math.sqrt(a.sum())
            df = a.sum() ** 2 / (a ** 2).sum()
            blo, bhi = _bootstrap(y1.to_numpy(float), t["client_id"].to_numpy(), y0.to_numpy(float),
                                  c["client_id"].to_numpy(), rng)
            lin, lin_se = _lin(f, f"paid_{w}", ["log_amount", "log_n", "overdue", "terms", "pre_late", "pre_none"])
            post, post_se = _lin(f, f"paid_{w}", ["now_late", "now_none", "log_n"])
            recs.append({"seed": seed, "step": step, "window": w, "truth": true, "est": est, "se": se, "df": df,
                         "max_share": a.max() / a.sum(), "rs": (lo, hi), "boot": (blo, bhi),
                         "lin": (lin, lin_se), "post": (post, post_se)})
    return recs


def main() -> None:
    args = parse_study_args(__doc__, seeds=100)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    df = pd.DataFrame([r for seed in range(args.seeds) for r in one_seed(seed, args.clients, args.share, rng)])

    def cover(lo, hi, truth):
        return float(((lo <= truth) & (truth <= hi)).mean())

    print(f"{args.seeds} seeds, {args.clients} clients, 2 years, share held back {args.share}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| step | window | bias | SD of estimate - truth | mean SE (CR2) | sd / se | effective clients (median) "
          "| largest client's share of the variance (mean) | coverage: Rao-Scott, normal | CR2, normal | cluster bootstrap "
          "| CR2, t on effective clients | Lin, pre-treatment: SD, mean SE, coverage | Lin, history at the decision: bias, coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (step, w), g in df.groupby(["step", "window"]):
        err = g["est"] - g["truth"]
        q = student_t.ppf(0.95, g["df"])
        lin = np.array(g["lin"].tolist())
        post = np.array(g["post"].tolist())
        rs, boot = np.array(g["rs"].tolist()), np.array(g["boot"].tolist())
        print(f"| {step} | {w} | {err.mean():+.3f} | {err.std():.3f} | {g['se'].mean():.3f} | "
              f"{err.std() / g['se'].mean():.2f} | {g['df'].median():.0f} | {g['max_share'].mean():.2f} | "
              f"{cover(rs[:, 0], rs[:, 1], g['truth']):.2f} | "
              f"{cover(g['est'] - Z * g['se'], g['est'] + Z * g['se'], g['truth']):.2f} | "
              f"{cover(boot[:, 0], boot[:, 1], g['truth']):.2f} | "
              f"{cover(g['est'] - q * g['se'], g['est'] + q * g['se'], g['truth']):.2f} | "
              f"{(lin[:, 0] - g['truth']).std():.3f}, {lin[:, 1].mean():.3f}, "
              f"{cover(lin[:, 0] - Z * lin[:, 1], lin[:, 0] + Z * lin[:, 1], g['truth']):.2f} | "
              f"{(post[:, 0] - g['truth']).mean():+.3f}, "
              f"{cover(post[:, 0] - Z * post[:, 1], post[:, 0] + Z * post[:, 1], g['truth']):.2f} |")


if __name__ == "__main__":
    main()

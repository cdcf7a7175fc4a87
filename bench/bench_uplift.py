"""Coverage of the uplift intervals against the synthetic generator's true effects, over many seeds.

Each seed: a 2-year synthetic ledger with control groups (the policy's default share, 10 %;
reminder_2 made inert, so its true effect is zero), the estimate of ``models.uplift`` at the day
after the export, and the true effect from the generator's paired replays
(``ledger.synth.true_uplift``). Prints a Markdown table: per step and window, the mean true
effect, the mean estimate, the mean interval width and the share of seeds whose interval holds the
truth (90 % intervals: about 0.9 expected), with the bias and the spread of estimate minus truth.

    .venv/bin/python bench/bench_uplift.py --seeds 100 --clients 3000
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from ledger.synth import ControlSim, make_synthetic, true_uplift
from models.uplift import estimate_uplift

STEPS = ("preventive", "reminder_1", "reminder_2")


def parse_study_args(doc: str, seeds: int) -> argparse.Namespace:
    """The synthetic ledgers a study runs over: ``--seeds`` of them, of ``--clients`` clients, with a
    control-group ``--share``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--clients", type=int, default=3000)
    ap.add_argument("--share", type=float, default=0.10)
    return ap.parse_args()


def main() -> None:
    args = parse_study_args(__doc__, seeds=20)
    rows = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        s = make_synthetic(args.clients, years=2, seed=seed,
                           control=ControlSim(share=args.share, salt=f"bench-{seed}", inert=("reminder_2",)))
        as_of = s.end_date + pd.Timedelta(days=1)
        truth = true_uplift(s.control_truth, as_of).set_index("step")
        est = estimate_uplift(s.ledger.actions, s.ledger.invoices[["invoice_id", "paid_date"]], as_of, STEPS)
        for step in STEPS:
            for w, e in est[step]["window_days"].items():
                t = truth.loc[step, f"uplift_{w}"]
                rows.append({"seed": seed, "step": step, "window": int(w), "truth": t, "estimate": e["uplift"],
                             "width": e["high"] - e["low"], "covered": e["low"] <= t <= e["high"],
                             "excludes_zero": not (e["low"] <= 0 <= e["high"]),
                             "n_control": e["n_control"], "n_treated": e["n_treated"]})
    df = pd.DataFrame(rows)
    df["error"] = df["estimate"] - df["truth"]
    g = df.groupby(["step", "window"]).agg(truth=("truth", "mean"), bias=("error", "mean"), sd=("error", "std"),
                                           width=("width", "mean"), coverage=("covered", "mean"),
                                           zero_excluded=("excludes_zero", "mean"),
                                           n_control=("n_control", "mean"), n_treated=("n_treated", "mean"))
    print(f"{args.seeds} seeds, {args.clients} clients, 2 years, share held back {args.share}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| step | window (days) | mean true effect | bias (mean estimate - truth) | SD of estimate - truth | "
          "mean 90% interval width | coverage | share of seeds with zero excluded | decisions sent / held back (mean) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (step, w), r in g.iterrows():
        print(f"| {step} | {w} | {r.truth:+.3f} | {r.bias:+.3f} | {r.sd:.3f} | {r.width:.3f} | {r.coverage:.2f} | "
              f"{r.zero_excluded:.2f} | {r.n_treated:,.0f} / {r.n_control:,.0f} |")
    w14 = df[df["window"] == 14]
    print(f"\nAll steps and windows: coverage {df['covered'].mean():.3f} over {len(df)} intervals; 14-day window: "
          f"{w14['covered'].mean():.3f}. Seeds where every step's 14-day interval holds its truth: "
          f"{w14.groupby('seed')['covered'].all().mean():.2f}.")


if __name__ == "__main__":
    main()

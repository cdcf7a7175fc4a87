"""Dunning messages: time to build every client's message context and render it, on a synthetic ledger.

Usage (from the repository root)::

    .venv/bin/python bench/bench_messages.py --clients 2100     # about 100k invoices
    .venv/bin/python bench/bench_messages.py --clients 21000    # about 1M invoices

Steps, timed separately: the day's legal amounts and open items (``features.legal``,
``features.kpis``: once per run), one context per client with open invoices
(``build_message_context``), the email of a reminder for each (``render_message``), and the formal
notice with its PDF letter for up to ``--letters`` clients. Prints a Markdown row for
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.kpis import build_open_items  # noqa: E402
from features.legal import build_legal_amounts  # noqa: E402
from ledger.synth import make_ledger  # noqa: E402
from models.messages import TEMPLATES_DIR, build_message_context, render_message  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2100)
    parser.add_argument("--letters", type=int, default=200, help="Formal notices (with their PDF) to render.")
    parser.add_argument("--as-of", default="2026-01-12")
    args = parser.parse_args()
    no_overrides = TEMPLATES_DIR / "none"

    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    ledger = make_ledger(args.clients, years=2, seed=0, end_date="2025-12-31")
    t_gen = time.perf_counter() - t
    n_invoices = len(ledger.invoices)

    t = time.perf_counter()
    legal = build_legal_amounts(ledger, args.as_of)
    items = build_open_items(ledger, args.as_of)
    items = items[items["doc_type"] == "invoice"]
    t_day = time.perf_counter() - t

    clients = {r["client_id"]: r for r in ledger.clients.to_dict("records")}
    t = time.perf_counter()
    groups = [(c, g) for c, g in items.groupby("client_id", sort=True)]
    contexts = [build_message_context(clients[c], g, args.as_of, step="reminder_1", legal=legal) for c, g in groups]
    t_ctx = time.perf_counter() - t

    t = time.perf_counter()
    for ctx in contexts:
        render_message("reminder_courteous", ctx, overrides_dir=no_overrides)
    t_email = time.perf_counter() - t

    late = [c for c in contexts if c["overdue"]][: args.letters]
    t = time.perf_counter()
    for ctx in late:
        m = render_message("mise_en_demeure", ctx, overrides_dir=no_overrides)
        assert m.attachments[0].content.startswith(b"%PDF")
    t_pdf = time.perf_counter() - t
    load1 = os.getloadavg()[0]

    n = len(contexts)
    print(f"{n_invoices:,} invoices ({args.clients:,} clients) generated in {t_gen:.1f} s; as of {args.as_of}: "
          f"{len(items):,} open invoices of {n:,} clients")
    print("| invoices | clients with open invoices | legal + open items (s) | contexts (s) | per context (ms) "
          "| reminder emails (s) | per email (ms) | formal notices + PDF | per notice (ms) | load |")
    print(f"| {n_invoices:,} | {n:,} | {t_day:.2f} | {t_ctx:.2f} | {1000 * t_ctx / n:.2f} | {t_email:.2f} | "
          f"{1000 * t_email / n:.2f} | {len(late)} in {t_pdf:.1f} s | {1000 * t_pdf / max(len(late), 1):.0f} | "
          f"{load0:.1f}->{load1:.1f} |")


if __name__ == "__main__":
    main()

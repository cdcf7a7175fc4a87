"""The ledger: canonical contracts, the store, mapped ingest and the synthetic generator.

This is the lowest layer. ``features``, ``models``, ``pipelines`` and ``serving`` may import it;
it imports none of them.
"""

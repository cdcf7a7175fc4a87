"""Encaisse: risk scoring, payment-date distributions and cash-collection forecasts for receivables."""

__version__ = "0.1.0"

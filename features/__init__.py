"""Pure, point-in-time feature functions: (ledger tables, as_of) -> frame.

Nothing here reads the clock, reads anything dated on or after ``as_of``, or imports MLflow,
FastAPI, ``serving`` or ``pipelines``. Training and serving call the same functions.
"""

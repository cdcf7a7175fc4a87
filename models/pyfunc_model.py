"""The MLflow pyfunc wrapper of a fitted ``EncaisseModel`` (logged as "model from code").

MLflow copies this file into the logged model and runs it when the model is loaded, so loading
needs nothing but the ``ledger``, ``features`` and ``models``
packages, which are logged with the model as ``code_paths``. Keep it self-contained.
"""

from __future__ import annotations

import joblib
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class EncaissePyfunc(PythonModel):
    """Stateless scoring: canonical invoice rows in, the score frame out.

    ``predict(context, model_input, params={"as_of": "YYYY-MM-DD"})``: ``model_input`` holds the
    invoice rows (canonical columns, ``ledger.contracts.INVOICES``) of the clients to score: their
    history and their open invoices. Everything dated on or after ``as_of`` is ignored. Returns
    ``models.scorer.SCORE_COLUMNS`` for the invoices open at the start of ``as_of``.
    """

    model = None

    def load_context(self, context) -> None:
        self.model = joblib.load(context.artifacts["estimator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from ledger.contracts import Ledger

        as_of = (params or {}).get("as_of")
        if not as_of:
            raise ValueError('predict needs params={"as_of": "YYYY-MM-DD"}: the day to score at the start of.')
        try:
            day = pd.Timestamp(as_of).normalize()
        except (ValueError, TypeError):
            raise ValueError(f"params['as_of'] must be a date like 2025-04-01; got {as_of!r}.") from None
        frame = pd.DataFrame(model_input)
        return self.model.score(Ledger.from_frames(frame), day)


mlflow.models.set_model(EncaissePyfunc())

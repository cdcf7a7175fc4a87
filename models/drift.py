"""Drift: how far today's open invoices have moved from what the model was trained on.

The model keeps a compact reference of its training rows (``EncaisseModel.reference_``, built by
:func:`build_reference` at fit time and registered with it): per feature and per score, the
training deciles as bin edges and the share of rows in each bin (missing values in a bin of
their own). Client features (``c_*``) count once per client (and
snapshot), invoice features and scores once per invoice. Today's open invoices are binned on the same edges and compared with the population
stability index:

    PSI = sum over bins of (today_share - train_share) x ln(today_share / train_share)

with shares floored at ``PSI_FLOOR`` so that an empty bin does not make it infinite. Rules of
thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a major shift.

Libraries: NannyML 0.13.1 resolves with pandas 3 only by downgrading LightGBM (4.5.0 instead of the
pinned one); Evidently 0.7.23 resolves but adds some thirty packages (a second web framework,
NLTK, statsmodels, usage telemetry) for what is one formula here. The formula is therefore
written out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.descriptions import DESCRIBED_FEATURES, describe

PSI_FLOOR = 1e-4
"""Smallest share a bin counts with (an empty bin would make the PSI infinite)."""

N_BINS = 10
"""Bins of a reference (deciles of the training rows; fewer for features with few values)."""

TODAY_PRIOR = 0.5
"""Pseudo-count per bin of today's rows (Jeffreys): a few hundred clients leave some bins empty by chance."""

MODERATE_PSI = 0.10
MAJOR_PSI = 0.25

CALENDAR_FEATURES = frozenset({"i_due_august", "i_due_december", "c_tenure_days", "c_n_paid"})
"""Features that move with the calendar by design (due month, a client's tenure and count of paid
invoices only grow): their shift is not drift."""

DRIFT_FEATURES = tuple(sorted(DESCRIBED_FEATURES - CALENDAR_FEATURES))
"""Features watched for drift: those with plain words (``features.descriptions``), calendar left out."""

REFERENCE_DAYS = 91
"""A model's reference is its training snapshots of the last this-many days before D."""

SCORES = ("p_late", "p_very_late")

REFERENCE_ROWS = 50_000
"""Training rows a reference is built from at most (a stable sample beyond)."""

DRIFT_COLUMNS = ["kind", "name", "psi", "status", "train_mean", "today_mean", "words"]


def psi(reference_shares, current_shares, floor: float = PSI_FLOOR) -> float:
    """Population stability index between two vectors of bin shares (each summing to 1)."""
    r = np.maximum(np.asarray(reference_shares, dtype=float), floor)
    c = np.maximum(np.asarray(current_shares, dtype=float), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def bin_shares(values, edges, prior: float = 0.0) -> np.ndarray:
    """Shares of ``values`` in the bins cut by ``edges`` (``len(edges) + 1`` bins), then missing.

    ``prior``: pseudo-count added to every bin (0.5 for today's rows: a bin a small sample happens
    to leave empty then counts as half a row, not as the PSI floor).
    """
    x = np.asarray(values, dtype=float)
    miss = ~np.isfinite(x)
    idx = np.searchsorted(np.asarray(edges, dtype=float), x[~miss], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, float(miss.sum())) + prior
    return counts / counts.sum() if counts.sum() else counts


def _summary(values, n_bins: int = N_BINS) -> dict:
    x = np.asarray(values, dtype=float)
    ok = x[np.isfinite(x)]
    edges = np.unique(np.quantile(ok, np.arange(1, n_bins) / n_bins)) if len(ok) else np.zeros(0)
    return {"edges": edges.tolist(), "shares": bin_shares(x, edges).tolist(),
            "mean": float(ok.mean()) if len(ok) else None, "n": int(len(x))}


def reference_rows(n: int, seed: int = 0, limit: int = REFERENCE_ROWS) -> np.ndarray:
    """Positions of the rows a reference is built from: all of them, or a stable sample of ``limit``."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The values of ``name`` the PSI compares: per invoice, or per client (and snapshot) for ``c_*``.

    A client feature is one value per client: counted per invoice, a client with many open
    invoices would weigh as many clients.
    """
    if name.startswith("c_") and "client_id" in frame.columns:
        keys = ["as_of", "client_id"] if "as_of" in frame.columns else ["client_id"]
        frame = frame.drop_duplicates(keys)
    return pd.to_numeric(frame[name], errors="coerce").astype(float).to_numpy()


def build_reference(features: pd.DataFrame, scores: dict[str, np.ndarray]) -> dict:
    """The compact reference of a model's latest training rows (``REFERENCE_DAYS``).

    Args:
        features: the training rows' feature frame (``build_training_set`` columns).
        scores: score name -> the model's scores of those rows (``SCORES``).

    Returns:
        ``{"n_rows", "features": {name: {"edges", "shares", "mean", "n"}}, "scores": {...}}``:
        plain lists and numbers (kept in the pickled model, JSON-able).
    """
    feats = {}
    for name in DRIFT_FEATURES:
        if name in features.columns and pd.api.types.is_numeric_dtype(features[name]):
            feats[name] = _summary(_values(features, name))
    return {"n_rows": int(len(features)), "features": feats,
            "scores": {k: _summary(v) for k, v in scores.items()}}


def _status(value: float) -> str:
    return "major" if value >= MAJOR_PSI else "moderate" if value >= MODERATE_PSI else "stable"


def _words(name: str, before, after, lang: str) -> str:
    a = describe(name, before, lang) if before is not None else None
    b = describe(name, after, lang) if after is not None else None
    if a and b:
        return f"{a} → {b}"
    return name


_SCORE_NAMES = {"p_late": ("mean P(late)", "P(retard) moyenne"),
                "p_very_late": ("mean P(very late)", "P(gros retard) moyenne")}


def _score_words(name: str, before, after, lang: str) -> str:
    label = _SCORE_NAMES.get(name, (name, name))[1 if lang == "fr" else 0]
    if before is None or after is None:
        return label
    return f"{label} {100 * before:.0f}% → {100 * after:.0f}%"


def evaluate_drift(reference: dict | None, features: pd.DataFrame, scores: pd.DataFrame | None = None,
                   lang: str = "en") -> pd.DataFrame:
    """PSI of each watched feature and score, today's open invoices against the training reference.

    Args:
        reference: ``EncaisseModel.reference_`` (None: a model fitted before references were kept;
            the frame is then empty).
        features: today's feature frame (``EncaisseModel.features(ledger, as_of)``).
        scores: today's scores (``p_late``, ``p_very_late``), same rows.
        lang: language of ``words``.

    Returns:
        ``DRIFT_COLUMNS``, largest PSI first: ``kind`` (feature or score), ``status`` (stable,
        moderate, major), the mean of the training rows and of today's rows, and ``words``: the
        feature's plain-word description at the training mean and at today's mean.
    """
    rows = []
    if reference:
        for kind, frame, refs in (("feature", features, reference.get("features", {})),
                                  ("score", scores, reference.get("scores", {}))):
            if frame is None:
                continue
            for name, ref in refs.items():
                if name not in frame.columns:
                    continue
                x = _values(frame, name) if kind == "feature" else pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
                if not len(x):
                    continue
                value = psi(ref["shares"], bin_shares(x, ref["edges"], prior=TODAY_PRIOR))
                ok = x[np.isfinite(x)]
                today = float(ok.mean()) if len(ok) else None
                words = (_words(name, ref["mean"], today, lang) if kind == "feature"
                         else _score_words(name, ref["mean"], today, lang))
                rows.append({"kind": kind, "name": name, "psi": value, "status": _status(value),
                             "train_mean": ref["mean"], "today_mean": today, "words": words})
    out = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    return out.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


__all__ = ["DRIFT_COLUMNS", "DRIFT_FEATURES", "MAJOR_PSI", "MODERATE_PSI", "bin_shares", "build_reference",
           "evaluate_drift", "psi", "reference_rows"]

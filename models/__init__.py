"""Estimators and decision logic (scikit-learn contract). Code only: artifacts live in MLflow."""

"""MLflow tracking and the model registry, configured from ``ledger.workspace.Settings`` alone.

* Tracking: ``settings.tracking_uri`` (a SQLite file in the workspace by default, or a remote
  server via ``ENCAISSE_MLFLOW_TRACKING_URI``); the registry uses the same URI.
* Experiments get an absolute ``artifact_location`` under ``settings.artifact_dir`` when tracking
  is local; a remote server keeps its own artifact store.
* A fitted ``EncaisseModel`` is logged as an ``mlflow.pyfunc`` model (``models/pyfunc_model.py``
  as model-from-code) carrying the estimator (joblib) and the ``ledger``, ``features`` and
  ``models`` packages as ``code_paths``, with an explicit signature and pip requirements.
* Versions are registered under ``settings.model_name``; the serving version carries the alias
  ``champion`` (stages are deprecated).

``load_champion(settings)`` is what batch scoring and the API call.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from ledger.contracts import INVOICES
from ledger.workspace import Settings
from models.scorer import EncaisseModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
"""The alias of the version that serves."""

ROOT = Path(__file__).resolve().parents[1]
CODE_PATHS = [str(ROOT / name) for name in ("ledger", "features", "models")]
"""Packages shipped with the model, so the served code is the code that was trained."""

PYFUNC_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"
REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "pyarrow",
                "pydantic", "PyYAML", "holidays")

_SCHEMA_TYPES = {"str": "string", "date": "datetime", "amount": "double", "bool": "boolean", "int": "long"}
_REQUIRED_INPUTS = {"invoice_id", "client_id", "issue_date", "due_date", "amount"}


@contextmanager
def _quiet_mlflow():
    """MLflow nags about type hints and input examples; the signature here is explicit on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*input example.*", category=UserWarning)
        yield


class NoChampionError(LookupError):
    """No model version carries the ``champion`` alias yet."""


@dataclass
class ChampionModel:
    """A registered model version, loaded.

    Attributes:
        model: the fitted ``EncaisseModel`` (unwrapped from the pyfunc).
        version: registry version, e.g. ``"3"``.
        run_id: the MLflow run that trained it.
        as_of: the training day (``YYYY-MM-DD``): it knew nothing dated on or after it.
        metrics: the run's logged metrics (``val_*`` = validation on the latest period).
    """

    model: EncaisseModel
    version: str
    run_id: str
    as_of: str
    metrics: dict[str, float] = field(default_factory=dict)


# -- setup -------------------------------------------------------------------------------------


def _is_local(uri: str) -> bool:
    return uri.split(":", 1)[0] in ("sqlite", "file") or "://" not in uri


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow (tracking and registry) at the workspace's URI; return a client on it."""
    uri = settings.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created if needed (absolute artifact location when local)."""
    client = configure_mlflow(settings)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if _is_local(settings.tracking_uri):
        folder = settings.artifact_dir / "mlflow" / name
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    return client.create_experiment(name, artifact_location=location)


# -- logging -----------------------------------------------------------------------------------


def build_signature(model: EncaisseModel) -> ModelSignature:
    """Input schema (canonical invoice columns, extras optional) and the ``as_of`` parameter."""
    cols = [ColSpec(_SCHEMA_TYPES[c.kind], c.name, required=c.name in _REQUIRED_INPUTS) for c in INVOICES.columns]
    cols += [ColSpec("string", name, required=False) for name in model.extra_attributes
             if name not in INVOICES.names]
    return ModelSignature(inputs=Schema(cols), params=ParamSchema([ParamSpec("as_of", "string", "")]))


def pip_requirements() -> list[str]:
    """Exact pins of what the pyfunc needs, from the running environment (no inference: fast)."""
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def log_model(model: EncaisseModel, registered_model_name: str | None = None, name: str = "model"):
    """Log ``model`` as a pyfunc in the active run (and register it when a name is given).

    Returns:
        MLflow's ``ModelInfo`` (``registered_model_version`` set when registered).
    """
    with tempfile.TemporaryDirectory() as tmp, _quiet_mlflow():
        path = Path(tmp) / "estimator.joblib"
        joblib.dump(model, path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            artifacts={"estimator": str(path)},
            code_paths=CODE_PATHS,
            signature=build_signature(model),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )


# -- aliases -----------------------------------------------------------------------------------


def get_champion_version(settings: Settings) -> str | None:
    """The version carrying the ``champion`` alias, or None."""
    client = configure_mlflow(settings)
    try:
        return str(client.get_model_version_by_alias(settings.model_name, CHAMPION).version)
    except MlflowException:
        return None


def set_champion(settings: Settings, version: str) -> None:
    """Move the ``champion`` alias to ``version``."""
    configure_mlflow(settings).set_registered_model_alias(settings.model_name, CHAMPION, str(version))


# -- loading -----------------------------------------------------------------------------------


def load_model_version(settings: Settings, version: str | int) -> ChampionModel:
    """Load registered version ``version`` of ``settings.model_name``.

    Raises:
        LookupError: no such version.
    """
    client = configure_mlflow(settings)
    try:
        mv = client.get_model_version(settings.model_name, str(version))
    except MlflowException:
        raise LookupError(f"Model {settings.model_name!r} has no version {version} in {settings.tracking_uri}.") from None
    with _quiet_mlflow():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{mv.version}")
    run = client.get_run(mv.run_id)
    as_of = mv.tags.get("as_of") or run.data.params.get("as_of", "")
    return ChampionModel(model=pyfunc.unwrap_python_model().model, version=str(mv.version), run_id=mv.run_id,
                         as_of=as_of, metrics=dict(run.data.metrics))


def load_champion(settings: Settings) -> ChampionModel:
    """Load the version with the ``champion`` alias (the one batch scoring and the API serve).

    Raises:
        NoChampionError: nothing is registered as champion yet (run ``encaisse train`` first).
    """
    version = get_champion_version(settings)
    if version is None:
        raise NoChampionError(
            f"No version of model {settings.model_name!r} has the alias {CHAMPION!r} in {settings.tracking_uri}; "
            f"train one with `encaisse train --as-of YYYY-MM-DD`."
        )
    return load_model_version(settings, version)


def load_pyfunc(settings: Settings, version: str | int | None = None) -> Any:
    """The registered model as MLflow loads it for any caller (the champion when ``version`` is None)."""
    configure_mlflow(settings)
    ref = f"@{CHAMPION}" if version is None else f"/{version}"
    with _quiet_mlflow():
        return mlflow.pyfunc.load_model(f"models:/{settings.model_name}{ref}")


# -- monitoring ----------------------------------------------------------------------------------


def load_validation(settings: Settings, versions) -> tuple[dict[str, dict], dict[str, dict]]:
    """Validation figures and monitoring thresholds each model version was trained with.

    Returns:
        ``(validation, thresholds)``: version -> ``{metric: value}`` from the training run's
        ``val_*`` metrics, and version -> ``{name: value}`` from its ``monitoring.*`` params (empty
        for a version trained before they were logged). Unknown versions are left out.
    """
    client = configure_mlflow(settings)
    validation, thresholds = {}, {}
    for version in dict.fromkeys(str(v) for v in versions):
        try:
            mv = client.get_model_version(settings.model_name, version)
            run = client.get_run(mv.run_id)
        except MlflowException:
            continue
        validation[version] = {k[4:]: v for k, v in run.data.metrics.items() if k.startswith("val_")}
        thresholds[version] = {k.split(".", 1)[1]: v for k, v in run.data.params.items() if k.startswith("monitoring.")}
    return validation, thresholds

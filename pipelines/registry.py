"""Moved to ``models.registry`` (serving may not import pipelines); kept while callers move over."""

from models.registry import (  # noqa: F401
    CHAMPION,
    ChampionModel,
    NoChampionError,
    configure_mlflow,
    ensure_experiment,
    get_champion_version,
    load_champion,
    load_model_version,
    load_pyfunc,
    log_model,
    set_champion,
)

"""`encaisse train`: fit, validate on the latest period, log to MLflow, register, maybe promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import emit_json, fail, out, parse_day, progress, settings_for
from encaisse.options import ConfigOption, HomeOption, JsonOption


def load_config_or_fail(path: Path | None):
    """The training configuration, or a clean CLI error naming the bad key."""
    from pipelines.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("train")
    def train(
        as_of: Annotated[str, typer.Option("--as-of", help="Training day D (YYYY-MM-DD): nothing dated on or "
                                           "after it is read.")],
        config: ConfigOption = None,
        force: Annotated[bool, typer.Option("--force", help="Move the champion alias even if the new "
                                            "model does not beat the champion.")] = False,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Train a model as of D, validate it on the latest period, register it, promote it if better."""
        from pipelines.train import STEPS, LedgerError, run_training

        day = parse_day(as_of, "--as-of")
        cfg = load_config_or_fail(config)
        settings = settings_for(home)
        with progress(disable=json_) as bar:
            task = bar.add_task("training", total=len(STEPS))

            def on_step(name: str) -> None:
                bar.update(task, completed=STEPS.index(name), description=name.replace("_", " "))

            try:
                result = run_training(settings, day, cfg, force=force, on_step=on_step)
            except (LedgerError, ValueError) as exc:
                raise fail(str(exc)) from None
        if json_:
            emit_json(result.to_json())
            return
        m = result.metrics
        out.print(f"Trained as of {result.as_of} in {result.seconds:.1f} s: run {result.run_id}, "
                  f"{settings.model_name} v{result.version}")
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        out.print(f"  validation: auc_p_late {fmt(m.get('auc_p_late'))}, brier {fmt(m.get('brier_p_late'))}, "
                  f"mae_days {fmt(m.get('mae_days'))}, within_7d {fmt(m.get('within_7d'))}, "
                  f"coverage {fmt(m.get('interval_coverage'))}, width {fmt(m.get('interval_width_days'))} d")
        out.print(f"  {'promoted to champion' if result.promoted else 'not promoted'}: {result.reason}")

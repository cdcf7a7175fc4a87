"""`encaisse tune`: Optuna search of the LightGBM parameters on time-ordered validation folds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.commands.train import load_config_or_fail
from encaisse.console import emit_json, fail, load_ledger_or_fail, out, parse_day, settings_for
from encaisse.options import ConfigOption, HomeOption, JsonOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("tune")
    def tune(
        trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to run (added to the stored study).")],
        as_of: Annotated[str | None, typer.Option("--as-of", help="Last fold's training day (YYYY-MM-DD); "
                                                  "default: the day after the last date in the ledger.")] = None,
        timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Stop starting trials after "
                                                      "this many seconds.")] = None,
        config: ConfigOption = None,
        out_path: Annotated[Path | None, typer.Option("--out", help="Where to write the tuned config YAML "
                                                      "(default: <home>/tuned/<study>.yaml).")] = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Search hyperparameters; write the best as a config YAML usable by `encaisse train --config`."""
        from pipelines.tune import run_tuning

        day = parse_day(as_of, "--as-of") if as_of else None
        cfg = load_config_or_fail(config)
        settings = settings_for(home)
        ledger = load_ledger_or_fail(settings)
        try:
            result = run_tuning(settings, cfg, trials, ledger, as_of=day, timeout=timeout, out=out_path)
        except (ValueError, RuntimeError) as exc:
            raise fail(str(exc)) from None
        if json_:
            emit_json(result.to_json())
            return
        out.print(f"Study {result.study_name}: {result.n_trials} trials ({result.n_complete} complete, "
                  f"{result.n_pruned} pruned) in {result.seconds:.1f} s")
        out.print(f"  best mean {result.best_metric}: {result.best_value:.4f}")
        out.print(f"  tuned config: {result.config_path}  (use: encaisse train --config {result.config_path})")

"""The command-line options several commands share, defined once so that their flags and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="ENCAISSE_HOME", file_okay=False, help="Workspace folder (default ./.encaisse)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON line, last.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="Training configuration YAML "
                                                   "(default: the packaged pipelines/default.yaml).")]
PolicyOption = Annotated[Path | None, typer.Option("--policy", help="Dunning policy YAML (default: the shipped "
                                                   "one).")]
ReportOption = Annotated[Path | None, typer.Option("--report", file_okay=False, help="Write report.md, with its plots or data "
                                                   "files, into this folder.")]

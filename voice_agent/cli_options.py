"""What every ``voice-agent`` sub-command shares: the ``--config`` and ``--json`` options and
settings loading."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voice_agent.settings import ConfigFileError, Settings, load_settings

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (or VOICE_AGENT_CONFIG)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON")]
OutJsonOpt = Annotated[Path | None, typer.Option(help="Also write the JSON report here")]


def settings_or_exit(config: Path | None, **overrides) -> Settings:
    """Parse the settings once; bad settings end the command with a clear message (exit 2)."""
    try:
        return load_settings(config, **overrides)
    except (ConfigFileError, ValueError) as e:
        typer.echo(f"error: bad settings: {e}", err=True)
        raise typer.Exit(2) from e

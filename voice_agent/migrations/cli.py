"""``voice-agent db``: the call records database's schema (upgrade, current, new revision).

The server upgrades the schema by itself when it opens the database; these commands are for
operators who want to do it ahead of a release, and for developers adding a migration
(see :mod:`voice_agent.migrations`). Also runnable as ``python -m voice_agent.migrations.cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from alembic import command
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, make_url

from voice_agent import migrations
from voice_agent.cli_options import ConfigOpt, settings_or_exit

db_app = typer.Typer(
    help="The call records database: schema migrations (Alembic).", no_args_is_help=True
)


def _database_url(config: Path | None) -> str:
    url = settings_or_exit(config).resolved_database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    config: ConfigOpt = None,
) -> None:
    """Bring the database's schema to a revision (default: the newest)."""
    url = _database_url(config)
    engine = create_engine(url)
    try:
        migrations.upgrade(engine, revision)
    except migrations.SchemaError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    typer.echo(f"{_shown(url)}: at revision {migrations.current(engine)}")
    engine.dispose()


@db_app.command()
def current(config: ConfigOpt = None) -> None:
    """Print the database's revision and the newest one this version knows."""
    url = _database_url(config)
    engine = create_engine(url)
    at, head = migrations.current(engine), migrations.head()
    state = "up to date" if at == head else f"behind head {head}" if at else "not created yet"
    typer.echo(f"{_shown(url)}: at revision {at or '-'} ({state})")
    engine.dispose()


@db_app.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does")],
    autogenerate: Annotated[
        bool, typer.Option(help="Compare the models with the database (at head) and write ops")
    ] = True,
    config: ConfigOpt = None,
) -> None:
    """Write a new migration script into voice_agent/migrations/versions/."""
    url = _database_url(config)
    rev_id = f"{int(migrations.head()) + 1:04d}"
    try:
        script = command.revision(
            migrations.alembic_config(url=url),
            message=message,
            autogenerate=autogenerate,
            rev_id=rev_id,
        )
    except CommandError as e:
        typer.echo(f"error: {e} (run `voice-agent db upgrade` first)", err=True)
        raise typer.Exit(1) from e
    path = script[0].path if isinstance(script, list) else script.path  # type: ignore[union-attr]
    typer.echo(f"wrote {path}: read it before committing")


if __name__ == "__main__":
    db_app()

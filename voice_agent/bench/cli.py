"""``voice-agent bench``: measure the agent the way callers experience it.

Exit codes: 0 the run finished (failed calls are counted in the report, not fatal), 1 no caller
turn could be measured at all, 2 bad settings, arguments, audio or missing models, 3 the server
at ``--url`` cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voice_agent.bench.latency import EDGE, STAGES, BenchConfig, BenchError, run_bench
from voice_agent.cli_options import ConfigOpt
from voice_agent.cli_options import settings_or_exit as _settings

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: turn latency as callers hear it")

_out = Console()
_err = Console(stderr=True)


@bench_app.callback()
def _bench() -> None:
    """Benchmarks: turn latency as callers hear it."""


def parse_levels(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (each level is run in turn)."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"expected numbers like 1,2,4, got {text!r}") from e
    if not levels or any(level < 1 for level in levels):
        raise typer.BadParameter(f"expected numbers >= 1 like 1,2,4, got {text!r}")
    return levels


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_report(report: dict[str, Any], console: Console = _out) -> None:
    """The levels side by side: p50 / p95 / n per edge measure and server stage."""
    machine = report["machine"]
    gpus = ", ".join(f"{g['name']} ({g['memory']})" for g in machine["gpus"]) or "none"
    configured = report["settings"]["models"]
    served = report["settings"]["server"].get("models") or {
        "stt": configured["stt_model"],
        "llm": configured["llm_model"],
        "tts": configured["tts_voice"],
    }
    console.print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"GPU: {gpus}",
        markup=False,
        highlight=False,
    )
    console.print(
        "models: "
        + ", ".join(f"{k}={v}" for k, v in served.items())
        + f"; transport: {report['settings']['transport']} ({report['settings']['url']})",
        markup=False,
        highlight=False,
    )
    levels = report["levels"]
    table = Table(title="turn latency, seconds after the caller stopped speaking")
    table.add_column("stage")
    for level in levels:
        c = level["concurrency"]
        table.add_column(f"C={c} p50", justify="right")
        table.add_column("p95", justify="right")
        table.add_column("n", justify="right")
    rows = [(label, "edge", key) for key, label in EDGE]
    rows += [(label, "stages", key) for key, _, label in STAGES]
    for label, group, key in rows:
        cells = []
        for level in levels:
            stat = level[group].get(key) or {"p50": None, "p95": None, "n": 0}
            cells += [_fmt(stat["p50"]), _fmt(stat["p95"]), str(stat["n"])]
        if group == "stages" and not any(level[group].get(key) for level in levels):
            continue  # no turn reached this stage at any level
        table.add_row(label, *cells, end_section=(group == "edge" and key == EDGE[-1][0]))
    console.print(table)
    for level in levels:
        console.print(
            f"C={level['concurrency']}: {level['calls']} calls, {level['turns']} turns, "
            f"{level['failed_calls']} failed, {level['wall_secs']}s"
        )
        for error in level["errors"]:
            console.print(f"  error: {error}", markup=False, highlight=False)
        for note in level["notes"]:
            console.print(f"  note: {note}", markup=False, highlight=False)


@bench_app.command()
def latency(
    calls: Annotated[int, typer.Option(help="Calls per concurrency level")] = 3,
    concurrency: Annotated[
        str, typer.Option(help="Calls at once; a list (1,2,4) runs each level in turn")
    ] = "1",
    transport: Annotated[
        str, typer.Option(help="twilio: the /twilio/media socket; local: in-process caller")
    ] = "twilio",
    url: Annotated[
        str | None,
        typer.Option(help="A running server: ws://HOST:PORT/twilio/media (default: start one)"),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="The server's call records (default: configured database)")
    ] = None,
    audio: Annotated[
        list[Path] | None,
        typer.Option("--audio", help="Caller turns of every call (default: SpokenWOZ dialogues)"),
    ] = None,
    more_audio: Annotated[
        list[Path] | None,
        typer.Argument(help="More caller turns: --audio A.wav B.wav", show_default=False),
    ] = None,
    turns_per_call: Annotated[int, typer.Option(help="First K turns of each dialogue")] = 3,
    quick: Annotated[
        bool, typer.Option("--quick", help="CI: 1 call, 2 turns, concurrency 1")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    chart: Annotated[
        Path | None, typer.Option(help="PNG of the stage waterfall (default var/bench/latency.png)")
    ] = None,
    out_json: Annotated[Path | None, typer.Option(help="Also write the JSON report here")] = None,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 60.0,
    config: ConfigOpt = None,
) -> None:
    """Play real caller speech through the server; report p50/p95 per stage and at the edge."""
    from loguru import logger

    from voice_agent.bench.chart import write_chart

    settings = _settings(config)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")  # the server's INFO lines would bury the report
    levels = parse_levels(concurrency)
    turns = turns_per_call
    if quick:
        calls, levels, turns = 1, [1], 2
    files = [*(audio or []), *(more_audio or [])] or None
    if quick and files:
        files = files[:2]
    bench = BenchConfig(
        transport=transport,  # type: ignore[arg-type] - checked by BenchConfig.check
        url=url,
        database_url=database_url,
        calls=calls,
        concurrency=levels,
        turns_per_call=turns,
        audio=files,
        reply_timeout_secs=reply_timeout,
    )

    def progress(message: str) -> None:
        _err.print(message, style="dim", markup=False, highlight=False)

    try:
        report = asyncio.run(run_bench(settings, bench, progress=progress))
    except BenchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.code) from e
    chart_path = chart or settings.data_dir / "bench" / "latency.png"
    title = f"{report['machine']['cpu']} ({report['machine']['cores']} cores), {transport}"
    report["chart"] = str(write_chart(report["levels"], chart_path, title=title))
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=2))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
        _out.print(f"chart: {report['chart']}")
    if not any(level["turns"] and level["edge"]["first_audio"]["n"] for level in report["levels"]):
        typer.echo("error: no caller turn was answered; see the errors above", err=True)
        raise typer.Exit(1)

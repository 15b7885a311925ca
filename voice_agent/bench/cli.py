"""``voice-agent bench``: measure the agent the way callers experience it.

Exit codes: 0 the run finished (failed calls are counted in the report, not fatal), 1 no caller
turn could be measured at all, 2 bad settings, arguments, audio or missing models, 3 the server
at ``--url`` cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voice_agent.bench.latency import EDGE, STAGES, BenchConfig, BenchError, run_bench
from voice_agent.cli_options import ConfigOpt, JsonOpt, OutJsonOpt
from voice_agent.cli_options import settings_or_exit as _settings

bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks: turn latency and scripted calls, as callers hear them"
)

_out = Console()
_err = Console(stderr=True)


@bench_app.callback()
def _bench() -> None:
    """Benchmarks: turn latency and scripted calls, as callers hear them."""


def _progress(message: str) -> None:
    _err.print(message, style="dim", markup=False, highlight=False)


def _quiet_server_logs() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")  # the server's INFO lines would bury the report


def _report_or_exit(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The bench's report; a :class:`BenchError` becomes its message and exit code."""
    try:
        return run()
    except BenchError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.code) from e


def _save(report: dict[str, Any], out_json: Path | None) -> None:
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=2))


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
    columns = [(f"C={lv['concurrency']}", lv) for lv in report["levels"]]
    columns += [(f"floor C={lv['concurrency']}", lv) for lv in report.get("floor_levels", [])]
    levels = [level for _, level in columns]
    table = Table(title="turn latency, seconds after the caller stopped speaking")
    table.add_column("stage")
    for name, _ in columns:
        table.add_column(f"{name} p50", justify="right")
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
    if report.get("floor_levels"):
        console.print("floor: the same calls with the language model replaced by an instant stub")
    for name, level in columns:
        console.print(
            f"{name}: {level['calls']} calls, {level['turns']} turns, "
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
    as_json: JsonOpt = False,
    chart: Annotated[
        Path | None, typer.Option(help="PNG of the stage waterfall (default var/bench/latency.png)")
    ] = None,
    out_json: OutJsonOpt = None,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 60.0,
    floor: Annotated[
        bool,
        typer.Option(
            "--floor",
            help="Run the calls again with the model replaced by an instant stub: the floor",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Play real caller speech through the server; report p50/p95 per stage and at the edge."""
    from voice_agent.bench.chart import write_chart

    settings = _settings(config)
    _quiet_server_logs()
    levels = parse_levels(concurrency)
    turns = turns_per_call
    if quick:
        calls, levels, turns = 1, [1], 2
    files = [*(audio or []), *(more_audio or [])] or None
    if quick and files:
        files = files[:2]
    bench = BenchConfig(
        transport=transport,  # type: ignore[arg-type]  # checked by BenchConfig.check
        url=url,
        database_url=database_url,
        calls=calls,
        concurrency=levels,
        turns_per_call=turns,
        audio=files,
        reply_timeout_secs=reply_timeout,
        floor=floor,
    )

    report = _report_or_exit(lambda: asyncio.run(run_bench(settings, bench, progress=_progress)))
    chart_path = chart or settings.data_dir / "bench" / "latency.png"
    title = f"{report['machine']['cpu']} ({report['machine']['cores']} cores), {transport}"
    panels = report["levels"] + report["floor_levels"]
    report["chart"] = str(write_chart(panels, chart_path, title=title))
    _save(report, out_json)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
        _out.print(f"chart: {report['chart']}")
    if not any(level["turns"] and level["edge"]["first_audio"]["n"] for level in report["levels"]):
        typer.echo("error: no caller turn was answered; see the errors above", err=True)
        raise typer.Exit(1)


def print_scenarios_report(report: dict[str, Any], console: Console = _out) -> None:
    """One row per call, then the counts, WER and caller-side latency."""
    from voice_agent.bench.scenarios import GRADES

    table = Table(title="scripted calls, graded from the call records")
    for column in ("call", "run", "category", "priority", "runbook", "outcome", "name", "turns"):
        table.add_column(column)
    table.add_column("fully right")

    def cell(result: dict[str, Any], key: str) -> str:
        value = result["got"].get(key)
        return f"{value or '-'} {'ok' if result['grades'].get(key) else 'NO'}"

    for r in report["results"]:
        answered = "ok" if r["grades"].get("answered") else "NO"
        table.add_row(
            r["scenario"],
            str(r["run"]),
            *(cell(r, key) for key in ("category", "priority", "runbook", "outcome", "name")),
            f"{len(r['turns'])} {answered}",
            "yes" if r["fully_right"] else "no",
        )
    console.print(table)
    summary = report["summary"]
    for run, counts in summary["runs"].items():
        graded = ", ".join(f"{g} {counts[g]}/{counts['calls']}" for g in GRADES)
        console.print(
            f"run {run}: {graded}; fully right {counts['fully_right']}/{counts['calls']}",
            markup=False,
            highlight=False,
        )
    if summary["same_ending_across_runs"] is not None:
        console.print(
            f"the same in every run: outcome {summary['same_outcome_across_runs']}/"
            f"{summary['scenarios']} scenarios; category, priority, runbook and outcome "
            f"{summary['same_ending_across_runs']}/{summary['scenarios']}"
        )
    wer = summary["wer"]
    console.print(
        f"caller turns: {summary['caller_turns']}; WER strict {wer['strict']:.1%}, "
        f"lenient {wer['lenient']:.1%} ({wer['reference_words']} words)"
    )
    fa, aa = summary["first_audio"], summary["answer_audio"]
    console.print(
        f"first audio p50 {_fmt(fa['p50'])} s / p95 {_fmt(fa['p95'])} s; "
        f"first answer audio p50 {_fmt(aa['p50'])} s / p95 {_fmt(aa['p95'])} s "
        f"(n={aa['n']}, after the caller stops speaking, at the caller's end)"
    )
    for r in report["results"]:
        for error in r["errors"]:
            console.print(f"  {r['scenario']}: {error}", markup=False, highlight=False)
    for note in report["notes"]:
        console.print(f"  note: {note}", markup=False, highlight=False)


@bench_app.command()
def scenarios(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Scenarios, JSON lines (default ../shared/eval/scenarios_dev.jsonl)"
        ),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Play only this scenario id (repeatable)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Play only the first N scenarios")] = None,
    runs: Annotated[int, typer.Option(help="Play the whole set this many times")] = 1,
    url: Annotated[
        str | None,
        typer.Option(help="A running server: ws://HOST:PORT/twilio/media (default: start one)"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="The server's call records (needed with --url; default: a fresh SQLite)"),
    ] = None,
    as_json: JsonOpt = False,
    out_json: OutJsonOpt = None,
    reply_timeout: Annotated[float, typer.Option(help="Seconds to wait for each reply")] = 45.0,
    config: ConfigOpt = None,
) -> None:
    """Play scripted helpdesk calls over the Twilio protocol; grade them from the call records."""
    from voice_agent.bench.scenarios import DEFAULT_SCENARIOS, ScenarioBenchConfig, run_scenarios

    settings = _settings(config)
    _quiet_server_logs()
    bench = ScenarioBenchConfig(
        scenarios_file=file or DEFAULT_SCENARIOS,
        only=only or None,
        limit=limit,
        runs=runs,
        url=url,
        database_url=database_url,
        reply_timeout_secs=reply_timeout,
    )

    report = _report_or_exit(
        lambda: asyncio.run(run_scenarios(settings, bench, progress=_progress))
    )
    _save(report, out_json)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_scenarios_report(report)
    if not report["summary"]["caller_turns"]:
        typer.echo("error: no caller turn was played; see the errors above", err=True)
        raise typer.Exit(1)


@bench_app.command()
def stt(
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="phone (68 real 8 kHz turns), scenarios (espeak-ng callers), tickets (ticket "
            "numbers read by the scenario callers' voices), clean",
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help='Other settings decoded in the same run: "beam=5 vocabulary=off answers=off '
            'model=NAME"',
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Scenarios for the scenarios set (JSON lines)")
    ] = None,
    as_json: JsonOpt = False,
    out_json: OutJsonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Word error rate and decode time of the speech-to-text engine on caller speech, offline."""
    from voice_agent.bench.stt import SETS, run_stt_bench, summary_lines

    settings = _settings(config)
    _quiet_server_logs()
    chosen = sets or ["phone", "scenarios"]
    unknown = sorted(set(chosen) - set(SETS))
    if unknown:
        typer.echo(
            f"error: unknown set {', '.join(unknown)}: choose from {', '.join(SETS)}", err=True
        )
        raise typer.Exit(2)
    report = _report_or_exit(
        lambda: run_stt_bench(settings, chosen, variant or [], scenarios=file, progress=_progress)
    )
    _save(report, out_json)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _out.print(f"vocabulary: {report['vocabulary'] or '(none)'}", markup=False, highlight=False)
    for line in summary_lines(report):
        _out.print(line, markup=False, highlight=False)


def print_abuse_report(report: dict[str, Any], console: Console = _out) -> None:
    table = Table(title="A real caller and the console, quiet and under abuse")
    for column in ("phase", "first answer p50 / p95 (n)", "console p50 / p95 (n)", "errors"):
        table.add_column(column)
    for name, phase in report["phases"].items():
        answer, page = phase["first_answer"], phase["console"]
        table.add_row(
            name,
            f"{_fmt(answer['p50'])} / {_fmt(answer['p95'])} ({answer['n']})",
            f"{_fmt(page['p50'])} / {_fmt(page['p95'])} ({page['n']})",
            str(len(phase["errors"])),
        )
    console.print(table)
    s = report["settings"]
    console.print(
        f"abuse: {s['junk_offers']} junk browser offers and {s['silent_sockets']} unsigned media "
        f"sockets, each retried every {s['attack_every_secs']:.0f} s; answer ratio "
        f"(abuse / quiet p50): {report['answer_ratio']}"
    )
    attacks = ", ".join(f"{k}: {v}" for k, v in report["attacks"].items()) or "none"
    console.print(f"attackers got: {attacks}", markup=False, highlight=False)
    console.print(f"calls started by attackers: {report['calls_started_by_attackers']}")
    for name, phase in report["phases"].items():
        for error in phase["errors"]:
            console.print(f"  {name}: {error}", markup=False, highlight=False)


@bench_app.command()
def abuse(
    calls: Annotated[int, typer.Option(help="Measured calls per phase, one at a time")] = 2,
    turns_per_call: Annotated[int, typer.Option(help="First K turns of each dialogue")] = 2,
    junk_offers: Annotated[int, typer.Option(help="Anonymous junk WebRTC offer senders")] = 25,
    silent_sockets: Annotated[int, typer.Option(help="Unsigned silent media sockets")] = 10,
    audio: Annotated[
        list[Path] | None,
        typer.Option("--audio", help="Caller turns of every call (default: SpokenWOZ dialogues)"),
    ] = None,
    as_json: JsonOpt = False,
    out_json: OutJsonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A real caller's answer time and the console's, quiet and while the server is abused."""
    from voice_agent.bench.abuse import AbuseBenchConfig, run_abuse_bench

    settings = _settings(config)
    _quiet_server_logs()
    bench = AbuseBenchConfig(
        calls=calls,
        turns_per_call=turns_per_call,
        junk_offers=junk_offers,
        silent_sockets=silent_sockets,
        audio=audio or None,
    )
    report = _report_or_exit(
        lambda: asyncio.run(run_abuse_bench(settings, bench, progress=_progress))
    )
    _save(report, out_json)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_abuse_report(report)
    if not report["phases"]["quiet"]["first_answer"]["n"]:
        typer.echo("error: no caller turn was answered; see the errors above", err=True)
        raise typer.Exit(1)

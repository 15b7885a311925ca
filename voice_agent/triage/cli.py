"""``voice-agent triage``: label historical tickets, train, evaluate and run the triage model.

Exit codes: 0 ok, 2 bad input (missing file or column, unknown category, bad taxonomy or model).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voice_agent.cli_options import ConfigOpt, JsonOpt
from voice_agent.cli_options import settings_or_exit as _settings
from voice_agent.settings import REPO_ROOT, Settings

triage_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Call triage: label tickets, train, evaluate and predict category + priority",
)

_out = Console()
_err = Console(stderr=True)

DEFAULT_EVAL_DIR = REPO_ROOT.parent / "shared" / "eval"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _bad_input_errors() -> tuple[type[Exception], ...]:
    from voice_agent.triage.classifier import ModelError
    from voice_agent.triage.labeller import LabellingError
    from voice_agent.triage.taxonomy import TaxonomyError
    from voice_agent.triage.tsv import TSVError

    return (ModelError, LabellingError, TaxonomyError, TSVError)


def _load_triager(settings: Settings, use_llm: bool):
    """The triager, with the language model loaded only when it will be asked."""
    from voice_agent.triage.service import Triager

    engine = None
    if use_llm and settings.triage_llm_fallback and settings.llm_backend == "local":
        from voice_agent.llm.service import LlamaEngine
        from voice_agent.models.store import ModelNotReadyError, resolve

        try:
            path = resolve(settings.llm_model, "llm", settings.models_dir)
        except ModelNotReadyError as e:
            raise _fail(str(e)) from e
        engine = LlamaEngine.from_settings(path, settings)
    if not use_llm:
        settings = settings.model_copy(update={"triage_llm_fallback": False})
    try:
        return Triager.load(settings, llm_engine=engine)
    except _bad_input_errors() as e:
        raise _fail(str(e)) from e


@triage_app.command()
def label(
    tickets: Annotated[Path, typer.Option("--tickets", help="GL-style tickets CSV")],
    out: Annotated[Path, typer.Option("--out", help="Training TSV to write (not in the repo)")],
    eval_dir: Annotated[
        Path, typer.Option("--eval-dir", help="Evaluation TSVs whose rows are left out")
    ] = DEFAULT_EVAL_DIR,
) -> None:
    """Label historical tickets by the guide's rules into row, caller_text, category, priority."""
    from voice_agent.triage.labeller import (
        LabellingError,
        evaluation_rows,
        label_tickets,
        write_training_tsv,
    )

    target = out.resolve()
    if target.is_relative_to(REPO_ROOT) and not target.is_relative_to(REPO_ROOT / "var"):
        raise _fail(
            f"{out}: labelled tickets are derived data; write them under /tmp or var/, "
            "never into the source tree"
        )
    excluded = evaluation_rows(eval_dir) if eval_dir.is_dir() else set()
    if not eval_dir.is_dir():
        _err.print(f"[yellow]no evaluation folder at {eval_dir}; no rows left out[/yellow]")
    try:
        report = label_tickets(tickets, excluded)
    except LabellingError as e:
        raise _fail(str(e)) from e
    write_training_tsv(report.rows, out)
    _out.print(f"wrote {len(report.rows)} labelled rows to {out}")
    _out.print(f"skipped: {dict(report.skipped)}")
    _out.print(f"categories: {dict(report.categories.most_common())}")
    _out.print(f"priorities: {dict(sorted(report.priorities.items()))}")


@triage_app.command()
def train(
    labels: Annotated[
        Path, typer.Option("--labels", help="TSV: row, caller_text, category, priority")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Model folder; default: data_dir/triage_model")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Train a triage model from labelled history (embeds every row: ~50 ms each)."""
    from voice_agent.triage.taxonomy import load_taxonomy
    from voice_agent.triage.training import train_from_labels

    settings = _settings(config)
    target = out or settings.data_dir / "triage_model"
    try:
        taxonomy = load_taxonomy(settings.triage_taxonomy)
        model = train_from_labels(labels, taxonomy, target)
    except _bad_input_errors() as e:
        raise _fail(str(e)) from e
    _out.print(
        f"trained on {model.metadata['rows']} rows in {model.metadata['trained_secs']}s; "
        f"saved to {target}"
    )
    _out.print(f"use it with: VOICE_AGENT_TRIAGE_MODEL={target}")


@triage_app.command("eval")
def eval_(
    labels: Annotated[Path, typer.Option("--labels", help="TSV: caller_text, category, priority")],
    as_json: JsonOpt = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Classifier and rules only")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="First N rows only")] = None,
    mistakes: Annotated[bool, typer.Option("--mistakes", help="List the misses")] = False,
    config: ConfigOpt = None,
) -> None:
    """Accuracy, macro-F1, per-category precision/recall/F1, priority accuracy, confusion
    matrix, confidence calibration, latency."""
    from voice_agent.triage.evaluation import evaluate

    settings = _settings(config)
    triager = _load_triager(settings, use_llm=not no_llm)
    try:
        report = asyncio.run(evaluate(triager, labels, use_llm=not no_llm, limit=limit))
    except _bad_input_errors() as e:
        raise _fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    latency = f"{report.latency_p50_secs * 1000:.0f} / {report.latency_p95_secs * 1000:.0f} ms"
    _print_scores(
        report.scores,
        triager.taxonomy.category_names,
        title=f"Triage on {labels.name} ({report.scores.rows} rows)",
        extra={
            "latency p50 / p95": latency,
            "decided by": ", ".join(f"{k} {v}" for k, v in report.sources.items()),
        },
    )
    if mistakes:
        for m in report.mistakes:
            _out.print(
                f"{m['row']}\t{m['gold']} -> {m['predicted']} ({m['source']})\t{m['text'][:110]}",
                markup=False,
                highlight=False,
            )


@triage_app.command()
def cv(
    labels: Annotated[
        Path, typer.Option("--labels", help="TSV: row, caller_text, category, priority")
    ],
    folds: Annotated[int, typer.Option("--folds", help="How many folds")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified split")] = 0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Cross-validate training on labelled history: each fold triaged by a model trained on
    the others (embeds every row once: ~20-50 ms each)."""
    from voice_agent.triage.cross_validation import CrossValidationError, cross_validate
    from voice_agent.triage.taxonomy import load_taxonomy

    settings = _settings(config)
    try:
        taxonomy = load_taxonomy(settings.triage_taxonomy)
        result = cross_validate(labels, taxonomy, folds=folds, seed=seed)
    except _bad_input_errors() + (CrossValidationError,) as e:
        raise _fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    spread = ", ".join(f"{a:.3f}" for a in result.fold_accuracy)
    _print_scores(
        result.scores,
        taxonomy.category_names,
        title=f"{folds}-fold cross-validation on {labels.name} ({result.scores.rows} rows)",
        extra={"accuracy per fold": spread, "time": f"{result.wall_secs:.0f} s"},
    )


def _print_scores(scores, categories: list[str], *, title: str, extra: dict[str, str]) -> None:
    summary = Table(title=title)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("category accuracy", f"{scores.accuracy:.3f}")
    summary.add_row("category macro-F1", f"{scores.macro_f1:.3f}")
    summary.add_row("priority accuracy", f"{scores.priority_accuracy:.3f}")
    summary.add_row("confidence calibration error", f"{scores.calibration_error:.3f}")
    for name, value in extra.items():
        summary.add_row(name, value)
    _out.print(summary)
    per = Table(title="Per category")
    for column in ("category", "precision", "recall", "F1", "rows"):
        per.add_column(column, justify="left" if column == "category" else "right")
    for name, value in scores.per_category.items():
        per.add_row(
            name,
            f"{value['precision']:.3f}",
            f"{value['recall']:.3f}",
            f"{value['f1']:.3f}",
            str(value["support"]),
        )
    _out.print(per)
    names = [
        c
        for c in categories
        if c in scores.confusion or any(c in row for row in scores.confusion.values())
    ]
    matrix = Table(title="Confusion (rows: gold, columns: predicted)")
    matrix.add_column("gold")
    for name in names:
        matrix.add_column(name[:8], justify="right")
    for gold in names:
        row = scores.confusion.get(gold, {})
        matrix.add_row(gold, *[str(row.get(p, "")) for p in names])
    _out.print(matrix)


@triage_app.command()
def predict(
    input_: Annotated[Path, typer.Option("--input", help="TSV with columns row, caller_text")],
    output: Annotated[Path, typer.Option("--output", help="TSV to write")],
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Classifier and rules only")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write row, category, priority, confidence for each caller text."""
    from voice_agent.triage.tsv import read_tsv

    settings = _settings(config)
    try:
        rows = read_tsv(input_, ("row", "caller_text"))
    except _bad_input_errors() as e:
        raise _fail(str(e)) from e
    triager = _load_triager(settings, use_llm=not no_llm)

    async def run() -> list:
        if no_llm:
            return [triager.classify(r["caller_text"]) for r in rows]
        return [await triager.triage(r["caller_text"]) for r in rows]

    results = asyncio.run(run())
    lines = ["row\tcategory\tpriority\tconfidence"]
    lines += [
        f"{r['row']}\t{res.category}\t{res.priority}\t{res.confidence:.4f}"
        for r, res in zip(rows, results, strict=True)
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _out.print(f"wrote {len(results)} predictions to {output}")

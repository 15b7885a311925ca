"""``voice-agent kb``: ingest runbooks, search them, and evaluate retrieval.

Exit codes: 0 ok, 2 bad settings or arguments, 3 the index is busy (another process holds the
embedded Qdrant storage) or the Qdrant server is unreachable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from voice_agent.cli_options import ConfigOpt, JsonOpt
from voice_agent.cli_options import settings_or_exit as _settings
from voice_agent.settings import Settings

kb_app = typer.Typer(
    no_args_is_help=True, help="Knowledge base: ingest runbooks, search, evaluate retrieval"
)

CorpusOpt = Annotated[
    Path | None,
    typer.Option(
        "--corpus",
        help="Evaluate on an index of this folder (kept in its own subfolder of kb_dir)",
        exists=True,
        file_okay=False,
    ),
]
ModeOpt = Annotated[str, typer.Option("--mode", help="hybrid, bm25 or dense")]
GlossaryOpt = Annotated[
    Path | None,
    typer.Option(
        "--glossary",
        help="A company glossary of caller words (default: the kb_glossary setting)",
        dir_okay=False,
    ),
]
CallerTermsOpt = Annotated[
    bool,
    typer.Option(
        "--caller-terms/--no-caller-terms",
        help="Add the runbooks' words for the caller's words to the search (default on)",
    ),
]

_out = Console()
_err = Console(stderr=True)


@contextmanager
def _open_store(settings: Settings, corpus: Path | None = None) -> Iterator:
    from voice_agent.knowledge.store import KnowledgeError, KnowledgeStore

    kb_dir, collection = settings.resolved_kb_dir, None
    if corpus is not None:
        kb_dir, collection = corpus_index_location(settings.resolved_kb_dir, corpus)
    try:
        store = KnowledgeStore(kb_dir, qdrant_url=settings.kb_qdrant_url, **_coll(collection))
    except KnowledgeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(3) from e
    try:
        yield store
    except KnowledgeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(3) from e
    finally:
        store.close()


def _coll(collection: str | None) -> dict:
    return {"collection": collection} if collection else {}


def corpus_index_location(kb_dir: Path, corpus: Path) -> tuple[Path, str]:
    """Where the evaluation index of ``corpus`` lives: its own folder and collection."""
    corpus = corpus.expanduser().resolve()
    key = hashlib.sha1(str(corpus).encode()).hexdigest()[:10]
    return kb_dir / "eval" / f"{corpus.name}-{key}", f"kb_eval_{key}"


def _retriever(
    store, mode: str, settings: Settings, glossary: Path | None = None, caller_terms: bool = True
):
    from voice_agent.knowledge.caller_terms import CallerTerms, CallerTermsError
    from voice_agent.knowledge.retriever import HybridRetriever

    if mode not in ("hybrid", "bm25", "dense"):
        typer.echo(f"error: --mode must be hybrid, bm25 or dense, not {mode!r}", err=True)
        raise typer.Exit(2)
    try:
        terms = (
            CallerTerms.load(glossary or settings.kb_glossary)
            if caller_terms
            else CallerTerms.none()
        )
    except CallerTermsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    return HybridRetriever(store, mode=mode, terms=terms)  # type: ignore[arg-type]


def _ingest(store, paths: list[Path], *, max_mb: float = 5.0, quiet: bool = False):
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_err, disable=quiet, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            label = {"scan": "files", "embed": "chunks"}.get(stage, stage)
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return store.ingest(paths, max_bytes=int(max_mb * 1024 * 1024), progress=progress)


def _print_ingest(report) -> None:
    counts = report.counts()
    _out.print(
        ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {report.chunks_embedded} chunks embedded in {report.seconds:.1f} s"
    )
    if report.skipped:
        table = Table("skipped file", "reason", "detail", "kept previous", title="Skipped")
        for s in report.skipped:
            table.add_row(s.path, s.reason, s.detail, "yes" if s.kept_previous else "")
        _out.print(table)


@kb_app.command()
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders or files to ingest (default: the kb_paths setting)"),
    ] = None,
    as_json: JsonOpt = False,
    max_mb: Annotated[float, typer.Option(help="Skip files larger than this (MB)")] = 5.0,
    config: ConfigOpt = None,
) -> None:
    """Add, update and remove runbooks in the index (unchanged files are skipped)."""
    settings = _settings(config)
    with _open_store(settings) as store:
        report = _ingest(store, paths or settings.kb_paths, max_mb=max_mb, quiet=as_json)
        total = {"articles": store.article_count(), "chunks": len(store)}
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "index": total}, indent=2))
    else:
        _print_ingest(report)
        _out.print(f"index: {total['articles']} articles, {total['chunks']} chunks")


@kb_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What the caller said")],
    k: Annotated[int, typer.Option("--k", help="How many articles")] = 10,
    mode: ModeOpt = "hybrid",
    glossary: GlossaryOpt = None,
    caller_terms: CallerTermsOpt = True,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Rank the articles for a query; shows each one's best chunk."""
    settings = _settings(config)
    with _open_store(settings) as store:
        hits = _retriever(store, mode, settings, glossary, caller_terms).search(query, k=k)
    if as_json:
        out = {
            "query": query,
            "searched_as": hits.searched_as,
            "latency_ms": round(hits.latency_ms, 2),
        }
        typer.echo(json.dumps({**out, "hits": [h.to_dict() for h in hits]}, indent=2))
        return
    if not hits:
        _out.print("no results (is the knowledge base ingested? voice-agent kb ingest)")
        return
    table = Table("#", "score", "article", "best chunk", show_lines=True)
    for rank, hit in enumerate(hits, start=1):
        snippet = hit.best_chunk.text[:300] + ("…" if len(hit.best_chunk.text) > 300 else "")
        section = f"[bold]{hit.best_chunk.section}[/bold]\n" if hit.best_chunk.section else ""
        table.add_row(
            str(rank), f"{hit.score:.4f}", f"{hit.title}\n[dim]{hit.article_path}[/dim]",
            section + snippet,
        )  # fmt: skip
    _out.print(table)
    if hits.searched_as != query:
        _out.print(f"searched as: {hits.searched_as}")
    _out.print(f"{hits.latency_ms:.1f} ms")


@kb_app.command("eval")
def eval_(
    qrels: Annotated[Path, typer.Option("--qrels", help="qrels TSV", exists=True, dir_okay=False)],
    corpus: CorpusOpt = None,
    mode: ModeOpt = "hybrid",
    glossary: GlossaryOpt = None,
    caller_terms: CallerTermsOpt = True,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Recall@1/3/5/10, MRR@10, nDCG@10 and latency of retrieval on judged queries."""
    from voice_agent.knowledge.evaluation import evaluate, load_qrels

    settings = _settings(config)
    with _open_store(settings, corpus) as store:
        ingest_report = _ingest(store, [corpus], quiet=as_json) if corpus else None
        retriever = _retriever(store, mode, settings, glossary, caller_terms)
        report = evaluate(retriever, load_qrels(qrels))
    if as_json:
        out = {"mode": mode, "caller_terms": len(retriever.terms), **report.to_dict()}
        if ingest_report is not None:
            out["ingest"] = ingest_report.counts() | {"seconds": round(ingest_report.seconds, 2)}
        typer.echo(json.dumps(out, indent=2))
        return
    if ingest_report is not None:
        _out.print("ingest: " + ", ".join(f"{k} {v}" for k, v in ingest_report.counts().items()))
    terms = f"{len(retriever.terms)} caller terms" if retriever.terms else "no caller terms"
    table = Table(
        "metric",
        "value",
        title=f"{mode} retrieval, {terms}, {int(report.metrics['queries'])} queries",
    )
    for name, value in report.metrics.items():
        if name != "queries":
            table.add_row(name, f"{value:.1f}" if name.startswith("latency") else f"{value:.3f}")
    _out.print(table)
    _out.print(
        "recall@k: queries with a grade-2 article in the top k; graded_recall@k: share of all "
        "grade>=1 articles found; mrr@10: first grade-2 article; ndcg@10: gains 2^grade-1"
    )


@kb_app.command()
def run(
    queries: Annotated[
        Path, typer.Option("--queries", help="TSV with qid and query", exists=True, dir_okay=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="Run TSV to write")],
    corpus: CorpusOpt = None,
    mode: ModeOpt = "hybrid",
    glossary: GlossaryOpt = None,
    caller_terms: CallerTermsOpt = True,
    config: ConfigOpt = None,
) -> None:
    """Write the top 10 articles of each query as ``qid rank article_path score``."""
    from voice_agent.knowledge.evaluation import write_run

    settings = _settings(config)
    with _open_store(settings, corpus) as store:
        if corpus:
            _ingest(store, [corpus])
        retriever = _retriever(store, mode, settings, glossary, caller_terms)
        rows = write_run(retriever, queries, out)
    _out.print(f"wrote {rows} rows to {out}")

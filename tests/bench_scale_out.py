"""Measure the scale-out deployment on this machine: answer latency at 1, 2, 4, 8 concurrent calls
through nginx in front of two instances, then in front of one, the model server apart.

    .venv/bin/python -m tests.bench_scale_out [--levels 1,2,4,8] [--llm qwen2.5-coder-1.5b]
        [--chart docs/scale-out.png]

Starts what tests/test_scale_out.py starts (PostgreSQL, llama.cpp's server, ``voice-agent
serve`` instances, nginx), runs ``voice-agent bench latency`` against the balancer for each
layout, and prints the answer latency of both side by side (a Markdown table; ``--chart``
draws it). Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))  # conftest's sibling imports, as under pytest

from tests.conftest import REPO  # noqa: E402
from tests.postgres import PostgresServer, free_port, server_binaries  # noqa: E402
from tests.test_scale_out import Instance, nginx, start_instance, wait_ready  # noqa: E402
from voice_agent.models.store import resolve  # noqa: E402
from voice_agent.settings import load_settings  # noqa: E402
from voice_agent.storage import CallStore  # noqa: E402


def model_server(model: Path, root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (root / "llama_server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
            "--model_alias", "helpdesk", "--interrupt_requests", "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("llama.cpp server did not start")


def bench(balancer: str, database_url: str, levels: str, calls: int, out: Path) -> dict:
    subprocess.run(
        [
            sys.executable, "-m", "voice_agent.cli", "bench", "latency",
            "--url", f"ws://{balancer}/twilio/media", "--database-url", database_url,
            "--concurrency", levels, "--calls", str(calls), "--turns-per-call", "2",
            "--out-json", str(out), "--chart", str(out.with_suffix(".png")),
        ],
        check=True,
        cwd=REPO,
    )  # fmt: skip
    return json.loads(out.read_text())


def answer_rows(reports: dict[str, dict]) -> list[dict]:
    """One row a concurrency level: answer audio p50/p95 (edge) and failed calls, per layout."""
    rows = []
    for level in [lv["concurrency"] for lv in reports["two"]["levels"]]:
        row: dict = {"concurrency": level}
        for layout, report in reports.items():
            found = next(lv for lv in report["levels"] if lv["concurrency"] == level)
            answer = found["edge"]["answer_audio"]
            row[layout] = {
                "p50": answer["p50"],
                "p95": answer["p95"],
                "n": answer["n"],
                "failed_calls": found["failed_calls"],
                "calls": found["calls"],
            }
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| calls at once | two instances: answer p50 / p95 (s) | failed calls | one instance: "
        "answer p50 / p95 (s) | failed calls |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [str(row["concurrency"])]
        for layout in ("two", "one"):
            r = row[layout]
            cells += [f"{r['p50']:.2f} / {r['p95']:.2f}", f"{r['failed_calls']} of {r['calls']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [r["concurrency"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for layout, color in (("one", "tab:blue"), ("two", "tab:orange")):
        label = "one instance" if layout == "one" else "two instances"
        ax.plot(levels, [r[layout]["p50"] for r in rows], "o-", color=color, label=f"{label}, p50")
        ax.plot(levels, [r[layout]["p95"] for r in rows], "s--", color=color, label=f"{label}, p95")
    ax.axhline(2.0, color="grey", linewidth=1, linestyle=":", label="turn budget (2 s)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.set_xlabel("concurrent calls through nginx")
    ax.set_ylabel("first answer audio after the caller stops (s)")
    ax.set_title("Answer latency, one 2-core machine (model server on the same CPU)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, chart_path: Path | None) -> None:
    reports = {
        layout: json.loads((out / f"{layout}_instances.json").read_text())
        for layout in ("two", "one")
    }
    rows = answer_rows(reports)
    print(markdown_table(rows))
    if chart_path is not None:
        chart(rows, chart_path)
        print(f"chart: {chart_path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--calls", type=int, default=8, help="calls per level")
    parser.add_argument("--llm", default="qwen2.5-coder-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "scale_out")
    parser.add_argument("--chart", type=Path, default=None, help="PNG: answer latency per layout")
    parser.add_argument(
        "--report-only", action="store_true", help="tabulate the JSON reports already in --out"
    )
    args = parser.parse_args()
    if args.report_only:
        report(args.out, args.chart)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    model = resolve(args.llm, "llm", settings.models_dir)
    root = Path(tempfile.mkdtemp(prefix="voice-agent-scale-"))
    pg = PostgresServer(server_binaries(), Path(tempfile.mkdtemp(prefix="voice-agent-pg-")))
    pg.start()
    llama, llm_url = model_server(model, root)
    reports = {}
    try:
        for layout in ("two", "one"):
            database_url = pg.new_database(f"bench_{layout}")
            CallStore(database_url)  # migrated once, before the instances
            env = {
                **os.environ,
                "VOICE_AGENT_DATABASE_URL": database_url,
                "VOICE_AGENT_LLM_BACKEND": "openai",
                "VOICE_AGENT_LLM_BASE_URL": llm_url,
                "VOICE_AGENT_LLM_MODEL": "helpdesk",
                "VOICE_AGENT_MAX_CONCURRENT_CALLS": "8",  # latency measured, not admission
            }
            names = ["web-1", "web-2"] if layout == "two" else ["web-1"]
            where = root / layout
            where.mkdir()
            instances: list[Instance] = [start_instance(n, where, env) for n in names]
            try:
                for instance in instances:
                    wait_ready(instance, timeout=600)
                with nginx(where / "nginx", instances) as balancer:
                    reports[layout] = bench(
                        balancer, database_url, args.levels, args.calls,
                        args.out / f"{layout}_instances.json",
                    )  # fmt: skip
            finally:
                for instance in instances:
                    instance.proc.terminate()
                    instance.proc.wait(timeout=120)
    finally:
        llama.terminate()
        llama.wait(timeout=30)
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    report(args.out, args.chart)


if __name__ == "__main__":
    main()

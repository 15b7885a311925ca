"""Where a turn's time goes: a waterfall of the median stages from the caller's end of speech.

One panel per concurrency level (and per level of the floor, ``bench latency --floor``, whose
level carries a ``label``). Each server stage is a bar from where the stage before it ended
(median) to where it ended (median), so the bars stack left to right into the whole turn and the
widest bar is the stage to work on; a whisker runs from each stage's median to its p95. Under the
stages, the two edge measures the caller hears (first reply audio, first answer audio) start at 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from voice_agent.bench.latency import EDGE, STAGE_LABELS, STAGES  # noqa: E402

EDGE_COLOURS = {"first_audio": "#444444", "answer_audio": "#888888"}


def _stage_colours() -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {key: cmap(i % 10) for i, (key, _, _) in enumerate(STAGES)}


def _rows(level: dict[str, Any]) -> list[tuple[str, float, float, float | None, Any]]:
    """(label, left, width, p95 end or None, colour) per bar, top to bottom."""
    colours = _stage_colours()
    stages = [
        (key, s["p50"], s["p95"])
        for key, s in level.get("stages", {}).items()
        if s.get("p50") is not None and key in STAGE_LABELS
    ]
    stages.sort(key=lambda item: item[1])  # pipeline order as this run saw it
    rows = []
    previous = 0.0
    for key, p50, p95 in stages:
        left = min(previous, p50)
        rows.append((STAGE_LABELS[key], left, max(p50 - left, 0.0), p95, colours[key]))
        previous = max(previous, p50)
    for key, label in EDGE:
        edge = level.get("edge", {}).get(key, {})
        if edge.get("p50") is not None:
            rows.append((label, 0.0, edge["p50"], edge.get("p95"), EDGE_COLOURS[key]))
    return rows


def write_chart(levels: list[dict[str, Any]], path: Path | str, *, title: str = "") -> Path:
    """Draw the waterfall of every level (``run_bench``'s ``levels``) to a PNG at ``path``."""
    path = Path(path)
    if not levels:
        raise ValueError("no levels to draw")
    path.parent.mkdir(parents=True, exist_ok=True)
    all_rows = [_rows(level) for level in levels]
    height = sum(max(len(rows), 1) * 0.35 + 0.9 for rows in all_rows) + 0.6
    fig, axes = plt.subplots(
        len(levels), 1, figsize=(10, max(height, 3.0)), sharex=True, squeeze=False
    )
    for ax, level, rows in zip(axes[:, 0], levels, all_rows, strict=True):
        ax.set_title(
            (f"{level['label']}: " if level.get("label") else "")
            + f"{level['concurrency']} concurrent call(s): {level['calls']} calls, "
            f"{level['turns']} turns, {len(level.get('errors', []))} errors",
            fontsize=9,
            loc="left",
        )
        if not rows:
            ax.text(0.5, 0.5, "no turn measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
            continue
        ys = list(range(len(rows)))[::-1]
        for y, (_label, left, width, p95, colour) in zip(ys, rows, strict=True):
            ax.barh(y, width, left=left, color=colour, height=0.6)
            end = left + width
            ax.text(end, y, f" {end:.2f}s", va="center", fontsize=7)
            if p95 is not None and p95 > end:
                ax.errorbar(
                    end, y, xerr=[[0], [p95 - end]], fmt="none", ecolor="black", capsize=3, lw=1
                )
        ax.set_yticks(ys, [row[0] for row in rows], fontsize=8)
        ax.axvline(0, color="black", lw=0.5)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("seconds after the caller stopped speaking (median; whisker: p95)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

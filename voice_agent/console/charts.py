"""A turn's latency as a waterfall: one bar per named stage, from when the caller went quiet.

Drawn server-side as inline SVG (no script, no library): a bar starts at the stage that fed it
(the latest earlier stage present) and ends when the stage was recorded, so the bars show both
where the time went and what ran in parallel (STT and turn detection both start at speech end).
All charts of one call share a time scale so turns compare at a glance.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

# (label, stage that ends the bar, stages the bar may start from: the latest one present that is
# not after the end). Offsets are seconds after ``speech_end``.
WATERFALL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("STT", "stt_done", ("speech_end",)),
    ("Turn detection", "turn_end", ("speech_end",)),
    ("Triage", "triage_done", ("turn_end", "stt_done", "speech_end")),
    ("Lookup", "lookup_done", ("triage_done", "turn_end", "stt_done", "speech_end")),
    (
        "LLM first token",
        "llm_first_token",
        ("lookup_done", "triage_done", "turn_end", "stt_done", "speech_end"),
    ),
    (
        "First sentence",
        "first_sentence",
        ("llm_first_token", "lookup_done", "triage_done", "turn_end", "speech_end"),
    ),
    ("TTS first audio", "tts_first_audio", ("first_sentence", "turn_end", "speech_end")),
    ("First audio out", "first_audio_out", ("tts_first_audio", "first_sentence", "speech_end")),
    ("Answer audio", "answer_audio_out", ("first_audio_out", "speech_end")),
)
SCALES = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 90, 120)

# geometry (px)
WIDTH = 440
LABEL_W = 112
PLOT_X0 = 116
PLOT_X1 = 388
ROW_H = 17
BAR_H = 11
TOP = 4
AXIS_H = 18


def waterfall(stages: dict[str, float]) -> list[dict[str, Any]]:
    """The turn's bars ``{label, stage, start, end}`` in seconds after ``speech_end``.

    Empty when the caller did not speak in this turn (a greeting) or nothing was timed.
    """
    origin = stages.get("speech_end")
    if origin is None:
        return []
    bars = []
    for label, end_stage, starts in WATERFALL:
        end = stages.get(end_stage)
        if end is None:
            continue
        candidates = [stages[s] for s in starts if s in stages and stages[s] <= end]
        start = max(candidates) if candidates else origin
        bars.append(
            {
                "label": label,
                "stage": end_stage,
                "start": round(max(0.0, start - origin), 3),
                "end": round(end - origin, 3),
            }
        )
    return bars


def chart_span(turns: list[dict[str, Any]]) -> float:
    """A round number of seconds that every bar of the call fits in."""
    span = max((b["end"] for t in turns for b in t.get("waterfall", [])), default=1.0)
    for nice in SCALES:
        if span <= nice:
            return float(nice)
    return float(-(-span // 60) * 60)


def _ticks(span: float) -> list[float]:
    for step in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60):
        if span / step <= 6:
            break
    n = int(round(span / step))
    return [round(i * step, 3) for i in range(n + 1)]


def _fmt(secs: float) -> str:
    return f"{secs:.2f}".rstrip("0").rstrip(".") if secs < 10 else f"{secs:.0f}"


def waterfall_svg(bars: list[dict[str, Any]], span: float, *, turn: int) -> Markup:
    """The bars as an accessible inline SVG (``role=img`` with a text summary)."""
    if not bars:
        return Markup("")
    span = max(span, 0.001)
    scale = (PLOT_X1 - PLOT_X0) / span
    height = TOP + ROW_H * len(bars) + AXIS_H
    summary = ", ".join(f"{b['label']} {b['end']:.2f} s" for b in bars)
    parts = [
        f'<svg class="waterfall" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-labelledby="wf-{turn}-title" '
        f'data-turn="{turn}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="wf-{turn}-title">Turn {turn} latency from end of speech: '
        f"{escape(summary)}</title>",
    ]
    plot_bottom = TOP + ROW_H * len(bars)
    for tick in _ticks(span):
        x = PLOT_X0 + tick * scale
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP - 2}" x2="{x:.1f}" y2="{plot_bottom}"/>'
            f'<text class="tick" x="{x:.1f}" y="{plot_bottom + 13}" text-anchor="middle">'
            f"{_fmt(tick)}{' s' if tick == 0 else ''}</text>"
        )
    heard = next((b["end"] for b in bars if b["stage"] == "first_audio_out"), None)
    for i, bar in enumerate(bars):
        y = TOP + i * ROW_H
        x = PLOT_X0 + bar["start"] * scale
        w = max(2.0, (bar["end"] - bar["start"]) * scale)
        took = bar["end"] - bar["start"]
        value = f"{bar['end']:.2f}"
        parts.append(
            f'<g class="bar stage-{escape(bar["stage"])}">'
            f"<title>{escape(bar['label'])}: {bar['start']:.3f} → {bar['end']:.3f} s after "
            f"speech end ({took:.3f} s)</title>"
            f'<text class="label" x="{LABEL_W}" y="{y + BAR_H - 1}" text-anchor="end">'
            f"{escape(bar['label'])}</text>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" rx="2"/>'
            f'<text class="value" x="{min(x + w + 4, WIDTH - 34):.1f}" y="{y + BAR_H - 1}">'
            f"{value}</text></g>"
        )
    if heard is not None:
        x = PLOT_X0 + heard * scale
        parts.append(
            f'<line class="heard" x1="{x:.1f}" y1="{TOP - 2}" x2="{x:.1f}" y2="{plot_bottom}">'
            f"<title>the caller hears the reply: {heard:.2f} s</title></line>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))

"""Prometheus metrics, served at ``/metrics`` for a scraper and an autoscaler.

What an operator scales and alerts on: the calls in progress against the lines this instance
has (``voice_agent_calls_active`` / ``voice_agent_calls_max``), the calls it refused and why,
whether it is draining, how calls ended, each turn's latencies (histograms: the p95 of
``voice_to_answer`` is what a caller feels), and turn errors by code (``answer_slow``,
``stt_failed``, ...).

Counters and histograms are the process's (one server per process); the gauges are read from
the app's :class:`~voice_agent.call.admission.CallAdmission` when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from voice_agent.records import TurnRecord

# a caller notices past ~1 s and gives up past ~20 s: buckets dense where the budget (2 s) is
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0)

TURN_LATENCY = Histogram(
    "voice_agent_turn_latency_seconds",
    "Per-turn latency, by span: voice_to_answer is from the end of the caller's speech to the "
    "first audio of the answer",
    ["span"],
    buckets=LATENCY_BUCKETS,
)
TURNS = Counter("voice_agent_turns_total", "Turns stored, by kind", ["kind"])
TURN_ERRORS = Counter(
    "voice_agent_turn_errors_total", "Turns that recorded an error, by error code", ["code"]
)
CALLS_ENDED = Counter(
    "voice_agent_calls_ended_total",
    "Calls ended, by status and end reason",
    ["status", "end_reason"],
)


def observe_turn(turn: TurnRecord) -> None:
    TURNS.labels(turn.kind.value).inc()
    for name, secs in turn.latencies().items():
        if secs >= 0:
            TURN_LATENCY.labels(name.removesuffix("_secs")).observe(secs)
    if turn.error_code:
        TURN_ERRORS.labels(turn.error_code).inc()


def observe_call_end(status: str, end_reason: str | None) -> None:
    CALLS_ENDED.labels(status, end_reason or "").inc()


class Lines(Protocol):
    """What the gauges read (``voice_agent.call.admission.CallAdmission``)."""

    @property
    def active(self) -> int: ...

    max_calls: int
    draining: bool
    refused_by_reason: dict[str, int]


class AdmissionCollector(Collector):
    """The call gauges, read from one server's admission when scraped."""

    def __init__(self, admission: Lines) -> None:
        self.admission = admission

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        a = self.admission
        yield GaugeMetricFamily("voice_agent_calls_active", "Calls in progress", value=a.active)
        yield GaugeMetricFamily(
            "voice_agent_calls_max", "Calls this instance takes at once", value=a.max_calls
        )
        yield GaugeMetricFamily(
            "voice_agent_draining", "1 while the instance drains before it stops", int(a.draining)
        )
        refused = CounterMetricFamily(
            "voice_agent_calls_refused", "Calls refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(a.refused_by_reason.items()):
            refused.add_metric([reason], count)
        yield refused


def app_registry(admission: Lines) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AdmissionCollector(admission))
    return registry


def render(app_metrics: CollectorRegistry) -> bytes:
    """The text exposition: this app's gauges, then the process's counters and histograms."""
    return generate_latest(app_metrics) + generate_latest(REGISTRY)

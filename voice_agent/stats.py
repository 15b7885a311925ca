"""Summary statistics the benchmarks and the Twilio dialer report; imports nothing from voice_agent.

Used by ``voice_agent.bench.latency`` (and, through it, ``bench.scenarios`` and ``bench.stt``)
and ``voice_agent.telephony.twilio_dialer``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation (numpy's default), rounded to 3 places;
    None and NaN values are skipped; None when nothing is left."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return round(data[low] + (data[high] - data[low]) * (pos - low), 3)

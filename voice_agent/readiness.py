"""Whether this instance should be sent calls now: what ``/readyz`` answers.

``/healthz`` says the process is alive; ``/readyz`` says a load balancer (or Kubernetes) may send
it a call: it is not draining, it has a free line, and the language model it needs answers. With
``llm_backend=openai`` the model servers are asked for their model list until one answers
(bounded by a short timeout, remembered for a few seconds so that a balancer probing every second
costs the model servers almost nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from voice_agent.call.admission import CallAdmission
from voice_agent.llm.model_servers import endpoints
from voice_agent.settings import Settings

PROBE_TIMEOUT_SECS = 2.0
PROBE_CACHE_SECS = 5.0


@dataclass
class ModelServerProbe:
    """Does a model server of the pool answer? No URLs: the model runs in-process."""

    urls: list[str]
    api_key: str = ""
    _checked_at: float = field(default=-1e9, repr=False)
    _problem: str | None = field(default=None, repr=False)

    async def problem(self) -> str | None:
        if not self.urls:
            return None
        now = time.monotonic()
        if now - self._checked_at >= PROBE_CACHE_SECS:
            self._problem = await self._probe()
            self._checked_at = now
        return self._problem

    async def _probe(self) -> str | None:
        """None when one server answers (the pool skips those that do not)."""
        failures = []
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECS) as client:
            for base in self.urls:
                url = base.rstrip("/") + "/models"
                try:
                    response = await client.get(
                        url, headers={"Authorization": f"Bearer {self.api_key}"}
                    )
                except httpx.HTTPError as e:
                    failures.append(f"{url} unreachable: {type(e).__name__}")
                    continue
                if response.status_code < 400:
                    return None
                failures.append(f"{url} answered HTTP {response.status_code}")
        return "no model server answers: " + "; ".join(failures)


@dataclass
class Readiness:
    admission: CallAdmission
    model_server: ModelServerProbe

    @classmethod
    def from_settings(cls, settings: Settings, admission: CallAdmission) -> Readiness:
        urls = endpoints(settings.llm_base_url) if settings.llm_backend == "openai" else []
        return cls(admission, ModelServerProbe(urls, settings.llm_api_key))

    async def problems(self) -> list[str]:
        """Why this instance should not get a call now; empty when it should."""
        problems = []
        if self.admission.draining:
            problems.append("draining: the server is shutting down")
        if self.admission.active >= self.admission.max_calls:
            problems.append(f"at capacity: {self.admission.active} calls in progress")
        model = await self.model_server.problem()
        if model is not None:
            problems.append(model)
        return problems

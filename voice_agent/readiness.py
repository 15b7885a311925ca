"""Whether this instance should be sent calls now: what ``/readyz`` answers.

``/healthz`` says the process is alive; ``/readyz`` says a load balancer (or Kubernetes) may send
it a call: it is not draining, it has a free line, and the language model it needs answers. With
``llm_backend=openai`` the model server is asked for its model list (bounded by a short timeout,
remembered for a few seconds so that a balancer probing every second costs the model server
almost nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from voice_agent.call.admission import CallAdmission
from voice_agent.settings import Settings

PROBE_TIMEOUT_SECS = 2.0
PROBE_CACHE_SECS = 5.0


@dataclass
class ModelServerProbe:
    """Is the OpenAI-compatible model server up? ``None`` when the model runs in-process."""

    base_url: str | None
    api_key: str = ""
    _checked_at: float = field(default=-1e9, repr=False)
    _problem: str | None = field(default=None, repr=False)

    async def problem(self) -> str | None:
        if self.base_url is None:
            return None
        now = time.monotonic()
        if now - self._checked_at >= PROBE_CACHE_SECS:
            self._problem = await self._probe()
            self._checked_at = now
        return self._problem

    async def _probe(self) -> str | None:
        url = self.base_url.rstrip("/") + "/models"  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECS) as client:
                response = await client.get(
                    url, headers={"Authorization": f"Bearer {self.api_key}"}
                )
        except httpx.HTTPError as e:
            return f"model server {url} unreachable: {type(e).__name__}"
        if response.status_code >= 400:
            return f"model server {url} answered HTTP {response.status_code}"
        return None


@dataclass
class Readiness:
    admission: CallAdmission
    model_server: ModelServerProbe

    @classmethod
    def from_settings(cls, settings: Settings, admission: CallAdmission) -> Readiness:
        base_url = settings.llm_base_url if settings.llm_backend == "openai" else None
        return cls(admission, ModelServerProbe(base_url, settings.llm_api_key))

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

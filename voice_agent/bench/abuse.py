"""A real caller's answer time, and the console's, while the server is being abused.

The server starts in this process with a fresh SQLite database and Twilio credentials made up for
the run (so media sockets must be signed, as in production). The same real phone calls are placed
twice over the Twilio protocol, signed: once on a quiet server, then while attackers keep
``junk_offers`` anonymous browser offers ("hello world", an SDP with no media line, a 5 MB body)
and ``silent_sockets`` unsigned media sockets (which would stream nothing) going, each attacker
retrying once a second. A signed-in supervisor loads the console's call list throughout. Reported:
the first answer audio of each caller turn (p50 quiet, p50 under abuse, their ratio), the
console's response times, what the attackers got back, and how many calls they started (should
be none).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from voice_agent.bench.latency import (
    DEFAULT_SPEECH,
    BenchError,
    choose_scripts,
    describe,
    in_process_server,
    load_engines,
)
from voice_agent.bench.machine import machine_info, models_summary
from voice_agent.settings import Settings

NO_MEDIA_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
BIG_SDP = "v=0\r\n" + "a=x\r\n" * 1_000_000  # 5 MB
ATTACK_EVERY_SECS = 1.0
CONSOLE_EVERY_SECS = 1.0


@dataclass
class AbuseBenchConfig:
    calls: int = 2  # measured calls per phase, one at a time
    turns_per_call: int = 2
    junk_offers: int = 25
    silent_sockets: int = 10
    audio: list[Path] | None = None
    speech_dir: Path = DEFAULT_SPEECH
    reply_timeout_secs: float = 60.0

    def check(self) -> None:
        if self.calls < 1 or self.turns_per_call < 1:
            raise BenchError("--calls and --turns-per-call must be at least 1")
        if self.junk_offers < 0 or self.silent_sockets < 0:
            raise BenchError("--junk-offers and --silent-sockets cannot be negative")


class _Console:
    """A signed-in supervisor loading the call list; response times in seconds."""

    def __init__(self, base: str, username: str, password: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=base, timeout=30)
        self.username, self.password = username, password
        self.times: list[float] = []

    async def sign_in(self) -> None:
        page = await self.client.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if token is None:
            raise BenchError("the console's login form has no CSRF token")
        form = {"username": self.username, "password": self.password}
        answer = await self.client.post("/console/login", data={**form, "csrf_token": token[1]})
        if answer.status_code != 303:
            raise BenchError(f"could not sign in to the console: HTTP {answer.status_code}")

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            answer = await self.client.get("/console/calls")
            if answer.status_code == 200:
                self.times.append(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CONSOLE_EVERY_SECS)


async def _junk_offers(base: str, stop: asyncio.Event, seen: Counter, n: int) -> None:
    import httpx

    bodies = [
        {"sdp": "hello world", "type": "offer"},
        {"sdp": NO_MEDIA_SDP, "type": "offer"},
        {"sdp": BIG_SDP, "type": "offer"},
    ]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            try:
                answer = await client.post("/api/offer", json=bodies[n % len(bodies)])
                seen[f"offer HTTP {answer.status_code}"] += 1
            except httpx.HTTPError as e:
                seen[f"offer {type(e).__name__}"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ATTACK_EVERY_SECS)


async def _silent_socket(url: str, stop: asyncio.Event, seen: Counter) -> None:
    """An unsigned media socket; if it were ever let in, it would start a call and say nothing."""
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    while not stop.is_set():
        try:
            async with connect(url, open_timeout=10) as ws:
                seen["socket accepted"] += 1
                start = {"streamSid": "MZsilent", "callSid": "CAsilent" + secrets.token_hex(8)}
                await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
                await ws.send(json.dumps({"event": "start", "start": start}))
                await stop.wait()
        except InvalidStatus as e:
            seen[f"socket HTTP {e.response.status_code}"] += 1
        except (OSError, WebSocketException, TimeoutError) as e:
            seen[f"socket {type(e).__name__}"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ATTACK_EVERY_SECS)


async def _measured_calls(
    url: str, token: str, audio: list[list[tuple[str, Any]]], config: AbuseBenchConfig
) -> tuple[list[float], list[str], set[str]]:
    """First answer audio of every caller turn (seconds), what went wrong, the call SIDs."""
    from voice_agent.telephony.twilio_dialer import dial

    answers: list[float] = []
    errors: list[str] = []
    sids: set[str] = set()
    for i in range(config.calls):
        result = await dial(
            url,
            audio[i % len(audio)],
            auth_token=token,
            reply_timeout_secs=config.reply_timeout_secs,
        )
        sids.add(result.call_sid)
        if result.error:
            errors.append(result.error)
        for turn in result.turns:
            secs = turn.voice_to_answer_secs
            if secs is None:
                errors.append(f"call {result.call_sid} turn {turn.index}: no answer heard")
            else:
                answers.append(secs)
    return answers, errors, sids


async def run_abuse_bench(
    settings: Settings,
    config: AbuseBenchConfig,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Both phases, quiet then abused; the report (``--json``'s object)."""
    from voice_agent.console.users import UserStore
    from voice_agent.storage import CallStore
    from voice_agent.telephony.twilio_dialer import load_phone_audio

    config.check()
    scripts = choose_scripts(config.audio, config.turns_per_call, config.speech_dir)
    audio = [[(str(p), load_phone_audio(p)) for p in s.files] for s in scripts]
    token = secrets.token_hex(16)
    password = secrets.token_urlsafe(16)
    phases: dict[str, dict[str, Any]] = {}
    attacks: Counter = Counter()
    measured: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        local = settings.model_copy(
            update={
                "data_dir": Path(tmp),
                "database_url": f"sqlite:///{tmp}/calls.db",
                "twilio_account_sid": "AC" + secrets.token_hex(16),
                "twilio_auth_token": SecretStr(token),
                "public_url": None,
            }
        )
        store = CallStore.from_settings(local)
        UserStore(store.engine).add("bench", password, "supervisor")
        progress("loading the models (this process)...")
        engines = await asyncio.to_thread(load_engines, local)
        async with in_process_server(local, engines) as url:
            base = url.replace("ws://", "http://").removesuffix("/twilio/media")
            for phase in ("quiet", "abuse"):
                progress(f"{phase}: {config.calls} calls...")
                stop = asyncio.Event()
                console = _Console(base, "bench", password)
                await console.sign_in()
                tasks = [asyncio.create_task(console.watch(stop))]
                if phase == "abuse":
                    tasks += [
                        asyncio.create_task(_junk_offers(base, stop, attacks, n))
                        for n in range(config.junk_offers)
                    ]
                    tasks += [
                        asyncio.create_task(_silent_socket(url, stop, attacks))
                        for _ in range(config.silent_sockets)
                    ]
                    await asyncio.sleep(2.0)  # the attack is under way before the caller dials
                started = time.monotonic()
                answers, errors, sids = await _measured_calls(url, token, audio, config)
                measured |= sids
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                await console.client.aclose()
                phases[phase] = {
                    "first_answer": describe(answers),
                    "console": describe(console.times),
                    "errors": errors,
                    "wall_secs": round(time.monotonic() - started, 1),
                }
        calls = store.list_calls()
        store.engine.dispose()
    quiet = phases["quiet"]["first_answer"]["p50"]
    loud = phases["abuse"]["first_answer"]["p50"]
    return {
        "machine": machine_info(),
        "settings": {
            "calls_per_phase": config.calls,
            "turns_per_call": config.turns_per_call,
            "junk_offers": config.junk_offers,
            "silent_sockets": config.silent_sockets,
            "attack_every_secs": ATTACK_EVERY_SECS,
            "scripts": [{"name": s.name, "files": [p.name for p in s.files]} for s in scripts],
            "models": models_summary(settings),
        },
        "phases": phases,
        "answer_ratio": round(loud / quiet, 2) if quiet and loud else None,
        "attacks": dict(sorted(attacks.items())),
        "calls_started_by_attackers": sum(1 for c in calls if c.get("external_id") not in measured),
        "calls_stored": len(calls),
    }

"""Many servers, one helpdesk: the reference deployment of docs/deploy.md, on loopback.

PostgreSQL (Debian's), llama.cpp's OpenAI-compatible server with the small model, two
``voice-agent serve`` processes sharing both, and nginx (Debian's) in front of them. Calls are
placed through nginx over the Twilio media-stream protocol; one instance is then stopped with
SIGTERM in the middle of a call.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, TELEPHONY
from tests.postgres import free_port
from voice_agent.console.users import UserStore
from voice_agent.storage import CallStore
from voice_agent.telephony.twilio_dialer import DialResult, dial, load_phone_audio
from voice_agent.tickets import NewTicket
from voice_agent.tickets.records import TicketRecords

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "correct horse battery staple"
CLIPS = [TELEPHONY / f"spokenwoz_MUL1423_user_turn0{i}.wav" for i in (1, 3)]

# the balancer of docs/deploy.md, on loopback ports
NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
{user}
events {{ worker_connections 512; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;

    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}

    upstream voice_agents {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://voice_agents;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            # a draining or full instance refuses the media socket with 503 before the
            # handshake: the call is tried on the next instance instead of failing
            proxy_next_upstream error timeout http_503;
        }}
    }}
}}
"""


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_instance(name: str, root: Path, env: dict[str, str]) -> Instance:
    port = free_port()
    data = root / name
    data.mkdir()
    log = data / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_agent.cli", "serve", "--port", str(port)],
        env={
            **env,
            "VOICE_AGENT_INSTANCE_NAME": name,
            "VOICE_AGENT_DATA_DIR": str(data),
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    return Instance(name, port, proc, log)


def wait_ready(instance: Instance, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            pytest.fail(f"{instance.name} exited: {instance.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{instance.url}/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{instance.name} not ready in {timeout} s: {instance.log.read_text()[-3000:]}")


@contextmanager
def nginx(root: Path, upstreams: list[Instance]) -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.fail("nginx not found: run ./run.sh test (installs Debian's nginx-light)")
    root.mkdir()
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{i.port};" for i in upstreams)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, servers=servers, port=port, user=user))
    proc = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(root / "stderr.log").open("wb"),
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    pytest.fail(f"nginx exited: {(root / 'stderr.log').read_text()}")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def speech() -> list[tuple[str, object]]:
    return [(str(p), load_phone_audio(p)) for p in CLIPS]


def calls_by_id(store: CallStore) -> dict[str, dict]:
    return {c["id"]: c for c in store.list_calls(limit=100)}


def external(store: CallStore, result: DialResult) -> dict:
    found = [c for c in store.list_calls(limit=100) if c["external_id"] == result.call_sid]
    assert len(found) == 1, f"call {result.call_sid} stored {len(found)} times"
    return found[0]


def console_call_ids(base: str) -> set[str]:
    """Sign in to the console through the balancer and list every call."""
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        signed = client.post(
            "/console/login",
            data={"username": "ada", "password": PASSWORD, "csrf_token": token, "next": ""},
        )
        assert signed.status_code in (200, 303), signed.text[:300]
        ids: set[str] = set()
        for _ in range(4):  # round robin: both instances answer, with the same session
            listed = client.get("/console/api/calls", params={"per_page": 100})
            assert listed.status_code == 200, listed.text[:300]
            ids |= {c["id"] for c in listed.json()["calls"]}
        return ids


def tickets_from_two_instances(database_url: str) -> list[str]:
    """20 tickets created at once by two stores on separate connection pools."""
    numbers: list[str] = []
    lock = threading.Lock()

    def create(store: CallStore, n: int) -> None:
        records = TicketRecords(store)
        for i in range(n):
            info = records.insert(
                NewTicket(call_id=None, summary=f"printer offline {i}", category="hardware")
            )
            with lock:
                numbers.append(info.number)

    stores = [CallStore(database_url), CallStore(database_url)]
    threads = [threading.Thread(target=create, args=(s, 10)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return numbers


async def test_two_instances_behind_nginx_share_postgresql_and_a_model_server(
    llama_server, postgres_url, tmp_path
):
    store = CallStore(postgres_url)  # migrates the shared database once, before the instances
    UserStore(store.engine).add("ada", PASSWORD, "supervisor")
    env = {
        **os.environ,
        "VOICE_AGENT_DATABASE_URL": postgres_url,
        "VOICE_AGENT_LLM_BACKEND": "openai",
        "VOICE_AGENT_LLM_BASE_URL": llama_server,
        "VOICE_AGENT_LLM_MODEL": "small",
        "VOICE_AGENT_LLM_MAX_TOKENS": "24",
        "VOICE_AGENT_CONSOLE_SECRET_KEY": "one secret shared by every instance",
        "VOICE_AGENT_DRAIN_TIMEOUT_SECS": "6",
        "VOICE_AGENT_MAX_CONCURRENT_CALLS": "3",
        # no runbooks: ingesting them at each start-up costs a minute of this test's CPU, and
        # how an instance keeps its index is the same with one instance as with two
        "VOICE_AGENT_KB_PATHS": "[]",
    }
    instances = [start_instance(name, tmp_path, env) for name in ("web-1", "web-2")]
    try:
        for instance in instances:
            wait_ready(instance)
        with nginx(tmp_path / "nginx", instances) as balancer:
            media = f"ws://{balancer}/twilio/media"

            # four calls at once through the balancer: both instances take some
            results = await asyncio.gather(*(dial(media, speech()[:1]) for _ in range(4)))
            for r in results:
                assert r.error is None and len(r.turns) == 1, r.to_dict()
                assert all(t.bot_audio for t in r.turns), r.to_dict()  # answered
            records = [external(store, r) for r in results]
            assert {c["instance"] for c in records} == {"web-1", "web-2"}
            for call in records:
                stored = store.get_call(call["id"])
                assert stored["status"] == "completed", stored
                indexes = [t["index"] for t in stored["turns"]]
                assert len(indexes) == len(set(indexes))  # every turn stored once
                assert any(t["user_text"] and t["bot_text"] for t in stored["turns"]), stored

            # the console, whichever instance answers, lists every instance's calls
            assert {c["id"] for c in records} <= await asyncio.to_thread(
                console_call_ids, f"http://{balancer}"
            )

            # ticket numbers stay unique when two instances create tickets at once
            numbers = await asyncio.to_thread(tickets_from_two_instances, postgres_url)
            assert len(numbers) == 20 and len(set(numbers)) == 20

            # SIGTERM one instance in the middle of a call, once the caller has had an answer
            long_call = asyncio.create_task(dial(media, speech() * 3, settle_secs=1.0))
            live = None
            for _ in range(600):
                live = next(
                    (c for c in store.list_calls(limit=100) if c["status"] == "in_progress"), None
                )
                turns = store.get_call(live["id"])["turns"] if live else []
                if any(t["user_text"] and t["bot_text"] for t in turns):
                    break
                await asyncio.sleep(0.1)
            assert live is not None, "the long call never started"
            stopped = next(i for i in instances if i.name == live["instance"])
            other = next(i for i in instances if i is not stopped)
            stopped.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{stopped.url}/readyz")
            assert ready.status_code == 503 and "draining" in ready.text

            # a call placed while it drains is taken by the other instance
            during = await dial(media, speech()[:1])
            assert during.error is None and during.turns[0].bot_audio, during.to_dict()
            assert external(store, during)["instance"] == other.name

            # six utterances outlive the 6 s drain: the caller is told, the record is whole
            finished = await long_call
            assert finished.error is None and finished.closed_by == "server", finished.to_dict()
            assert finished.turns and finished.turns[0].bot_audio
            code = await asyncio.to_thread(stopped.proc.wait, 60)
            assert code in (0, -signal.SIGTERM), stopped.log.read_text()[-3000:]
            record = store.get_call(live["id"])
            assert (record["status"], record["end_reason"]) == ("completed", "server_shutdown")
            assert "line has to close" in record["turns"][-1]["bot_text"], record
            assert any(t["user_text"] for t in record["turns"]), record
            assert calls_by_id(store)[live["id"]]["ended_at"] is not None
            log = stopped.log.read_text()
            assert "SIGTERM: draining" in log
            assert f"call={live['id']}" in log  # its lines carry the call id
    finally:
        for instance in instances:
            if instance.proc.poll() is None:
                instance.proc.kill()
                instance.proc.wait(timeout=10)

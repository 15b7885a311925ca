"""llama.cpp's own OpenAI-compatible server (``python -m llama_cpp.server``) with the small test
model, on loopback: the model server of the scale-out setting (``llm_backend=openai``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest


@pytest.fixture(scope="session")
def llama_server(small_engines, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("wb")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(small_engines.llm.model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "small",
            # several calls share it: queue their requests (the default cuts the running one off)
            "--interrupt_requests",
            "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,  # a pipe would fill up and stall the server
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server died: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start in 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()

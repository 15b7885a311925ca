"""The scale-out setting: the same LLM stage against a real OpenAI-compatible server
(llama.cpp's own server, started here on loopback with the small model)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from tests.conftest import small_settings
from voice_agent.call.pipeline import OpenAICompatibleLLMService, make_llm_service


@pytest.fixture(scope="module")
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


async def test_openai_backend_streams_a_reply_from_a_real_server(
    llama_server, small_engines, tmp_path
):
    settings = small_settings(
        tmp_path, llm_backend="openai", llm_base_url=llama_server, llm_model="small"
    )
    llm = make_llm_service(small_engines, settings, "You are an IT helpdesk agent. Be brief.")
    assert isinstance(llm, OpenAICompatibleLLMService)
    context = LLMContext(messages=[{"role": "user", "content": "My Wi-Fi keeps dropping."}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert len(text.split()) >= 3


def test_openai_backend_without_a_url_is_a_clear_error(small_engines, tmp_path):
    settings = small_settings(tmp_path, llm_backend="openai")
    with pytest.raises(ValueError, match="VOICE_AGENT_LLM_BASE_URL"):
        make_llm_service(small_engines, settings, "system")

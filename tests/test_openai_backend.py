"""The scale-out setting: the same LLM stage against a real OpenAI-compatible server
(llama.cpp's own server, started here on loopback with the small model)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI
from pipecat.frames.frames import ErrorFrame, LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from tests.conftest import serve, small_settings
from tests.postgres import free_port
from voice_agent.call.pipeline import OpenAICompatibleLLMService, make_llm_service
from voice_agent.llm.model_servers import COOLDOWN_SECS, ModelServerPool, endpoints


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


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def hanging_model_server(release: asyncio.Event) -> FastAPI:
    """Accepts the request and does not answer until released: a wedged model server."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions() -> dict:
        await release.wait()
        return {}

    return app


async def test_a_pool_skips_servers_that_refuse_or_hang(llama_server, small_engines, tmp_path):
    refused = closed_port_url()
    release = asyncio.Event()
    async with serve(hanging_model_server(release)) as hanging_host:
        hanging = f"http://{hanging_host}/v1"
        settings = small_settings(
            tmp_path,
            llm_backend="openai",
            llm_base_url=f"{refused}, {hanging}, {llama_server}",
            llm_model="small",
            llm_request_timeout_secs=1.5,
        )
        llm = make_llm_service(small_engines, settings, "You are an IT helpdesk agent. Be brief.")
        context = LLMContext(messages=[{"role": "user", "content": "My Wi-Fi keeps dropping."}])
        started = time.monotonic()
        down, up = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
        took = time.monotonic() - started
        pool = ModelServerPool.shared([refused, hanging, llama_server])
        assert pool.is_down(refused) and pool.is_down(hanging)
        assert not pool.is_down(llama_server)
        release.set()
    assert len("".join(f.text for f in down if isinstance(f, LLMTextFrame)).split()) >= 3
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    assert took < 20  # the hanging server cost its 1.5 s timeout


async def test_when_every_model_server_fails_the_turn_errors_at_once(tmp_path):
    refused = closed_port_url()
    settings = small_settings(tmp_path, llm_backend="openai", llm_base_url=refused)
    llm = make_llm_service(None, settings, "system")  # type: ignore[arg-type]
    context = LLMContext(messages=[{"role": "user", "content": "Hello?"}])
    down, up = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "Connection error" in errors[0].error  # the call's fallback
    assert not [f for f in down if isinstance(f, LLMTextFrame)]
    assert ModelServerPool.shared([refused]).is_down(refused)


def test_the_pool_takes_servers_in_turn_and_skips_one_that_failed():
    now = [0.0]
    pool = ModelServerPool(["a", "b", "c"], clock=lambda: now[0])
    assert [pool.order()[0] for _ in range(4)] == ["a", "b", "c", "a"]
    pool.failed("b")
    for _ in range(3):  # tried last while it cools down, wherever its turn would be
        assert pool.order()[-1] == "b"
    now[0] = COOLDOWN_SECS + 0.1  # back after its cool-down
    assert "b" in pool.order()[:2]
    assert endpoints(" http://x/v1 ,http://y/v1,") == ["http://x/v1", "http://y/v1"]

"""The scale-out setting: the same LLM stage against a real OpenAI-compatible server
(llama.cpp's own server, started here on loopback with the small model)."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from tests.conftest import small_settings
from voice_agent.call.pipeline import OpenAICompatibleLLMService, make_llm_service


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

"""The latency floor's instant model: an OpenAI-compatible server, as the OpenAI client sees it."""

from __future__ import annotations

import httpx
from openai import AsyncOpenAI

from tests.conftest import serve
from voice_agent.bench.instant_model import MODEL_ID, REPLY, create_instant_model_app

MESSAGES = [{"role": "user", "content": "My VPN won't connect."}]


async def test_it_streams_and_answers_the_openai_protocol():
    async with serve(create_instant_model_app()) as host:
        client = AsyncOpenAI(base_url=f"http://{host}/v1", api_key="none", max_retries=0)
        models = await client.models.list()
        assert [m.id for m in models.data] == [MODEL_ID]

        stream = await client.chat.completions.create(
            model=MODEL_ID, messages=MESSAGES, stream=True, tools=[]
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert "".join(pieces) == REPLY and len(pieces) > 3  # word by word, like a model

        whole = await client.chat.completions.create(model=MODEL_ID, messages=MESSAGES)
        assert whole.choices[0].message.content == REPLY
        assert whole.choices[0].finish_reason == "stop"


async def test_a_request_without_messages_is_refused_clearly():
    async with serve(create_instant_model_app()) as host:
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            not_json = await http.post("/v1/chat/completions", content=b"{nope")
            no_messages = await http.post("/v1/chat/completions", json={"model": MODEL_ID})
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
    assert no_messages.status_code == 400
    assert "messages" in no_messages.json()["error"]["message"]

"""The in-process llama.cpp service inside pipecat: streaming, tool calls, cancellation.

Real llama.cpp with the 135M model (mechanics only). The tool-call detection test uses a fake
engine that subclasses the real one and replays a scripted model output.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    FunctionCallResultProperties,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.tests.utils import run_test

from voice_agent.llm.service import LlamaEngine, LocalLLMService

TICKET = FunctionSchema(
    name="create_ticket",
    description="Open a helpdesk ticket",
    properties={
        "summary": {"type": "string", "description": "one line"},
        "priority": {"type": "string", "enum": ["P1", "P2", "P3", "P4"]},
    },
    required=["summary", "priority"],
)


def service(engine, **kw) -> LocalLLMService:
    return LocalLLMService(
        engine,
        max_tokens=kw.pop("max_tokens", 24),
        temperature=0.0,
        seed=1,
        system_instruction="You are an IT helpdesk agent. Answer in one sentence.",
        function_calling=kw.pop("function_calling", True),
        **kw,
    )


async def test_streams_text_frames_and_reports_prompt_tokens(small_engines):
    context = LLMContext(messages=[{"role": "user", "content": "My printer is jammed."}])
    down, _ = await run_test(
        service(small_engines.llm),
        frames_to_send=[LLMContextFrame(context)],
        pipeline_params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
    )
    kinds = [type(f) for f in down]
    assert kinds.index(LLMFullResponseStartFrame) < kinds.index(LLMFullResponseEndFrame)
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert len(text.split()) >= 3
    usage = [
        d.value
        for f in down
        if isinstance(f, MetricsFrame)
        for d in f.data
        if isinstance(d, LLMUsageMetricsData)
    ]
    assert usage and 20 < usage[0].prompt_tokens < 120
    assert 0 < usage[0].completion_tokens <= 24


async def test_required_tool_call_is_schema_valid(small_engines):
    calls: list[dict] = []

    async def create_ticket(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback(
            {"number": "INC0001234"}, properties=FunctionCallResultProperties(run_llm=False)
        )

    llm = service(small_engines.llm)
    llm.register_function("create_ticket", create_ticket)
    context = LLMContext(
        messages=[{"role": "user", "content": "Outlook crashes, please open a ticket."}],
        tools=ToolsSchema(standard_tools=[TICKET]),
        tool_choice="required",
    )
    await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    assert len(calls) == 1
    assert set(calls[0]) == {"summary", "priority"}
    assert calls[0]["priority"] in {"P1", "P2", "P3", "P4"}
    assert isinstance(calls[0]["summary"], str) and len(calls[0]["summary"]) <= 200


async def test_closing_the_stream_stops_generation_at_once(small_engines):
    engine = small_engines.llm
    prompt = engine.render([{"role": "user", "content": "Write a very long story about VPNs."}])
    stream = engine.stream(prompt, max_tokens=2000, temperature=0.8)
    pieces = []
    async with aclosing(stream):
        async for piece in stream:
            pieces.append(piece)
            if len(pieces) == 3:
                break
    assert len(pieces) == 3
    # the worker thread must let go of the model: a new generation starts right away
    started = time.perf_counter()
    again = engine.stream(prompt, max_tokens=1, temperature=0.0)
    async with aclosing(again):
        async for _ in again:
            break
    assert time.perf_counter() - started < 2.0


class ScriptedEngine(LlamaEngine):
    """The real engine's interface replaying a fixed model output (no weights needed)."""

    def __init__(self, free_text: list[str], constrained: list[str]) -> None:
        self.name = "scripted"
        self.free_text = free_text
        self.constrained = constrained
        self.prompts: list[str] = []

    def render(self, messages, tools=None) -> str:
        return "PROMPT"

    def count_tokens(self, text: str) -> int:
        return 7

    def grammar_for(self, schema):
        return schema

    async def stream(self, prompt, *, max_tokens, temperature, seed=None, grammar=None, stop=None):
        self.prompts.append(prompt)
        for piece in self.constrained if grammar is not None else self.free_text:
            await asyncio.sleep(0)
            yield piece


async def test_auto_mode_switches_to_a_constrained_call_when_the_model_starts_one():
    engine = ScriptedEngine(
        free_text=["  <tool", "_call>", '{"na', "me"],
        constrained=[
            '{"name": "create_ticket", ',
            '"arguments": {"summary": "vpn", "priority": "P3"}}',
        ],
    )
    calls = []

    async def create_ticket(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({}, properties=FunctionCallResultProperties(run_llm=False))

    llm = service(engine)
    llm.register_function("create_ticket", create_ticket)
    context = LLMContext(
        messages=[{"role": "user", "content": "vpn down"}],
        tools=ToolsSchema(standard_tools=[TICKET]),
    )
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    assert calls == [{"summary": "vpn", "priority": "P3"}]
    assert engine.prompts == ["PROMPT", "PROMPT<tool_call>\n"]
    assert not [f for f in down if isinstance(f, LLMTextFrame)]  # nothing of the call is spoken


async def test_auto_mode_streams_plain_text_untouched():
    engine = ScriptedEngine(free_text=["Sure", ", restart", " the router."], constrained=[])
    llm = service(engine)
    context = LLMContext(
        messages=[{"role": "user", "content": "wifi"}],
        tools=ToolsSchema(standard_tools=[TICKET]),
    )
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)) == (
        "Sure, restart the router."
    )


def test_a_prefilled_prompt_leaves_only_the_rest_to_read(small_engines):
    engine = small_engines.llm
    said_so_far = [
        {"role": "system", "content": "You are an IT helpdesk agent."},
        {"role": "assistant", "content": "Hi, you've reached the helpdesk. Who is calling?"},
    ]
    head = engine.render(said_so_far)
    whole = engine.render([*said_so_far, {"role": "user", "content": "Ann here, my VPN drops."}])
    assert engine.prefill(engine.render([{"role": "user", "content": "Something else."}]))
    assert engine.cached_tokens(whole) < 10  # another prompt in the cache: it all is to read
    assert engine.prefill(head)
    # all of it but the assistant header the head ends on
    assert engine.cached_tokens(whole) >= engine.count_tokens(head) - 3


async def test_a_prefill_gives_way_to_a_generation_under_way(small_engines):
    engine = small_engines.llm
    prompt = engine.render([{"role": "user", "content": "Write a very long story about VPNs."}])
    stream = engine.stream(prompt, max_tokens=2000, temperature=0.8)
    async with aclosing(stream):
        async for _ in stream:  # generating: the model is taken
            other = engine.render([{"role": "user", "content": "Hi."}])
            started = time.perf_counter()
            assert not engine.prefill(other, wait=False)
            assert time.perf_counter() - started < 0.1  # it does not wait for the model
            break


async def test_the_service_reads_ahead_what_it_will_send_next(small_engines, monkeypatch):
    """``prefill`` renders the context as a generation will (system prompt, trimmed history):
    the caller's next turn leaves only their words and the turn's note for the model to read."""
    engine = small_engines.llm
    greeting = {"role": "assistant", "content": "Hi, you've reached the helpdesk. Who is calling?"}
    unread: list[int] = []
    real_stream = engine.stream

    def stream(prompt, **kw):
        unread.append(engine.count_tokens(prompt) - engine.cached_tokens(prompt))
        return real_stream(prompt, **kw)

    monkeypatch.setattr(engine, "stream", stream)

    async def answer(read_ahead: bool) -> int:
        llm = service(engine, function_calling=False, turn_note=lambda: "Ask for their name.")
        context = LLMContext(messages=[greeting])
        engine.prefill(engine.render([{"role": "user", "content": "Something else."}]))
        if read_ahead:
            assert await llm.prefill(context)
        context.add_message({"role": "user", "content": "Hello, can you help me?"})
        await run_test(llm, frames_to_send=[LLMContextFrame(context)])
        return unread[-1]

    cold, read_ahead = await answer(False), await answer(True)
    words_and_note = engine.count_tokens(
        engine.render(
            [
                {"role": "user", "content": "Hello, can you help me?"},
                {"role": "system", "content": "Ask for their name."},
            ]
        )
    )
    assert read_ahead <= words_and_note + 3 < cold, (read_ahead, words_and_note, cold)

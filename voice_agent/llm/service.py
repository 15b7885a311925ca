"""Language model: llama.cpp in process (default) or any OpenAI-compatible server (scale-out).

:class:`LlamaEngine` loads one GGUF per process. Every prompt starts with the same system prompt,
and llama.cpp reuses the longest common token prefix with the previous evaluation, so the system
prompt's KV stays warm across turns and calls (it is evaluated once at start-up by ``warm``).
Generation runs in a worker thread and streams tokens back to the event loop; closing the stream
(barge-in cancels the LLM task) stops generation at the next token.

:class:`LocalLLMService` plugs the engine into pipecat's OpenAI LLM service: pipecat keeps doing
context handling, function-call plumbing, metrics and interruptions, while the chunks come from
llama.cpp instead of HTTP. Tool calls: with ``tool_choice="auto"`` the model writes freely; if it
starts a ``<tool_call>``, generation restarts (the prefix is cached) with a grammar compiled from
the tools' JSON schemas, so the call is always valid JSON that matches a tool's parameters.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

from loguru import logger
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.completion_usage import CompletionUsage
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.llm.prompt import (
    TOOL_CALL_OPEN,
    parse_tool_call,
    to_template_messages,
    tool_call_schema,
    tool_choice_target,
)
from voice_agent.llm.reply_guard import ReplyGuard
from voice_agent.settings import Settings


class LLMGenerationError(VoiceAgentError, RuntimeError):
    code = ErrorCode.LLM_FAILED


class LlamaEngine:
    """One GGUF model loaded with llama-cpp-python, shared by every call in the process."""

    def __init__(
        self,
        model_path: Path,
        *,
        context_tokens: int = 2048,
        threads: int = 2,
        gpu_layers: int = 0,
        seed: int = 7,
    ) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.perf_counter()
        self.model_path = Path(model_path)
        self.name = self.model_path.stem
        self._llm = Llama(
            model_path=str(self.model_path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=gpu_layers,
            seed=seed,
            verbose=False,
        )
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMGenerationError(
                f"{self.model_path} has no chat template; use an instruct model"
            )
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()),
        )
        self.context_tokens = context_tokens
        self._lock = threading.Lock()  # one llama context: one generation at a time
        self._grammars: dict[str, Any] = {}
        self.load_secs = time.perf_counter() - started
        logger.info(f"llama.cpp loaded {self.model_path.name} in {self.load_secs:.1f}s")

    @classmethod
    def from_settings(cls, model_path: Path, settings: Settings) -> LlamaEngine:
        """The model at ``model_path`` with this deployment's context, threads, GPU layers, seed."""
        return cls(
            model_path,
            context_tokens=settings.llm_context_tokens,
            threads=settings.llm_threads,
            gpu_layers=settings.llm_gpu_layers,
            seed=settings.llm_seed,
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def render(self, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> str:
        # plain role/content dicts: what llama-cpp's chat formatter reads from its TypedDicts
        template_messages = cast(list[Any], to_template_messages(messages, tools))
        return self._formatter(messages=template_messages).prompt

    def _tokens(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._tokens(text))

    def cached_tokens(self, prompt: str) -> int:
        """How many of the prompt's leading tokens the model has read already (its cache)."""
        from llama_cpp import Llama

        held = self._llm.input_ids[: self._llm.n_tokens].tolist()
        return Llama.longest_token_prefix(self._tokens(prompt), held)

    def warm(self, system_prompt: str) -> float:
        """Evaluate the system prompt once so the first caller does not pay for it."""
        started = time.perf_counter()
        self.prefill(self.render([{"role": "system", "content": system_prompt}]))
        return time.perf_counter() - started

    def prefill(self, prompt: str, *, wait: bool = True) -> bool:
        """Evaluate ``prompt`` into the model's cache without generating: a later prompt that
        starts with it only has the rest to read. ``wait=False`` gives way to a generation
        under way (returns False, nothing done)."""
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            self._llm.create_completion(prompt, max_tokens=1, temperature=0.0)
        finally:
            self._lock.release()
        return True

    def grammar_for(self, schema: dict[str, Any]):
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    async def stream(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None = None,
        grammar: Any = None,
        stop: list[str] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Stream text pieces; generation runs in a thread and stops when the stream is closed."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # loop closed: the call is gone, nothing to deliver to
                cancelled.set()

        def worker() -> None:
            try:
                with self._lock:
                    if cancelled.is_set():
                        return
                    pieces = self._llm.create_completion(
                        prompt,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        seed=seed,
                        stream=True,
                        grammar=grammar,
                        stop=stop or [],
                    )
                    for chunk in cast(Iterator[dict[str, Any]], pieces):
                        if cancelled.is_set():
                            break
                        emit("text", chunk["choices"][0]["text"])
            except Exception as e:
                emit("error", e)
            finally:
                emit("end", None)

        worker_future = loop.run_in_executor(None, worker)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    if value:
                        yield value
                elif kind == "error":
                    raise LLMGenerationError(f"llama.cpp generation failed: {value}") from value
                else:
                    break
        finally:
            cancelled.set()
            if worker_future.done():
                worker_future.result()


def with_turn_note(messages: list[dict], turn_note: Callable[[], str | None] | None) -> list[dict]:
    """Add this turn's note (e.g. the runbook to answer from) after the caller's words.

    It goes last, for this generation only: the history before it, and so llama.cpp's cached
    prefix, stays the same from turn to turn.
    """
    note = turn_note() if turn_note else None
    return [*messages, {"role": "system", "content": note}] if note else messages


def trim_history(messages: list[dict], keep: int) -> list[dict]:
    """Leading system messages plus at most ``keep`` others: a bounded prompt every turn.

    When the history overflows it is cut back to the newest ``keep // 2`` messages, not by one
    message per turn: llama.cpp reuses the KV of the longest prefix shared with the previous
    prompt, and a window sliding every turn would change that prefix right after the system
    prompt each time (measured: first token 0.3 s with a stable prefix, 2.3 s after a slide).
    """
    head = 0
    while head < len(messages) and messages[head].get("role") in ("system", "developer"):
        head += 1
    rest = messages[head:]
    if len(rest) > keep:
        overflow_turns = (len(rest) - keep - 1) // max(keep // 2, 1) + 1
        rest = rest[overflow_turns * max(keep // 2, 1) :]
        while rest and rest[0].get("role") in ("tool", "assistant"):
            rest = rest[1:]  # start on the caller's words, never on an orphaned tool result
    return messages[:head] + rest


def _chunk(delta: ChoiceDelta | None = None, usage: CompletionUsage | None = None, model="local"):
    return ChatCompletionChunk(
        id="local",
        created=int(time.time()),
        model=model,
        object="chat.completion.chunk",
        choices=[Choice(index=0, delta=delta, finish_reason=None)] if delta else [],
        usage=usage,
    )


class LocalLLMService(OpenAILLMService):
    """Pipecat LLM service whose completions come from the in-process :class:`LlamaEngine`."""

    def __init__(
        self,
        engine: LlamaEngine,
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        system_instruction: str | None = None,
        max_history_messages: int = 8,
        turn_note: Callable[[], str | None] | None = None,
        function_calling: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(
            api_key="local",
            settings=OpenAILLMService.Settings(
                model=engine.name, system_instruction=system_instruction
            ),
            **kwargs,
        )
        self._engine = engine
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._seed = seed
        self._max_history = max_history_messages
        self._turn_note = turn_note
        self._function_calling = function_calling

    def create_client(self, *args, **kwargs):  # no HTTP client: generation is in process
        return None

    async def get_chat_completions(self, context: LLMContext):
        messages, tools, mode, only = await self._request(context)
        return self._completion_chunks(with_turn_note(messages, self._turn_note), tools, mode, only)

    async def prefill(self, context: LLMContext) -> bool:
        """Read the conversation so far into the model's cache, when the model is free.

        Called when the agent has finished a turn (``on_assistant_turn_stopped``): while it
        speaks and the caller answers, the model reads what it has not read yet (the greeting
        and the flow's task on a call's first turn, an answer the flow spoke itself), so that
        the caller's next turn leaves only their words and the turn's note to read. False
        when skipped because a generation was under way.
        """
        messages, tools, _, _ = await self._request(context)
        prompt = await asyncio.to_thread(self._engine.render, messages, tools)
        return await asyncio.to_thread(self._engine.prefill, prompt, wait=False)

    async def _request(self, context: LLMContext):
        """The context as this service sends it to the model: the history trimmed, the tools
        offered (none unless function calling is on), how they must be used. The turn's note
        is added by the caller."""
        params = await self.get_llm_adapter().get_llm_invocation_params(
            context,
            system_instruction=getattr(self._settings, "system_instruction", None) or None,
            convert_developer_to_user=False,
        )
        messages = trim_history(
            list(cast(list[dict[str, Any]], params["messages"])), self._max_history
        )
        offered = params.get("tools")
        tools = offered if isinstance(offered, list) and offered else None
        mode, only = tool_choice_target(params.get("tool_choice"))
        if mode == "none" or not self._function_calling:
            tools = None
        return messages, tools, mode, only

    async def _completion_chunks(self, messages, tools, mode, only):
        engine = self._engine
        prompt = await asyncio.to_thread(engine.render, messages, tools)
        prompt_tokens = await asyncio.to_thread(engine.count_tokens, prompt)
        completion_tokens = 0
        if tools and mode == "required":
            call = await self._constrained_tool_call(prompt, tools, only)
            completion_tokens += call.pop("_tokens")
            yield self._tool_chunk(call)
        else:
            pending = ""  # held back until we know whether the reply is a tool call
            decided = tools is None
            wants_tool = False
            guard = ReplyGuard()  # what may be spoken, sentence by sentence
            stream = engine.stream(
                prompt,
                max_tokens=self._max_tokens,
                temperature=self._temperature,
                seed=self._seed,
            )
            async with aclosing(stream):
                async for piece in stream:
                    completion_tokens += 1
                    if not decided:
                        pending += piece
                        head = pending.lstrip()
                        if head.startswith(TOOL_CALL_OPEN):
                            wants_tool = True  # regenerate the call under the grammar
                            break
                        if len(head) < len(TOOL_CALL_OPEN) and TOOL_CALL_OPEN.startswith(head):
                            continue
                        decided, piece = True, pending
                    spoken = guard.feed(piece)
                    if spoken:
                        yield _chunk(ChoiceDelta(content=spoken), model=engine.name)
                    if guard.done:
                        break  # enough said: stop generating
            if wants_tool:
                call = await self._constrained_tool_call(prompt, tools, None)
                completion_tokens += call.pop("_tokens")
                yield self._tool_chunk(call)
            else:
                if not decided:
                    guard.feed(pending)
                rest = guard.close()
                if rest:
                    yield _chunk(ChoiceDelta(content=rest), model=engine.name)
        yield _chunk(
            usage=CompletionUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            model=engine.name,
        )

    async def _constrained_tool_call(self, prompt: str, tools, only: str | None) -> dict:
        grammar = await asyncio.to_thread(self._engine.grammar_for, tool_call_schema(tools, only))
        text = ""
        tokens = 0
        stream = self._engine.stream(
            prompt + TOOL_CALL_OPEN + "\n", max_tokens=256, temperature=0.0, grammar=grammar
        )
        async with aclosing(stream):
            async for piece in stream:
                text += piece
                tokens += 1
        call = parse_tool_call(text)
        call["_tokens"] = tokens
        return call

    def _tool_chunk(self, call: dict) -> ChatCompletionChunk:
        return _chunk(
            ChoiceDelta(
                tool_calls=[
                    ChoiceDeltaToolCall(
                        index=0,
                        id=f"call_{uuid.uuid4().hex[:12]}",
                        type="function",
                        function=ChoiceDeltaToolCallFunction(
                            name=call["name"], arguments=json.dumps(call["arguments"])
                        ),
                    )
                ]
            ),
            model=self._engine.name,
        )

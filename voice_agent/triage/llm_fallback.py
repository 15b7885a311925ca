"""Ask the language model for a category and priority when the classifier is unsure.

The answer is JSON constrained by a schema: a grammar for the in-process llama.cpp engine, or
``response_format: json_schema`` for an OpenAI-compatible server, so it is always one of the
taxonomy's names. The prompt is kept short on purpose: on two CPU cores the 1.5B model costs about
7 ms per prompt token. Its fixed part (instructions and category glosses) comes first and the
caller's words last, so llama.cpp reuses the fixed part's KV from one triage to the next.

Every failure (timeout, server error, unparsable text) raises :class:`TriageLLMError`; the
caller then keeps the classifier's answer.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.triage.taxonomy import Taxonomy

MAX_TOKENS = 32
CALLER_TEXT_CHARS = 300


class TriageLLMError(VoiceAgentError, RuntimeError):
    code = ErrorCode.TRIAGE_LLM_FAILED


def answer_schema(categories: list[str], priorities: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": list(categories)},
            "priority": {"type": "string", "enum": list(priorities)},
        },
        "required": ["category", "priority"],
        "additionalProperties": False,
    }


def instructions(taxonomy: Taxonomy, categories: list[str] | None = None) -> str:
    """The fixed part of the prompt: categories with their glosses, priorities in a few words."""
    names = categories or taxonomy.category_names
    lines = ["Triage this IT helpdesk call. Categories:"]
    lines += [f"- {n}: {taxonomy.category(n).gloss}" for n in names]
    lines.append("Priorities:")
    lines += [f"- {p.name}: {_short(p.description)}" for p in taxonomy.priorities]
    lines.append('Reply with JSON: {"category": ..., "priority": ...}')
    return "\n".join(lines)


def _short(description: str, words: int = 12) -> str:
    head = description.split(";")[0].split(". ")[0]
    parts = head.split()
    return " ".join(parts[:words]) + ("..." if len(parts) > words else "")


def parse_answer(text: str, categories: list[str], priorities: list[str]) -> tuple[str, str]:
    """The JSON object in ``text``; its names must be in the taxonomy."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise TriageLLMError(f"no JSON object in the model's answer: {text[:120]!r}")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as e:
        raise TriageLLMError(f"the model's answer is not valid JSON: {text[:120]!r}") from e
    category, priority = data.get("category"), data.get("priority")
    if category not in categories or priority not in priorities:
        raise TriageLLMError(f"the model answered names outside the taxonomy: {data}")
    return category, priority


async def ask_local(
    engine: Any,
    taxonomy: Taxonomy,
    text: str,
    *,
    candidates: list[str] | None = None,
    timeout_secs: float = 6.0,
) -> tuple[str, str]:
    """Constrained generation with the in-process :class:`~voice_agent.llm.service.LlamaEngine`."""
    categories = candidates or taxonomy.category_names
    priorities = taxonomy.priority_names
    messages = [
        {"role": "system", "content": instructions(taxonomy, candidates)},
        {"role": "user", "content": text[:CALLER_TEXT_CHARS]},
    ]

    async def generate() -> str:
        prompt = await asyncio.to_thread(engine.render, messages)
        grammar = await asyncio.to_thread(engine.grammar_for, answer_schema(categories, priorities))
        out = ""
        stream = engine.stream(prompt, max_tokens=MAX_TOKENS, temperature=0.0, grammar=grammar)
        async with aclosing(stream):
            async for piece in stream:
                out += piece
        return out

    try:
        answer = await asyncio.wait_for(generate(), timeout_secs)
    except TimeoutError as e:
        raise TriageLLMError(f"the model took longer than {timeout_secs:.1f}s") from e
    except TriageLLMError:
        raise
    except Exception as e:  # noqa: BLE001 - any engine failure means: keep the classifier's answer
        raise TriageLLMError(f"local model failed: {e}") from e
    return parse_answer(answer, categories, priorities)


async def ask_openai(
    base_url: str,
    model: str,
    taxonomy: Taxonomy,
    text: str,
    *,
    api_key: str = "not-needed",
    candidates: list[str] | None = None,
    timeout_secs: float = 6.0,
) -> tuple[str, str]:
    """Chat completion with ``response_format: json_schema`` from an OpenAI-compatible server."""
    import httpx

    categories = candidates or taxonomy.category_names
    priorities = taxonomy.priority_names
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": instructions(taxonomy, candidates)},
            {"role": "user", "content": text[:CALLER_TEXT_CHARS]},
        ],
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "triage",
                "strict": True,
                "schema": answer_schema(categories, priorities),
            },
        },
    }
    url = base_url.rstrip("/") + "/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=timeout_secs) as client:
            response = await client.post(
                url, json=body, headers={"Authorization": f"Bearer {api_key}"}
            )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"] or ""
    except httpx.TimeoutException as e:
        raise TriageLLMError(f"{url} took longer than {timeout_secs:.1f}s") from e
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
        raise TriageLLMError(f"{url} failed: {e}") from e
    return parse_answer(content, categories, priorities)

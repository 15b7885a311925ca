"""Turning an OpenAI-style chat (messages + tools) into a prompt for a local chat model.

Pure functions, no model needed: tested with text alone.

Tool calls use the ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` convention that
Qwen2.5 is trained on. Tools are described to the model in a compact one-line-per-function form
rather than full JSON schemas: on a 2-core CPU every 100 prompt tokens cost the 1.5B model about a
second. The schema is enforced where it matters, when the model writes the call: generation of the
call is constrained by a grammar built from the functions' JSON schemas.
"""

from __future__ import annotations

import json
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return str(content)


def _param_summary(name: str, schema: dict[str, Any], required: set[str]) -> str:
    kind = schema.get("type", "any")
    if "enum" in schema:
        kind = "|".join(str(v) for v in schema["enum"])
    optional = "" if name in required else "?"
    return f"{name}{optional}: {kind}"


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """A compact, token-lean description of OpenAI-format tools for the system prompt."""
    lines = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {}
        required = set(params.get("required", []))
        args = ", ".join(
            _param_summary(n, s, required) for n, s in (params.get("properties") or {}).items()
        )
        desc = (fn.get("description") or "").strip()
        lines.append(f"- {fn['name']}({args}): {desc}".rstrip(": "))
    return (
        "To call a function, reply with only "
        f'{TOOL_CALL_OPEN}{{"name": ..., "arguments": {{...}}}}{TOOL_CALL_CLOSE}. Functions:\n'
        + "\n".join(lines)
    )


def to_template_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> list[dict[str, str]]:
    """Flatten OpenAI messages to plain ``{"role", "content"}`` pairs any chat template renders.

    ``developer`` becomes ``system``; assistant tool calls and tool results become text in the
    ``<tool_call>`` / ``<tool_response>`` convention; the tool list joins the first system message
    so that the prompt's prefix (and the model's cached KV for it) is stable across turns.
    """
    out: list[dict[str, str]] = []
    for msg in messages:
        role = msg.get("role", "user")
        text = _text_of(msg.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and msg.get("tool_calls"):
            calls = [
                TOOL_CALL_OPEN
                + json.dumps(
                    {
                        "name": call["function"]["name"],
                        "arguments": _loads_or_raw(call["function"].get("arguments")),
                    }
                )
                + TOOL_CALL_CLOSE
                for call in msg["tool_calls"]
            ]
            text = (text + "\n" if text else "") + "\n".join(calls)
        elif role == "tool":
            role = "user"
            text = f"<tool_response>\n{text}\n</tool_response>"
        if not text:
            continue
        out.append({"role": role, "content": text})
    if tools:
        tool_text = describe_tools(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + tool_text}
        else:
            out.insert(0, {"role": "system", "content": tool_text})
    return out


def _loads_or_raw(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments or {}


def tool_call_schema(tools: list[dict[str, Any]], only: str | None = None) -> dict[str, Any]:
    """JSON schema for ``{"name": <one of the tools>, "arguments": <that tool's parameters>}``."""
    variants = []
    for tool in tools:
        fn = tool.get("function", tool)
        if only and fn["name"] != only:
            continue
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": bound_strings(params)},
                "required": ["name", "arguments"],
            }
        )
    if not variants:
        raise ValueError(f"no tool named {only!r}" if only else "no tools to call")
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


def bound_strings(schema: dict[str, Any], max_length: int = 200) -> dict[str, Any]:
    """Give every unbounded string a maxLength, so a token cap can never truncate the JSON."""
    schema = dict(schema)
    if schema.get("type") == "string" and "enum" not in schema and "maxLength" not in schema:
        schema["maxLength"] = max_length
    if isinstance(schema.get("properties"), dict):
        schema["properties"] = {
            k: bound_strings(v, max_length) for k, v in schema["properties"].items()
        }
    if isinstance(schema.get("items"), dict):
        schema["items"] = bound_strings(schema["items"], max_length)
    return schema


def parse_tool_call(text: str) -> dict[str, Any]:
    """Parse the JSON of one tool call (what follows ``<tool_call>``)."""
    body = text.strip()
    if body.endswith(TOOL_CALL_CLOSE):
        body = body[: -len(TOOL_CALL_CLOSE)].strip()
    call = json.loads(body)
    if not isinstance(call, dict) or "name" not in call:
        raise ValueError(f"not a tool call: {text!r}")
    args = call.get("arguments") or {}
    if not isinstance(args, dict):
        raise ValueError(f"tool call arguments are not an object: {text!r}")
    return {"name": call["name"], "arguments": args}


def tool_choice_target(tool_choice: Any) -> tuple[str, str | None]:
    """Normalise OpenAI ``tool_choice`` to (mode, function_name): auto | none | required."""
    if tool_choice in (None, "auto") or tool_choice is not None and not tool_choice:
        return "auto", None
    if tool_choice == "none":
        return "none", None
    if tool_choice == "required":
        return "required", None
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        return "required", name
    return "auto", None

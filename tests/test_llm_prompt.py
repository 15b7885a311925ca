"""Prompt rendering and tool-call handling for local chat models: pure text, no model."""

import json

import pytest

from voice_agent.llm.prompt import (
    bound_strings,
    describe_tools,
    parse_tool_call,
    to_template_messages,
    tool_call_schema,
    tool_choice_target,
)
from voice_agent.llm.service import trim_history

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "create_ticket",
            "description": "Open a helpdesk ticket",
            "parameters": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "priority": {"type": "string", "enum": ["P1", "P2", "P3", "P4"]},
                },
                "required": ["summary"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "transfer_to_human", "description": "Hand the call to a person"},
    },
]


def test_tools_are_described_compactly_in_the_first_system_message():
    msgs = to_template_messages(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], TOOLS
    )
    assert msgs[0]["role"] == "system"
    assert msgs[0]["content"].startswith("Be brief.")
    assert (
        "create_ticket(summary: string, priority?: P1|P2|P3|P4): Open a helpdesk ticket"
        in (msgs[0]["content"])
    )
    assert "transfer_to_human(): Hand the call to a person" in msgs[0]["content"]
    # far shorter than the JSON schemas themselves
    assert len(describe_tools(TOOLS)) < len(json.dumps(TOOLS))


def test_developer_tool_calls_and_results_flatten_to_plain_roles():
    msgs = to_template_messages(
        [
            {"role": "developer", "content": "Ask for the name."},
            {"role": "user", "content": [{"type": "text", "text": "my vpn"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "create_ticket", "arguments": '{"summary": "vpn"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"number": "INC0001234"}'},
            {"role": "assistant", "content": ""},
        ],
        None,
    )
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "my vpn"
    call = msgs[2]["content"]
    assert call.startswith("<tool_call>") and call.endswith("</tool_call>")
    assert json.loads(call[len("<tool_call>") : -len("</tool_call>")]) == {
        "name": "create_ticket",
        "arguments": {"summary": "vpn"},
    }
    assert msgs[3]["content"] == '<tool_response>\n{"number": "INC0001234"}\n</tool_response>'


def test_tool_call_schema_bounds_strings_and_selects_one_tool():
    schema = tool_call_schema(TOOLS)
    assert len(schema["oneOf"]) == 2
    args = schema["oneOf"][0]["properties"]["arguments"]
    assert args["properties"]["summary"]["maxLength"] == 200
    assert "maxLength" not in args["properties"]["priority"]  # enums are bounded already
    only = tool_call_schema(TOOLS, only="transfer_to_human")
    assert only["properties"]["name"] == {"const": "transfer_to_human"}
    with pytest.raises(ValueError, match="no tool named 'nope'"):
        tool_call_schema(TOOLS, only="nope")


def test_bound_strings_reaches_nested_arrays():
    schema = bound_strings({"type": "array", "items": {"type": "string"}}, max_length=5)
    assert schema["items"]["maxLength"] == 5


def test_parse_tool_call_accepts_closing_tag_and_rejects_garbage():
    call = parse_tool_call('{"name": "create_ticket", "arguments": {"summary": "x"}}\n</tool_call>')
    assert call == {"name": "create_ticket", "arguments": {"summary": "x"}}
    assert parse_tool_call('{"name": "transfer_to_human"}')["arguments"] == {}
    with pytest.raises(ValueError):
        parse_tool_call('{"name": "x", "arguments": [1]}')
    with pytest.raises(json.JSONDecodeError):
        parse_tool_call("not json")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ("auto", None)),
        ("auto", ("auto", None)),
        ("none", ("none", None)),
        ("required", ("required", None)),
        ({"type": "function", "function": {"name": "f"}}, ("required", "f")),
    ],
)
def test_tool_choice_normalisation(choice, expected):
    assert tool_choice_target(choice) == expected


def test_history_is_trimmed_in_steps_without_orphaning_tool_results():
    system = [{"role": "system", "content": "s"}]
    turns = [
        {"role": "user", "content": "1"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]},
        {"role": "tool", "content": "r"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "3"},
    ]
    assert trim_history(system + turns, 10) == system + turns
    trimmed = trim_history(system + turns, 4)
    assert trimmed[0] == system[0]
    assert [m["content"] for m in trimmed[1:]] == ["3"]


def test_trimming_keeps_a_stable_prefix_between_cuts():
    system = [{"role": "system", "content": "s"}]
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": str(i)} for i in range(21)]
    cuts = 0
    previous = None
    for n in range(1, len(chat) + 1):
        prompt = trim_history(system + chat[:n], 8)
        assert len(prompt) - 1 <= 8 and prompt[1]["role"] == "user"
        if previous is not None and prompt[: len(previous)] != previous:
            cuts += 1
        previous = prompt
    assert cuts == 4  # at 9, 13, 17 and 21 messages, not at every turn


def test_urls_paths_and_code_are_not_read_aloud():
    from voice_agent.speech.speakable import speakable

    said = speakable(
        "Open https://passwords.example.com/reset?x=1 and run `ipconfig /flushdns`, "
        r"then check C:\Users\me\AppData\Local\Temp or /var/log/syslog/today please."
    )
    assert "http" not in said and "example.com" not in said
    assert "ipconfig" not in said and "\\" not in said and "/var/log" not in said
    assert said.startswith("Open the link I'll send you and run")

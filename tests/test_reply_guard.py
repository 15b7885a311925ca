"""What the model may say on a call, enforced in code: replies as Qwen2.5-Coder-1.5B wrote them
for caller problems (numbered lists, menu paths, "contact the IT helpdesk", a ticket the caller
should open themselves), streamed in small pieces the way tokens arrive."""

from __future__ import annotations

import pytest

from voice_agent.llm.reply_guard import OFFER, ReplyGuard, allowed


def spoken(reply: str, piece: int = 3) -> str:
    guard = ReplyGuard()
    out = "".join(guard.feed(reply[i : i + piece]) for i in range(0, len(reply), piece))
    return (out + guard.close()).strip()


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            "I'm sorry to hear that. Please try restarting Outlook. If the problem persists, "
            "please contact the IT helpdesk for further assistance.",
            "I'm sorry to hear that. Please try restarting Outlook.",
        ),
        (
            "Sure! Here are the steps:\n1. Open File > Options > Trust Center.\n2. Click Add-ins.",
            "Sure!",
        ),
        ("You can open a ticket on the self-service portal. Reach out to IT support.", OFFER),
        ("Yes, I can hear you. How can I help? Also, have a great day. Bye.",
         "Yes, I can hear you. How can I help?"),  # two sentences at most
        ("I understand, that sounds frustrating and", "I understand, that sounds frustrating and"),
    ],
)  # fmt: skip
def test_what_the_model_wrote_and_what_the_caller_hears(reply, said):
    assert spoken(reply) == said


def test_a_cut_off_last_sentence_is_dropped_when_something_was_said():
    assert spoken("Restart the laptop. Then check that the") == "Restart the laptop."


def test_the_guard_stops_once_enough_was_said():
    guard = ReplyGuard()
    guard.feed("One. Two. ")
    assert guard.done and guard.feed("Three. Four. ") == ""


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("Please contact your system administrator.", False),
        ("Get in touch with the service desk.", False),
        ("You should submit a support ticket.", False),
        ("Go to Settings > Accounts > Email.", False),
        ("- Restart the router", False),
        # as an order, after the new system prompt (measured 2026-12-01, 3 of 10 replies)
        ("If they still don't work, open a ticket for a technician.", False),
        ("If the issue persists, open a ticket with IT for further assistance.", False),
        ("Open a ticket on the portal.", False),
        ("I can open a ticket for you.", True),
        ("Shall I open a ticket for you?", True),
        ("Would you like me to open a ticket so a technician follows up?", True),
        ("Try signing out of Teams and back in.", True),
    ],
)
def test_sentences_that_send_the_caller_elsewhere_or_read_menus_are_dropped(sentence, ok):
    assert allowed(sentence) is ok

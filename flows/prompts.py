"""Prompts and fixed phrases of the helpdesk conversation.

The system prompt is deliberately short: on a 2-core CPU the 1.5B model pays about a second per
100 prompt tokens, and this prefix is evaluated once and kept warm in the model's KV cache.
Fixed phrases (greeting, fallbacks) never go through the language model at all.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are the IT helpdesk voice assistant for {company} on a phone call. "
    "Reply in one to three short spoken sentences, plain words only: "
    "no lists, markdown, URLs or code. "
    "When told no runbook covers the problem, say so plainly and offer to open a ticket. "
    "If you cannot solve it, offer to open a ticket or transfer to a technician."
)

GREETING = "Hi, you've reached the {company} IT helpdesk. How can I help you today?"

DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"
STILL_THERE = "Are you still there? Tell me what's going on and I'll help."
TROUBLE = (
    "Sorry, I'm having trouble on my side right now. "
    "Please try again, or stay on the line and I'll open a ticket for you."
)
GOODBYE_IDLE = "I haven't heard anything, so I'll end the call now. Call back any time. Goodbye."


def system_prompt(company: str) -> str:
    return SYSTEM_PROMPT.format(company=company)


def greeting(company: str) -> str:
    return GREETING.format(company=company)


TRANSFERRING = "Sure, I'm connecting you to a technician now. Please hold."
CANNOT_TRANSFER = (
    "I'm sorry, I can't transfer you to a person right now. "
    "Tell me what's going on and I'll do my best to help."
)


# Runbook walks are spoken from the runbook itself (each step is one short spoken sentence).
def say_step(step: str, number: int, total: int) -> str:
    step = step.rstrip(".") + "."
    lead = (
        "Let's start with this:"
        if number == 1
        else ("Last thing to try:" if number == total else "Okay, next:")
    )
    return f"{lead} {step[0].lower()}{step[1:]} Did that work?"


STEP_WORKED = "Great, I'm glad that worked. Is there anything else I can help you with?"
STEPS_EXHAUSTED = (
    "I'm sorry, we've tried every step I have for this. "
    "I can open a ticket so a technician follows up with you."
)

NO_RUNBOOK_NOTE = "No runbook covers this problem: say so plainly and offer to open a ticket."
LOOKUP_DOWN = (
    "I'm sorry, I can't look that up right now. I can open a ticket so a technician calls you back."
)


def lookup_down_with_ticket(number: str) -> str:
    spoken = " ".join(number)  # "I N C 0 0 0 0 0 1 2": read one character at a time
    return (
        "I'm sorry, I can't look that up right now, so I've opened a ticket for a technician "
        f"to call you back. Your ticket number is {spoken}."
    )

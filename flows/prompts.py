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

GREETING = "Hi, you've reached the {company} IT helpdesk."
GREETING_QUESTION = "Who am I speaking with, and how can I help you today?"

DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"
STILL_THERE = "Are you still there? Tell me what's going on and I'll help."
TROUBLE = (
    "Sorry, I'm having trouble on my side right now. "
    "Please try again, or stay on the line and I'll open a ticket for you."
)
GOODBYE_IDLE = "I haven't heard anything, so I'll end the call now. Call back any time. Goodbye."


def system_prompt(company: str) -> str:
    return SYSTEM_PROMPT.format(company=company)


def greeting(company: str, recording_notice: str | None = None) -> str:
    """The first words of every call; a recording notice (consent) goes before the question."""
    parts = [GREETING.format(company=company), recording_notice, GREETING_QUESTION]
    return " ".join(p.strip() for p in parts if p)


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
        else ("Last thing to try:" if number == total else "Next, try this:")
    )
    return f"{lead} {step[0].lower()}{step[1:]} Did that work?"


STEP_WORKED = "Great, I'm glad that worked. Is there anything else I can help you with?"
STEPS_EXHAUSTED = (
    "I'm sorry, we've tried every step I have for this. "
    "I can open a ticket so a technician follows up with you."
)

UNCLEAR_STEP_NOTE = "Ask the caller, in one sentence, whether the last step you gave worked."
NO_RUNBOOK_NOTE = (
    "No runbook covers this: say so in one sentence and ask if they want a ticket opened."
)
LOOKUP_DOWN = (
    "I'm sorry, I can't look that up right now. I can open a ticket so a technician calls you back."
)


def spell(number: str) -> str:
    """ "INC0000012" -> "I N C 0 0 0 0 0 1 2": read one character at a time."""
    return " ".join(number)


def lookup_down_with_ticket(number: str) -> str:
    return (
        "I'm sorry, I can't look that up right now, so I've opened a ticket for a technician "
        f"to call you back. Your ticket number is {spell(number)}."
    )


ANYTHING_ELSE = "Is there anything else I can help you with?"
GOODBYE = "Thanks for calling the IT helpdesk. Goodbye!"
NO_TICKET = "Okay, no ticket then. " + ANYTHING_ELSE
ASK_TICKET_NUMBER = "Sure. What's the ticket number? It starts with I N C."
ASK_NAME_FOR_TICKET = "I'll open a ticket for that. May I have your name first?"
OFFER_TICKET = "Would you like me to open a ticket so a technician follows up?"
GLAD_IT_WORKED = "Great, I'm glad that worked. " + ANYTHING_ELSE


def ask_problem(name: str | None) -> str:
    return (
        f"Thanks, {name}. What can I help you with today?"
        if name
        else ("Thanks. What can I help you with today?")
    )


def ticket_opened(number: str, callback: str | None) -> str:
    follow_up = f" at {spell(callback)}" if callback else ""
    return (
        f"I've opened ticket {spell(number)} for you, and a technician will follow up"
        f"{follow_up}. " + ANYTHING_ELSE
    )


def escalated(number: str, *, security: bool, transferring: bool, callback: str | None) -> str:
    what = "This is a security matter" if security else "This is urgent"
    said = f"{what}, so I've opened priority ticket {spell(number)}."
    if transferring:
        return said + " I'm connecting you to a technician now. Please hold."
    back = f" at {spell(callback)}" if callback else ""
    return said + f" A technician will call you back{back} as soon as possible."


_STATUS_WORDS = {
    "new": "is open and waiting for a technician",
    "in_progress": "is being worked on",
    "on_hold": "is on hold",
    "resolved": "has been resolved",
    "closed": "is closed",
    "canceled": "was cancelled",
}


def ticket_status(number: str, status: str, summary: str) -> str:
    state = _STATUS_WORDS.get(status, f"has status {status.replace('_', ' ')}")
    about = f" It's about: {summary.rstrip('.')}." if summary else ""
    return f"Ticket {spell(number)} {state}.{about} " + ANYTHING_ELSE


def ticket_not_found(number: str) -> str:
    return (
        f"I couldn't find ticket {spell(number)}. Could you read me the number again, "
        "one digit at a time?"
    )

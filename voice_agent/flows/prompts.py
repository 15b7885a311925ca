"""Prompts and fixed phrases of the helpdesk conversation.

The system prompt is deliberately short: on a 2-core CPU the 1.5B model pays about a second per
100 prompt tokens, and this prefix is evaluated once and kept warm in the model's KV cache.
Fixed phrases (greeting, fallbacks) never go through the language model at all.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are the IT helpdesk voice assistant for {company} on a phone call. "
    "You are the helpdesk: never tell the caller to contact IT or open a ticket themselves. "
    "Reply in one or two short spoken sentences, plain words only: "
    "no lists, markdown, menu paths, URLs or code. "
    "If you cannot solve it, offer to open a ticket for a technician."
)

GREETING = "Hi, you've reached the {company} IT helpdesk."
GREETING_QUESTION = "Who am I speaking with, and how can I help you today?"

# said the moment the caller has finished, before the answer (voice_agent.call.acknowledgement)
ACKNOWLEDGEMENTS = ("Okay.", "Alright.", "Got it.")
DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"
STILL_THERE = "Are you still there? Tell me what's going on and I'll help."
TROUBLE = (
    "Sorry, I'm having trouble on my side right now. "
    "Please try again, or stay on the line and I'll open a ticket for you."
)
RESUMING = "As I was saying,"  # before the rest of a reply cut off by a cough or an "mm-hm"
HOLD_ON = "Sorry, this is taking me a moment. I'm still with you."
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
OFFER_CALLBACK = (
    "I'm sorry, I can't put you through to a person right now. "
    "I can have a technician call you back instead. Would you like me to arrange that?"
)


def callback_arranged(number: str, callback: str | None, *, insisted: bool) -> str:
    """The second request for a person with no transfer possible: what happens instead."""
    back = f" at {spell(callback)}" if callback else ""
    lead = (
        "I understand. There's no one I can put you through to right now, so I've asked"
        if insisted
        else "Done. I've asked"
    )
    return (
        f"{lead} a technician to call you back{back} as soon as one is free. "
        f"Your ticket number is {spell(number)}. " + ANYTHING_ELSE
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


def first_step(title: str, step: str, total: int) -> str:
    """The problem confirmed in one sentence, then the runbook's first step."""
    return f"Okay, I have a guide for this: {spoken_title(title)}. " + say_step(step, 1, total)


def spoken_title(title: str) -> str:
    """ "VPN won't connect" stays; "Account locked out" -> "account locked out"."""
    first = title.split(" ", 1)[0]
    if first[:1].isupper() and not (first.isupper() or any(c.isupper() for c in first[1:])):
        return title[0].lower() + title[1:]
    return title


STEPS_EXHAUSTED = (
    "I'm sorry, we've tried every step I have for this. "
    "Would you like me to open a ticket so a technician follows up?"
)
NO_RUNBOOK = (
    "I don't have a guide for that one. "
    "Would you like me to open a ticket so a technician follows up?"
)
ASK_STEP_RESULT = "Sorry, did that step work for you? A yes or no is fine."
REOFFER_TICKET = "Sorry, should I open a ticket for a technician? A yes or no is fine."


# When the agent is unsure what it heard: ask once, naturally, before acting on it.
def confirm_problem(title: str, *, unclear_line: bool = True) -> str:
    """One question before the first step of a runbook the agent is not sure of; the line is
    blamed only when the words were hard to make out."""
    lead = "Sorry, the line is a bit unclear." if unclear_line else "Just to be sure,"
    ask = "Is this" if unclear_line else "is this"
    return f"{lead} {ask} about: {spoken_title(title)}?"


SAY_AGAIN = "Sorry, the line is a bit unclear. Could you tell me the problem again in a few words?"
RETELL = "Sorry about that. Could you tell me the problem again in a few words?"
WHAT_CAN_I_HELP = "Sure. What else can I help you with?"
ASK_PROBLEM_AGAIN = "Sorry, I didn't quite catch that. What can I help you with?"
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
ANYTHING_ELSE_AGAIN = "Sorry, I didn't catch that. Is there anything else I can help you with?"
GOODBYE = "Thanks for calling the IT helpdesk. Goodbye!"
SHUTTING_DOWN = (
    "I'm sorry, this line has to close now for maintenance. If your problem isn't solved yet, "
    "please call again and you'll reach another line. Goodbye."
)
NO_TICKET = "Okay, no ticket then. " + ANYTHING_ELSE
ASK_TICKET_NUMBER = "Sure. What's the ticket number? It starts with I N C."
ASK_NAME_FOR_TICKET = "I'll open a ticket for that. May I have your name first?"
ASK_NAME_FOR_STATUS = "Sure, I can check that. May I have your name first?"
ASK_NAME_FIRST = "I can help with that. May I have your name first?"
ASK_SPELLING = "Thanks. Could you spell your name for me, letter by letter?"
GLAD_IT_WORKED = "Great, I'm glad that worked. " + ANYTHING_ELSE


def ask_name_for_urgent(security: bool) -> str:
    what = "This is a security matter" if security else "This sounds urgent"
    return f"{what}, so I'll open a priority ticket right away. May I have your name?"


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


def escalated(
    number: str,
    *,
    security: bool,
    transferring: bool,
    callback: str | None,
    meanwhile: str | None = None,
) -> str:
    """A priority ticket is open; a human takes over (now, or by calling back). ``meanwhile``:
    the runbook's first step, for the caller to do while they wait."""
    what = "This is a security matter" if security else "This is urgent"
    said = f"{what}, so I've opened priority ticket {spell(number)}."
    if transferring:
        return said + " I'm connecting you to a technician now. Please hold."
    back = f" at {spell(callback)}" if callback else ""
    said += f" A technician will call you back{back} as soon as possible."
    if meanwhile:
        step = meanwhile.rstrip(".") + "."
        said += f" In the meantime, {step[0].lower()}{step[1:]}"
    return said + " " + ANYTHING_ELSE


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


def no_open_ticket(name: str | None) -> str:
    who = f", {name}" if name else ""
    return (
        f"I couldn't find an open ticket under your name or number{who}. "
        "If you have the ticket number, read it to me one character at a time."
    )


def ticket_not_found(number: str) -> str:
    return (
        f"I couldn't find ticket {spell(number)}. Could you read me the number again, "
        "one digit at a time?"
    )

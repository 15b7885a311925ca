"""What the agent just asked (the conversation's ``state["awaiting"]``): the router reads the
caller's next words as the answer to it, and the recogniser decodes them under its grammar."""

from __future__ import annotations

from enum import StrEnum


class Awaiting(StrEnum):
    PROBLEM = "problem"  # what's the problem?
    CONFIRM_PROBLEM = "confirm_problem"  # is this about ...? (an unsure runbook match)
    STEP_RESULT = "step_result"  # did that step work?
    TICKET_OFFER = "ticket_offer"  # shall I open a ticket?
    CALLBACK_OFFER = "callback_offer"  # no one to transfer to: shall someone call you back?
    TICKET_NUMBER = "ticket_number"  # what's the ticket number?
    NAME = "name"  # who am I speaking with?
    SPELL_NAME = "spell_name"  # could you spell that?
    ANYTHING_ELSE = "anything_else"  # anything else I can help with?


YES_NO_QUESTIONS = (
    Awaiting.TICKET_OFFER,
    Awaiting.CALLBACK_OFFER,
    Awaiting.CONFIRM_PROBLEM,
    Awaiting.STEP_RESULT,
)

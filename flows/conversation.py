"""One helpdesk call's conversation: what each thing the caller says leads to.

The router reads the caller's words with small pattern checks (``flows.caller_words``) and the
question the agent last asked, and calls the node's functions itself for the moves that are not
in doubt: a yes to "did that work?", a ticket number, "open a ticket", "get me a person". Only
what needs free-form language goes to the model, with a one-line note for that turn. Node changes
go through pipecat.flows' ``FlowManager`` so the model's context and tools follow the call.

    conversation = HelpdeskConversation(services, flow_manager)
    await conversation.start()
    reply = await conversation.handle("My VPN won't connect from home")  # -> Reply(say=...)
"""

from __future__ import annotations

import time

from pipecat.flows import FlowManager

from flows import caller_words as cw
from flows import nodes, prompts
from flows.functions import HelpdeskFunctions
from flows.services import HelpdeskServices, Reply
from voice_agent.tickets.numbers import parse_ticket_number

SHORT_ANSWER_WORDS = 14  # "no, it still says the same thing" is an answer, not a new problem
MIN_PROBLEM_WORDS = 3  # what is left of "This is Dana, call me on 555 0142" is no problem


class HelpdeskConversation:
    def __init__(self, services: HelpdeskServices, flow_manager: FlowManager) -> None:
        self.services = services
        self.functions = HelpdeskFunctions(services)
        self.flow = flow_manager

    @property
    def state(self) -> dict:
        return self.flow.state

    @property
    def node(self) -> str | None:
        return self.flow.current_node

    async def start(self) -> None:
        await self.flow.initialize(nodes.greeting_node(self.functions))

    async def handle(self, said: str) -> Reply:
        """Decide the agent's answer to one caller turn (``said``: the final transcript)."""
        stages: dict[str, float] = {}
        reply = await self._route(" ".join(said.split()), stages)
        reply.stages = stages
        return reply

    async def _route(self, text: str, stages: dict[str, float]) -> Reply:
        f, state = self.functions, self.state
        words = cw.words(text)
        short = len(words) <= SHORT_ANSWER_WORDS
        awaiting = state.get("awaiting")
        if not words:
            return Reply()

        if cw.wants_human(text):
            return await self._call(f.transfer_to_human, {"reason": text})

        name, number = cw.caller_name(text), cw.callback_number(text)
        if name or number:
            state["caller_name"] = name or state.get("caller_name")
            state["callback_number"] = number or state.get("callback_number")

        # answers to the question the agent just asked
        if awaiting == "name_for_ticket":
            state["caller_name"] = state.get("caller_name") or _bare_name(words)
            return await self._call(f.create_ticket, {})
        if cw.wants_ticket(text) and state.get("problem"):
            return await self._ticket()
        if awaiting == "step_result" and state.get("walk") is not None and short:
            worked = cw.step_worked(text)
            if worked is not None:
                return await self._call(f.next_step, {"worked": worked})
        if awaiting == "ticket_offer" and short:
            if cw.said_yes(text) or cw.wants_ticket(text):
                return await self._ticket()
            if cw.said_no(text):
                state["awaiting"] = "anything_else"
                return Reply(say=prompts.NO_TICKET)
        ticket_number = parse_ticket_number(text, expecting=awaiting == "ticket_number")
        if awaiting == "ticket_number" or cw.asks_ticket_status(text) or (ticket_number and short):
            if ticket_number or awaiting != "ticket_number" or short:
                return await self._call(f.ticket_status, {"number": ticket_number})
        asked_anything_else = awaiting == "anything_else"
        if (
            (asked_anything_else or state.get("problem"))
            and short
            and (
                cw.says_goodbye(text, asked_anything_else=asked_anything_else)
                or (asked_anything_else and cw.said_no(text))
            )
        ):
            return await self._call(f.end_call, {})

        # the caller only said who they are (answering the greeting)
        if (name or number) and len(words) <= 20 and not state.get("problem"):
            rest = _without_identity(words, name)
            if len(rest) < MIN_PROBLEM_WORDS:
                return await self._call(
                    f.record_caller,
                    {"name": state.get("caller_name"), "callback_number": state["callback_number"]},
                )

        # a problem: triage it (once per problem), then the runbooks
        if state.get("triage") is None or awaiting == "anything_else":
            if cw.is_small_talk(text):
                return Reply()  # small talk: the model answers
            reply = await self._call(f.triage_problem, {"description": text})
            stages["triage_done"] = time.time()
            if reply.say or state.get("triage", {}).get("category") == "ticket_status":
                # escalated, or a ticket-status call: the node's first function has run
                if not reply.say:
                    return await self._call(f.ticket_status, {"number": ticket_number})
                return reply
        elif state.get("walk") is not None and short:
            return Reply(note=prompts.UNCLEAR_STEP_NOTE)
        elif state.get("walk") is None and state.get("problem") and short:
            # more detail on a problem no runbook matched yet: search with everything said
            text = f"{state['problem']} {text}"
        reply = await self._call(f.search_runbooks, {"query": text})
        stages["lookup_done"] = time.time()
        return reply

    async def _ticket(self) -> Reply:
        state = self.state
        if not state.get("caller_name") and not state.get("asked_name"):
            state["asked_name"] = True
            state["awaiting"] = "name_for_ticket"
            return Reply(say=prompts.ASK_NAME_FOR_TICKET)
        return await self._call(self.functions.create_ticket, {})

    async def _call(self, function, args: dict) -> Reply:
        result, next_node = await function(args, self.flow)
        if next_node is not None:
            await self.flow.set_node_from_config(next_node)
        return Reply(
            say=result.get("say"),
            note=result.get("note"),
            end_call=bool(result.get("end_call")),
            transfer=bool(result.get("transfer")),
            citations=list(result.get("citations") or []),
            error=result.get("error"),
            ticket=result.get("ticket"),
        )


def _without_identity(words: list[str], name: str | None) -> list[str]:
    skip = set(cw.words(name or "")) | {
        "hi", "hello", "hey", "this", "is", "my", "name", "name's", "it's", "i'm", "i", "am",
        "and", "you", "can", "call", "me", "back", "at", "on", "number", "phone", "the",
        "reach", "here", "speaking", "yes", "yeah", "ok", "okay",
    }  # fmt: skip
    return [w for w in words if w not in skip and not w.isdigit() and w not in cw._DIGIT_WORDS]


def _bare_name(words: list[str]) -> str | None:
    """An answer to "may I have your name?" that is just the name ("Dana Whitfield.")."""
    kept = [w for w in words if w not in {"it's", "its", "my", "name", "is", "i'm", "this"}]
    return " ".join(w.capitalize() for w in kept[:3]) or None

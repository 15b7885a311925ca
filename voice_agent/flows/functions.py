"""The helpdesk's functions: what the agent can do on a call.

Each is a pipecat.flows handler, ``async (args, flow_manager) -> (result, next_node)``: the
conversation router calls them directly for the common, unambiguous moves, and a language model
with function calling (an OpenAI-compatible server) can call the same ones. The result always
carries ``say`` (words to speak as they are) or ``note`` (what the model should say), and the
next node, when the call moves on.

Call state lives in ``flow_manager.state``: ``caller_name``, ``callback_number``, ``problem``,
``triage``, ``candidate`` (the runbook found, not walked yet), ``walk`` (the runbook being
followed), ``awaiting`` (the question the agent just asked), ``ticket`` and ``outcome``
(resolved, status, ticket, callback, transferred, abandoned).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypedDict

from loguru import logger
from pipecat.flows import FlowArgs, FlowManager, NodeConfig

from voice_agent.flows import nodes, prompts
from voice_agent.flows.questions import Awaiting
from voice_agent.flows.runbooks import RunbooksUnavailable
from voice_agent.flows.services import HelpdeskServices
from voice_agent.records import Outcome
from voice_agent.tickets.records import NewTicket


class FunctionResult(TypedDict, total=False):
    """What a function returns: to the model as the tool's result (JSON), and to the router,
    which turns it into the turn's :class:`~voice_agent.flows.services.Reply`."""

    say: str  # spoken as it is, without the model
    note: str  # a one-line note for the model, which answers
    citations: list[dict[str, Any]]  # the runbook articles the answer rests on
    triage: dict[str, Any]
    runbook: str  # the title of the runbook found
    similarity: float
    ticket: str  # the ticket number opened or read back
    caller_name: str | None
    transfer: bool  # hand the call to a human after saying ``say``
    end_call: bool  # hang up after saying ``say``
    error: str  # a code for the turn's record (``lookup_unavailable``)


Result = tuple[FunctionResult, NodeConfig | None]


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


# a ticket or a transfer outranks "resolved" from an earlier problem on the same call
OUTCOME_RANK = {
    Outcome.ABANDONED: 0,
    Outcome.RESOLVED: 1,
    Outcome.STATUS: 1,
    Outcome.TICKET: 2,
    Outcome.CALLBACK: 3,
    Outcome.TRANSFERRED: 4,
}


class HelpdeskFunctions:
    def __init__(self, services: HelpdeskServices) -> None:
        self.services = services

    # -- who is calling ------------------------------------------------------------------
    async def record_caller(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        state = flow_manager.state
        name = args.get("name") or state.get("caller_name")
        number = args.get("callback_number") or state.get("callback_number")
        state["caller_name"], state["callback_number"] = name, number
        await self.tell_caller(state)
        state["awaiting"] = Awaiting.PROBLEM if not state.get("problem") else Awaiting.ANYTHING_ELSE
        if state.get("problem"):
            return {"say": f"Thanks, {name}. " + prompts.ANYTHING_ELSE if name else
                    prompts.ANYTHING_ELSE, "caller_name": name}, None  # fmt: skip
        return {"say": prompts.ask_problem(name), "caller_name": name}, None

    async def tell_caller(self, state: dict[str, Any]) -> None:
        """The call record learns the caller's name and callback number as soon as they are
        heard (not only once a ticket is opened)."""
        await _maybe_await(
            self.services.on_caller(state.get("caller_name"), state.get("callback_number"))
        )

    # -- what kind of problem -------------------------------------------------------------
    async def triage_problem(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Category and priority of the caller's problem; picks the specialist path."""
        state = flow_manager.state
        description = str(args.get("description") or "")
        started = time.perf_counter()
        if args.get("category"):  # the conversation already knows what kind of call this is
            result = self.services.triage.with_category(description, str(args["category"]))
        else:
            result = await asyncio.to_thread(self.services.triage.classify, description)
        secs = time.perf_counter() - started
        state["problem"] = description
        state["triage"] = result.for_call()
        state["walk"] = None
        await _maybe_await(self.services.on_triage(result, secs))
        logger.info(
            f"triage: {result.category} {result.priority} ({result.confidence:.2f} "
            f"{result.source}, {secs * 1000:.0f} ms)"
        )
        if result.escalate:
            return {"triage": state["triage"]}, nodes.escalation_node(self)
        if result.category == "ticket_status":
            return {"triage": state["triage"]}, nodes.ticket_status_node(self)
        return {"triage": state["triage"]}, nodes.specialist_node(self, result.category)

    async def escalate(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Security incidents and P1: a priority ticket at once, then a human (now, or by a
        call back), and the runbook's first step for the caller to do meanwhile."""
        state = flow_manager.state
        triage = state.get("triage") or {}
        ticket = await self._open_ticket(state, reason="escalated")
        transferring = self.services.can_transfer
        meanwhile, citations = None, []
        if not transferring and triage.get("category") == "security":
            # what to do right now (change the password, lock the device) is in the runbook; an
            # outage of many users has nothing for the one caller to do
            try:
                walk = await self.services.runbooks.find(state.get("problem") or "")
            except RunbooksUnavailable:
                walk = None
            if walk is not None and walk.steps:
                meanwhile, citations = walk.steps[0], [walk.citation()]
        say = prompts.escalated(
            ticket.number,
            security=triage.get("category") == "security",
            transferring=transferring,
            callback=state.get("callback_number") or self.services.caller_phone,
            meanwhile=meanwhile,
        )
        await self._set_outcome(state, Outcome.TRANSFERRED if transferring else Outcome.TICKET)
        state["awaiting"] = None if transferring else Awaiting.ANYTHING_ELSE
        result: FunctionResult = {"say": say, "ticket": ticket.number, "transfer": transferring}
        result["citations"] = citations
        return result, nodes.escalation_node(self)

    # -- runbooks -------------------------------------------------------------------------
    async def search_runbooks(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Find the runbook for the problem and give its first step (a tool for the model)."""
        found, node = await self.find_runbook(args, flow_manager)
        if found.get("say") or found.get("error"):
            return found, node
        if flow_manager.state.get("candidate") is None:
            flow_manager.state["awaiting"] = Awaiting.TICKET_OFFER
            return {"say": prompts.NO_RUNBOOK, "citations": []}, None
        return await self.begin_walk({}, flow_manager)

    async def find_runbook(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """The runbook that covers the problem, kept as the call's ``candidate`` (not walked
        yet); when the runbooks cannot be searched, a ticket is left and the caller told."""
        state = flow_manager.state
        query = str(args.get("query") or state.get("problem") or "")
        try:
            walk = await self.services.runbooks.find(
                query, exclude=frozenset(state.get("rejected_runbooks") or ())
            )
        except RunbooksUnavailable as e:
            logger.warning(f"runbooks unavailable: {e}")
            ticket = await self._open_ticket(state, reason="runbooks_unavailable")
            await self._set_outcome(state, Outcome.TICKET)  # the call left a ticket
            state["awaiting"] = Awaiting.ANYTHING_ELSE
            return {
                "say": prompts.lookup_down_with_ticket(ticket.number),
                "ticket": ticket.number,
                "error": "lookup_unavailable",
            }, None
        finally:
            state["lookup_done"] = time.time()
        state["candidate"] = walk
        if walk is None:
            return {"citations": []}, None
        return {"runbook": walk.hit.title, "similarity": round(walk.similarity, 3)}, None

    async def begin_walk(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Walk the candidate runbook: the problem confirmed in one sentence, then step one."""
        state = flow_manager.state
        walk = state.pop("candidate", None)
        if walk is None:
            state["awaiting"] = Awaiting.TICKET_OFFER
            return {"say": prompts.NO_RUNBOOK}, None
        state["walk"] = walk
        return await self.next_step({}, flow_manager)

    async def next_step(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """The next step of the runbook being followed (``worked``: the last one fixed it)."""
        state = flow_manager.state
        walk = state.get("walk")
        if walk is None:
            return {"note": "There is no runbook in progress."}, None
        citations = [walk.citation()]
        if args.get("worked"):
            state["walk"] = None
            state["awaiting"] = Awaiting.ANYTHING_ELSE
            await self._set_outcome(state, Outcome.RESOLVED)
            return {"say": prompts.GLAD_IT_WORKED, "citations": citations}, nodes.wrap_up_node(self)
        if walk.exhausted:
            state["walk"] = None
            state["awaiting"] = Awaiting.TICKET_OFFER
            return {"say": prompts.STEPS_EXHAUSTED, "citations": citations}, None
        step = walk.steps[walk.next_step]
        walk.next_step += 1
        state["awaiting"] = Awaiting.STEP_RESULT
        state.pop("asked_step_result", None)
        if walk.next_step == 1:
            say = prompts.first_step(walk.hit.title, step, len(walk.steps))
        else:
            say = prompts.say_step(step, walk.next_step, len(walk.steps))
        return {"say": say, "citations": citations}, None

    # -- tickets --------------------------------------------------------------------------
    async def create_ticket(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Open a ticket for the caller's problem and read its number back."""
        state = flow_manager.state
        if args.get("summary") and not state.get("problem"):
            state["problem"] = str(args["summary"])
        ticket = await self._open_ticket(state, reason="caller_request")
        await self._set_outcome(state, Outcome.TICKET)
        state["awaiting"] = Awaiting.ANYTHING_ELSE
        callback = state.get("callback_number") or self.services.caller_phone
        say = prompts.ticket_opened(ticket.number, callback)
        return {"say": say, "ticket": ticket.number}, nodes.wrap_up_node(self)

    async def ticket_status(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Read back the status of an existing ticket: by its number, or (when the caller does
        not have it) the latest ticket opened from their line or under their name."""
        state = flow_manager.state
        number = args.get("number")
        if not number and (args.get("lookup") or state.get("asked_ticket_number")):
            ticket = await self.services.tickets.latest_for_caller(
                caller=self.services.caller_phone,
                name=state.get("caller_name"),
                callback_number=state.get("callback_number"),
                call_id=self.services.call_id,
            )
            if ticket is None:
                state["awaiting"] = Awaiting.TICKET_NUMBER
                return {"say": prompts.no_open_ticket(state.get("caller_name"))}, None
            return await self._read_status(state, ticket)
        if not number:
            state["asked_ticket_number"] = True
            state["awaiting"] = Awaiting.TICKET_NUMBER
            return {"say": prompts.ASK_TICKET_NUMBER}, None
        ticket = await self.services.tickets.get(str(number))
        if ticket is None:
            state["awaiting"] = Awaiting.TICKET_NUMBER
            return {"say": prompts.ticket_not_found(str(number))}, None
        return await self._read_status(state, ticket)

    async def _read_status(self, state: dict[str, Any], ticket) -> Result:
        state["awaiting"] = Awaiting.ANYTHING_ELSE
        await self._set_outcome(state, Outcome.STATUS)
        say = prompts.ticket_status(ticket.number, ticket.status, ticket.summary)
        return {"say": say, "ticket": ticket.number}, nodes.wrap_up_node(self)

    # -- ending the call ------------------------------------------------------------------
    async def transfer_to_human(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """A person now; with no transfer possible, a call back is offered once, and asked
        again, arranged (the caller never hears the same refusal twice)."""
        state = flow_manager.state
        if self.services.can_transfer:
            await self._set_outcome(state, Outcome.TRANSFERRED)
            state["awaiting"] = None
            return {"say": prompts.TRANSFERRING, "transfer": True}, None
        if not state.get("offered_callback"):
            state["offered_callback"] = True
            state["awaiting"] = Awaiting.CALLBACK_OFFER
            return {"say": prompts.OFFER_CALLBACK}, None
        return await self.arrange_callback({"insisted": True}, flow_manager)

    async def arrange_callback(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """No one to transfer to: a ticket for a technician to call the caller back."""
        state = flow_manager.state
        if state.get("callback_ticket"):
            ticket_number = state["callback_ticket"]
        else:
            ticket = await self._open_ticket(state, reason="callback")
            ticket_number = state["callback_ticket"] = ticket.number
        await self._set_outcome(state, Outcome.CALLBACK)
        state["awaiting"] = Awaiting.ANYTHING_ELSE
        callback = state.get("callback_number") or self.services.caller_phone
        say = prompts.callback_arranged(
            ticket_number, callback, insisted=bool(args.get("insisted"))
        )
        return {"say": say, "ticket": ticket_number}, nodes.wrap_up_node(self)

    async def end_call(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        state = flow_manager.state
        if state.get("outcome") is None:
            await self._set_outcome(
                state, Outcome.RESOLVED if state.get("problem") else Outcome.ABANDONED
            )
        return {"say": prompts.GOODBYE, "end_call": True}, None

    # -- helpers --------------------------------------------------------------------------
    async def _open_ticket(self, state: dict[str, Any], *, reason: str):
        triage = state.get("triage") or {}
        problem = state.get("problem") or ""
        if (
            problem
            and triage.get("source") == "classifier"
            and triage.get("confidence", 1.0) < getattr(self.services.triage, "min_confidence", 0.0)
        ):
            # unsure: let the language model decide before a human sees the ticket
            try:
                refined = await self.services.triage.triage(problem)
                state["triage"] = triage = refined.for_call()
                await _maybe_await(self.services.on_triage(refined, 0.0))
            except Exception as e:  # the classifier's answer stands
                logger.warning(f"triage refinement failed: {e}")
        ticket = await self.services.tickets.create(
            NewTicket(
                summary=_summary(problem) or "Caller asked for help (no description given)",
                description=problem,
                category=triage.get("category", "other"),
                priority=triage.get("priority", "P3"),
                assignment=triage.get("assignment_group"),
                call_id=self.services.call_id,
                caller=self.services.caller_phone,
                caller_name=state.get("caller_name"),
                callback_number=state.get("callback_number") or self.services.caller_phone,
                reason=reason,
            )
        )
        state["ticket"] = ticket.number
        logger.info(f"ticket {ticket.number} opened ({reason})")
        return ticket

    async def _set_outcome(self, state: dict[str, Any], outcome: Outcome) -> None:
        before = state.get("outcome") or Outcome.ABANDONED
        if OUTCOME_RANK[outcome] >= OUTCOME_RANK.get(before, 0):
            state["outcome"] = outcome
            await _maybe_await(self.services.on_outcome(outcome))


def _summary(problem: str, max_chars: int = 120) -> str:
    text = " ".join(problem.split())
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + "..."

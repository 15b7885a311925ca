"""The helpdesk's functions: what the agent can do on a call.

Each is a pipecat.flows handler, ``async (args, flow_manager) -> (result, next_node)``: the
conversation router calls them directly for the common, unambiguous moves, and a language model
with function calling (an OpenAI-compatible server) can call the same ones. The result always
carries ``say`` (words to speak as they are) or ``note`` (what the model should say), and the
next node, when the call moves on.

Call state lives in ``flow_manager.state``: ``caller_name``, ``callback_number``, ``problem``,
``triage``, ``walk`` (the runbook being followed), ``awaiting`` (the question the agent just
asked), ``ticket`` and ``outcome``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger
from pipecat.flows import FlowArgs, FlowManager, NodeConfig

from flows import nodes, prompts
from flows.runbooks import RunbooksUnavailable
from flows.services import HelpdeskServices

Result = tuple[dict[str, Any], NodeConfig | None]


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


class HelpdeskFunctions:
    def __init__(self, services: HelpdeskServices) -> None:
        self.services = services

    # -- who is calling ------------------------------------------------------------------
    async def record_caller(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        state = flow_manager.state
        name = args.get("name") or state.get("caller_name")
        number = args.get("callback_number") or state.get("callback_number")
        state["caller_name"], state["callback_number"] = name, number
        await _maybe_await(self.services.on_caller(name, number))
        return {"say": prompts.ask_problem(name), "caller_name": name}, None

    # -- what kind of problem -------------------------------------------------------------
    async def triage_problem(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Category and priority of the caller's problem; picks the specialist path."""
        state = flow_manager.state
        description = str(args.get("description") or "")
        started = time.perf_counter()
        result = await asyncio.to_thread(self.services.triage.classify, description)
        secs = time.perf_counter() - started
        state["problem"] = description
        state["triage"] = _triage_dict(result)
        state["walk"] = None
        await _maybe_await(self.services.on_triage(result, secs))
        logger.info(
            f"triage: {result.category} {result.priority} ({result.confidence:.2f} "
            f"{result.source}, {secs * 1000:.0f} ms)"
        )
        if result.escalate:
            return await self.escalate(args, flow_manager)
        if result.category == "ticket_status":
            return {"triage": state["triage"]}, nodes.ticket_status_node(self)
        return {"triage": state["triage"]}, nodes.specialist_node(self, result.category)

    async def escalate(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Security incidents and P1: a priority ticket at once, then a human."""
        state = flow_manager.state
        triage = state.get("triage") or {}
        ticket = await self._open_ticket(state, reason="escalated")
        transferring = self.services.can_transfer
        say = prompts.escalated(
            ticket.number,
            security=triage.get("category") == "security",
            transferring=transferring,
            callback=state.get("callback_number") or self.services.caller_phone,
        )
        await self._set_outcome(state, "transferred" if transferring else "ticket")
        state["awaiting"] = None if transferring else "anything_else"
        result = {"say": say, "ticket": ticket.number, "transfer": transferring}
        return result, nodes.escalation_node(self)

    # -- runbooks -------------------------------------------------------------------------
    async def search_runbooks(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Find the runbook for the problem and give its first step."""
        state = flow_manager.state
        query = str(args.get("query") or state.get("problem") or "")
        try:
            walk = await self.services.runbooks.find(query)
        except RunbooksUnavailable as e:
            logger.warning(f"runbooks unavailable: {e}")
            ticket = await self._open_ticket(state, reason="runbooks_unavailable")
            state["awaiting"] = "anything_else"
            return {
                "say": prompts.lookup_down_with_ticket(ticket.number),
                "ticket": ticket.number,
                "error": "lookup_unavailable",
            }, None
        finally:
            state["lookup_done"] = time.time()
        if walk is None:
            state["walk"] = None
            state["awaiting"] = "ticket_offer"
            return {"note": prompts.NO_RUNBOOK_NOTE, "citations": []}, None
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
            state["awaiting"] = "anything_else"
            await self._set_outcome(state, "resolved")
            return {"say": prompts.GLAD_IT_WORKED, "citations": citations}, nodes.wrap_up_node(self)
        if walk.exhausted:
            state["walk"] = None
            state["awaiting"] = "ticket_offer"
            return {"say": prompts.STEPS_EXHAUSTED, "citations": citations}, None
        step = walk.steps[walk.next_step]
        walk.next_step += 1
        state["awaiting"] = "step_result"
        say = prompts.say_step(step, walk.next_step, len(walk.steps))
        return {"say": say, "citations": citations}, None

    # -- tickets --------------------------------------------------------------------------
    async def create_ticket(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Open a ticket for the caller's problem and read its number back."""
        state = flow_manager.state
        if args.get("summary") and not state.get("problem"):
            state["problem"] = str(args["summary"])
        ticket = await self._open_ticket(state, reason="caller_request")
        await self._set_outcome(state, "ticket")
        state["awaiting"] = "anything_else"
        callback = state.get("callback_number") or self.services.caller_phone
        say = prompts.ticket_opened(ticket.number, callback)
        return {"say": say, "ticket": ticket.number}, nodes.wrap_up_node(self)

    async def ticket_status(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        """Read back the status of an existing ticket by its number."""
        state = flow_manager.state
        number = args.get("number")
        if not number:
            state["awaiting"] = "ticket_number"
            return {"say": prompts.ASK_TICKET_NUMBER}, None
        ticket = await self.services.tickets.get(str(number))
        if ticket is None:
            state["awaiting"] = "ticket_number"
            return {"say": prompts.ticket_not_found(str(number))}, None
        state["awaiting"] = "anything_else"
        await self._set_outcome(state, "resolved")
        say = prompts.ticket_status(ticket.number, ticket.status, ticket.summary)
        return {"say": say, "ticket": ticket.number}, nodes.wrap_up_node(self)

    # -- ending the call ------------------------------------------------------------------
    async def transfer_to_human(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        state = flow_manager.state
        if not self.services.can_transfer:
            return {"say": prompts.CANNOT_TRANSFER}, None
        await self._set_outcome(state, "transferred")
        state["awaiting"] = None
        return {"say": prompts.TRANSFERRING, "transfer": True}, None

    async def end_call(self, args: FlowArgs, flow_manager: FlowManager) -> Result:
        state = flow_manager.state
        if state.get("outcome") is None:
            await self._set_outcome(state, "resolved" if state.get("problem") else "abandoned")
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
                state["triage"] = triage = _triage_dict(refined)
                await _maybe_await(self.services.on_triage(refined, 0.0))
            except Exception as e:  # the classifier's answer stands
                logger.warning(f"triage refinement failed: {e}")
        ticket = await self.services.tickets.create(
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
        state["ticket"] = ticket.number
        logger.info(f"ticket {ticket.number} opened ({reason})")
        return ticket

    async def _set_outcome(self, state: dict[str, Any], outcome: str) -> None:
        # a ticket or a transfer outranks "resolved" from an earlier problem on the same call
        rank = {"abandoned": 0, "resolved": 1, "ticket": 2, "transferred": 3}
        if rank.get(outcome, 0) >= rank.get(state.get("outcome") or "abandoned", 0):
            state["outcome"] = outcome
            await _maybe_await(self.services.on_outcome(outcome))


def _triage_dict(result) -> dict[str, Any]:
    return {
        "category": result.category,
        "priority": result.priority,
        "confidence": round(float(result.confidence), 3),
        "source": result.source,
        "escalate": bool(result.escalate),
        "assignment_group": result.assignment_group,
    }


def _summary(problem: str, max_chars: int = 120) -> str:
    text = " ".join(problem.split())
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + "..."

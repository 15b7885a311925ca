"""One helpdesk call's conversation: what each thing the caller says leads to.

Each caller turn is understood first (``voice_agent.flows.understanding``: its dialogue act, from
unambiguous words or a classifier that generalises), then read together with the question the
agent just asked (``awaiting``). The router calls the node's functions itself for every move it
can decide, and speaks fixed phrases: only what needs free-form language (small talk, a question
no runbook answers) goes to the model, with a one-line note for that turn. Node changes go
through pipecat.flows' ``FlowManager`` so the model's context and tools follow the call.

When hearing fails the call recovers instead of acting on a guess: a transcript Whisper was
unsure of, a problem no runbook covers well, or a triage the classifier is unsure of gets one
natural question first ("Sorry, the line is a bit unclear. Is this about: VPN won't connect?").
A problem is confirmed in one sentence before the first runbook step, so a caller hears what
the agent understood and can correct it.

    conversation = HelpdeskConversation(services, flow_manager)
    await conversation.start()
    reply = await conversation.handle("My VPN won't connect from home")  # -> Reply(say=...)
"""

from __future__ import annotations

import copy
import time

from pipecat.flows import FlowManager

from voice_agent.flows import caller_words as cw
from voice_agent.flows import nodes, prompts
from voice_agent.flows.functions import HelpdeskFunctions
from voice_agent.flows.questions import YES_NO_QUESTIONS, Awaiting
from voice_agent.flows.services import HelpdeskServices, Reply
from voice_agent.flows.understanding import Act, understand
from voice_agent.speech.answer_grammar import Expected
from voice_agent.tickets.numbers import parse_ticket_number

# the questions a yes or a no answers
SHORT_ANSWER_WORDS = 14  # "no, it still says the same thing" is an answer, not a new problem
MIN_PROBLEM_WORDS = 3  # what is left of "This is Dana, call me on 555 0142" is no problem
# Whisper's mean token log-probability below which a transcript is probably misheard: measured
# on the dev scenario callers' lines (espeak-ng voices over a phone line), utterances decoded
# below -0.55 had a median WER of 0.33, those above 0.0 (``voice-agent bench stt --json``)
UNSURE_LOGPROB = -0.55
UNSURE_TRIAGE = 0.45  # the classifier's probability for its category below which it is unsure
# a runbook match below this similarity is confirmed with the caller before it is walked (the
# right runbook scored 0.81-0.91 for the dev scenario openings, a wrong one up to 0.856)
SURE_RUNBOOK = 0.86
MAX_CHECKS = 2  # runbooks checked with the caller per call
# the questions whose answer has a form the recogniser can be held to
EXPECTED_ANSWERS = {Awaiting.TICKET_NUMBER: Expected.TICKET_NUMBER}


class IrreversibleDecision(Exception):
    """A decision cannot be taken back: it opened a ticket."""


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

    def expected_answer(self) -> Expected:
        """The form of the answer to the agent's last question, for the speech recogniser."""
        awaiting = self.state.get("awaiting")
        return EXPECTED_ANSWERS.get(awaiting, Expected.SPEECH) if awaiting else Expected.SPEECH

    def checkpoint(self) -> dict:
        """What the conversation knows now, to go back to (``rollback``) when a decision made
        on part of what the caller said is taken back."""
        return copy.deepcopy(self.state)

    def rollback(self, checkpoint: dict) -> None:
        """Back to what it knew at ``checkpoint``. The node (the model's task and tools) stays:
        the next decision sets it again where it moves. A ticket opened since stands: deciding
        again would open a second one (``IrreversibleDecision``; the state is left as it is)."""
        if self.state.get("ticket") != checkpoint.get("ticket"):
            raise IrreversibleDecision(f"ticket {self.state.get('ticket')} was opened since")
        self.state.clear()
        self.state.update(copy.deepcopy(checkpoint))

    async def start(self) -> None:
        await self.flow.initialize(nodes.greeting_node(self.functions))

    async def handle(self, said: str, *, heard_logprob: float | None = None) -> Reply:
        """Decide the agent's answer to one caller turn (``said``: the final transcript;
        ``heard_logprob``: how sure the recogniser was, None when unknown)."""
        stages: dict[str, float] = {}
        text = " ".join(said.split())
        act = understand(text, self.services.acts)
        reply = await self._route(text, act, heard_logprob, stages)
        reply.stages = stages
        reply.understood = {"act": act.kind, "confidence": round(act.confidence, 3),
                            "by": act.source}  # fmt: skip
        if reply.say:
            self.state["last_said"] = reply.say
        return reply

    # -- routing -------------------------------------------------------------------------
    async def _route(
        self, text: str, act: Act, heard_logprob: float | None, stages: dict[str, float]
    ) -> Reply:
        f, state = self.functions, self.state
        words = cw.words(text)
        if not words:
            return Reply()
        short = len(words) <= SHORT_ANSWER_WORDS
        awaiting = state.get("awaiting")
        unsure_heard = heard_logprob is not None and heard_logprob < UNSURE_LOGPROB
        if awaiting in YES_NO_QUESTIONS and act.source == "model" and short:
            # "Yes, clean open one" (Whisper's "Yes, please open one") and "Yes, not right"
            # ("Yes, that's right") answer the question with their first word
            if act.kind in ("unclear", "problem", "no") and cw.said_yes(text):
                act = Act("yes", act.confidence, "words")
            elif act.kind in ("unclear", "problem", "yes") and cw.said_no(text):
                act = Act("no", act.confidence, "words")

        name, number = cw.caller_name(text), cw.callback_number(text)
        if awaiting in (Awaiting.NAME, Awaiting.SPELL_NAME):
            return await self._name_given(text, unsure_heard, stages)
        if name or number:
            await self._remember_caller(name, number)

        if act.kind == "repeat" and state.get("last_said"):
            return Reply(say=state["last_said"])
        if act.kind == "wants_human":
            return await self._call(f.transfer_to_human, {"reason": text})

        # answers to the question the agent just asked
        if awaiting == Awaiting.CONFIRM_PROBLEM:
            return await self._confirmation(text, act, heard_logprob, stages)
        if awaiting == Awaiting.CALLBACK_OFFER:
            if act.kind in ("no", "goodbye", "worked"):
                state["awaiting"] = Awaiting.ANYTHING_ELSE
                return Reply(say=prompts.NO_TICKET)
            # yes, or anything unclear: a technician calling back is what the caller wanted
            return await self._with_name("callback", f.arrange_callback, {})
        if awaiting == Awaiting.TICKET_NUMBER and act.kind != "goodbye":
            # a number, or anything else ("I don't have it"): the caller's latest ticket
            number = parse_ticket_number(text, expecting=True)
            return await self._ticket_status(text, number, stages)
        if act.kind == "wants_ticket" and state.get("problem"):
            return await self._ticket()
        if awaiting == Awaiting.STEP_RESULT and state.get("walk") is not None and short:
            step = self._step_answer(act)
            if step is None and act.kind == "problem":  # "it's still asking for the password"
                step = cw.step_worked(text)
            if step is not None:
                return await self._call(f.next_step, {"worked": step})
        if awaiting == Awaiting.TICKET_OFFER and short:
            if act.kind in ("yes", "wants_ticket", "not_worked"):
                return await self._ticket()
            if act.kind in ("no", "worked", "goodbye"):
                state["awaiting"] = Awaiting.ANYTHING_ELSE
                return Reply(say=prompts.NO_TICKET)
            if act.kind in ("unclear", "repeat"):
                if not state.get("reoffered"):
                    state["reoffered"] = True
                    return Reply(say=prompts.REOFFER_TICKET)
                return await self._ticket()  # still unclear: a technician follows up
        ticket_number = parse_ticket_number(text, expecting=False)
        if act.kind == "ticket_status" or (ticket_number and short):
            return await self._ticket_status(text, ticket_number, stages)
        if awaiting == Awaiting.ANYTHING_ELSE and short:
            if act.kind in ("no", "goodbye", "worked"):
                return await self._call(f.end_call, {})
            if act.kind == "yes":
                state["awaiting"] = Awaiting.PROBLEM
                return Reply(say=prompts.WHAT_CAN_I_HELP)
            if act.kind in ("unclear", "repeat", "not_worked"):
                if not state.get("asked_anything_else_again"):
                    state["asked_anything_else_again"] = True
                    return Reply(say=prompts.ANYTHING_ELSE_AGAIN)
                return await self._call(f.end_call, {})
        if act.kind == "goodbye" and short and (state.get("problem") or awaiting):
            return await self._call(f.end_call, {})

        # the caller only said who they are (answering the greeting)
        if (name or number) and len(words) <= 20 and not state.get("problem"):
            rest = _without_identity(words, name)
            if len(rest) < MIN_PROBLEM_WORDS:
                return await self._call(
                    f.record_caller,
                    {"name": state.get("caller_name"), "callback_number": state["callback_number"]},
                )

        walking = state.get("walk") is not None
        if walking and awaiting == Awaiting.STEP_RESULT and short:
            if not state.get("asked_step_result"):
                state["asked_step_result"] = True
                return Reply(say=prompts.ASK_STEP_RESULT)
            return await self._call(f.next_step, {"worked": False})
        if awaiting == Awaiting.PROBLEM and state.get("problem"):
            # the problem told again after "could you tell me the problem again?"
            if act.kind in ("yes", "no", "repeat") or len(words) < MIN_PROBLEM_WORDS:
                return Reply(say=prompts.ASK_PROBLEM_AGAIN)
            return await self._new_problem(f"{state['problem']} {text}", heard_logprob, stages)
        new_problem = state.get("triage") is None or awaiting in (
            Awaiting.ANYTHING_ELSE,
            Awaiting.PROBLEM,
        )
        if new_problem or (act.kind == "problem" and not short):
            if cw.is_small_talk(text) or act.kind in ("unclear", "repeat", "yes", "no"):
                if state.get("triage") is None and not cw.is_small_talk(text):
                    return Reply(say=prompts.ASK_PROBLEM_AGAIN)
                return Reply()  # small talk: the model answers
            then_ticket = act.kind == "wants_ticket"  # "my printer is broken, open a ticket"
            return await self._new_problem(text, heard_logprob, stages, then_ticket=then_ticket)
        if act.kind == "wants_ticket":
            return await self._new_problem(text, heard_logprob, stages, then_ticket=True)
        # more detail on a problem no runbook matched yet: search with everything said
        return await self._find_runbook(f"{state.get('problem', '')} {text}".strip(), stages)

    @staticmethod
    def _step_answer(act: Act) -> bool | None:
        if act.kind in ("worked", "yes"):
            return True
        if act.kind in ("not_worked", "no"):
            return False
        return None

    # -- a problem -------------------------------------------------------------------------
    async def _new_problem(
        self,
        text: str,
        heard_logprob: float | None,
        stages: dict[str, float],
        *,
        then_ticket: bool = False,
    ) -> Reply:
        f, state = self.functions, self.state
        for key in ("walk", "candidate", "asked_step_result", "reoffered"):
            state.pop(key, None)
        reply = await self._call(f.triage_problem, {"description": text})
        stages["triage_done"] = time.time()
        triage = state.get("triage") or {}
        if triage.get("category") == "ticket_status":
            return await self._ticket_status(text, parse_ticket_number(text), stages)
        if triage.get("escalate"):
            if not state.get("caller_name") and not state.get("asked_name"):
                state["asked_name"] = True
                state["awaiting"], state["pending"] = Awaiting.NAME, "escalate"
                security = triage.get("category") == "security"
                return Reply(say=prompts.ask_name_for_urgent(security))
            return await self._escalate(stages)
        if reply.say:
            return reply
        if then_ticket:
            return await self._ticket()
        unsure = (heard_logprob is not None and heard_logprob < UNSURE_LOGPROB) or triage.get(
            "confidence", 1.0
        ) < UNSURE_TRIAGE
        if not state.get("caller_name") and not state.get("asked_name"):
            # who is calling, before the problem is worked on (the call record keeps it)
            state["asked_name"] = True
            state["awaiting"], state["pending"] = Awaiting.NAME, "problem"
            state["problem_unsure"] = unsure
            return Reply(say=prompts.ASK_NAME_FIRST)
        return await self._find_runbook(text, stages, unsure=unsure)

    async def _find_runbook(
        self, query: str, stages: dict[str, float], *, unsure: bool = False
    ) -> Reply:
        f, state = self.functions, self.state
        found = await self._call(f.find_runbook, {"query": query})
        stages["lookup_done"] = time.time()
        if found.say or found.error:  # the runbooks are down: a ticket was left
            return found
        walk = state.get("candidate")
        ask_once = not state.get("clarified")
        # a second runbook may be checked after the caller said no to the first, never a third
        may_check = len(state.get("rejected_runbooks") or ()) < MAX_CHECKS and (
            ask_once or state.get("rejected_runbooks")
        )
        sure = walk is not None and walk.similarity >= SURE_RUNBOOK
        if walk is not None and sure and not unsure:
            return await self._call(f.begin_walk, {})
        if (
            walk is not None
            and may_check
            and walk.hit.article_path not in state.get("checked_runbooks", ())
        ):  # "Is this about: VPN won't connect?"
            state["clarified"] = True
            state.setdefault("checked_runbooks", []).append(walk.hit.article_path)
            state["awaiting"] = Awaiting.CONFIRM_PROBLEM
            return Reply(say=prompts.confirm_problem(walk.hit.title, unclear_line=unsure))
        if walk is not None and sure:
            return await self._call(f.begin_walk, {})
        state.pop("candidate", None)
        if unsure and ask_once:
            state["clarified"] = True
            state["awaiting"] = Awaiting.PROBLEM
            return Reply(say=prompts.SAY_AGAIN)
        state["awaiting"] = Awaiting.TICKET_OFFER
        return Reply(say=prompts.NO_RUNBOOK)

    async def _confirmation(
        self, text: str, act: Act, heard_logprob: float | None, stages: dict[str, float]
    ) -> Reply:
        f, state = self.functions, self.state
        if act.kind in ("yes", "worked"):
            return await self._call(f.begin_walk, {})
        if act.kind in ("no", "not_worked", "problem"):
            rejected = state.pop("candidate", None)
            if rejected is not None:
                state.setdefault("rejected_runbooks", []).append(rejected.hit.article_path)
            if len(state.get("rejected_runbooks") or ()) >= MAX_CHECKS:
                state["awaiting"] = Awaiting.TICKET_OFFER  # nothing the caller recognises: a human
                return Reply(say=prompts.NO_RUNBOOK)
            if len(cw.words(text)) <= 5:
                state["awaiting"] = Awaiting.PROBLEM
                return Reply(say=prompts.RETELL)
            # "No, it's my Outlook that crashes": the problem told again in the same breath
            return await self._new_problem(text, heard_logprob, stages)
        if act.kind == "wants_ticket":
            return await self._ticket()
        if act.kind == "ticket_status":
            state.pop("candidate", None)
            return await self._ticket_status(text, parse_ticket_number(text), stages)
        return await self._call(f.begin_walk, {})  # no clear answer: go on with the guess

    async def _ticket_status(
        self, text: str, number: str | None, stages: dict[str, float]
    ) -> Reply:
        """A question about an existing ticket: by its number, else (the caller does not have
        it) the caller's latest ticket, once their name is known."""
        f, state = self.functions, self.state
        if state.get("triage") is None:
            await self._call(f.triage_problem, {"description": text, "category": "ticket_status"})
            stages["triage_done"] = time.time()
        if number:
            state["status_number"] = number
        if not state.get("caller_name") and not state.get("asked_name"):
            # a ticket's status goes to the person it belongs to: their name first
            return await self._with_name("status", f.ticket_status, {})
        number = number or state.get("status_number")
        if number or not state.get("asked_ticket_number"):
            return await self._call(f.ticket_status, {"number": number, "said": text})
        return await self._call(f.ticket_status, {"number": None, "said": text, "lookup": True})

    async def _escalate(self, stages: dict[str, float]) -> Reply:
        reply = await self._call(self.functions.escalate, {})
        stages["lookup_done"] = time.time()
        return reply

    # -- who is calling ----------------------------------------------------------------------
    async def _remember_caller(self, name: str | None, number: str | None) -> None:
        state = self.state
        before = (state.get("caller_name"), state.get("callback_number"))
        # a name heard when none was asked for does not replace one the caller already gave
        state["caller_name"] = state.get("caller_name") or name
        state["callback_number"] = number or state.get("callback_number")
        if (state["caller_name"], state["callback_number"]) != before:
            await self.functions.tell_caller(state)

    async def _name_given(self, text: str, unsure_heard: bool, stages: dict[str, float]) -> Reply:
        """The answer to "may I have your name?" (or to "could you spell it?")."""
        state = self.state
        words = cw.words(text)
        if state.get("awaiting") == Awaiting.SPELL_NAME:
            spelled = cw.spelled_name(text, state.get("caller_name"))
            name = spelled or state.get("caller_name")
        else:
            name = cw.caller_name(text) or cw.bare_name(text)
            garbled = name is None and len(words) >= 2  # "It's time to home."
            if (garbled or (name and unsure_heard)) and not state.get("asked_spelling"):
                state["asked_spelling"] = True
                state["caller_name"] = name
                state["awaiting"] = Awaiting.SPELL_NAME
                return Reply(say=prompts.ASK_SPELLING)
        if name:
            state["caller_name"] = name  # asked for: it replaces what was heard before
        state["callback_number"] = cw.callback_number(text) or state.get("callback_number")
        await self.functions.tell_caller(state)
        pending = state.pop("pending", None)
        state["awaiting"] = None
        if not name and words and not state.get("asked_name_twice"):
            state["asked_name_twice"] = True
            state["awaiting"], state["pending"] = Awaiting.NAME, pending
            return Reply(say="Sorry, I didn't catch your name. Could you say it again?")
        return await self._do_pending(pending, stages)

    async def _do_pending(self, pending: str | None, stages: dict[str, float]) -> Reply:
        f = self.functions
        if pending == "escalate":
            return await self._escalate(stages)
        if pending == "callback":
            return await self._call(f.arrange_callback, {})
        if pending == "status":
            number = self.state.get("status_number")
            lookup = not number and self.state.get("asked_ticket_number")
            return await self._call(f.ticket_status, {"number": number, "lookup": lookup})
        if pending == "ticket":
            return await self._call(f.create_ticket, {})
        if pending == "problem":
            unsure = bool(self.state.pop("problem_unsure", False))
            return await self._find_runbook(self.state.get("problem") or "", stages, unsure=unsure)
        return await self._call(f.record_caller, {})

    async def _with_name(self, pending: str, function, args: dict) -> Reply:
        """Do ``function``, first asking the caller's name once if it is not known."""
        state = self.state
        if not state.get("caller_name") and not state.get("asked_name"):
            state["asked_name"] = True
            state["awaiting"], state["pending"] = Awaiting.NAME, pending
            ask = (
                prompts.ASK_NAME_FOR_STATUS if pending == "status" else prompts.ASK_NAME_FOR_TICKET
            )
            return Reply(say=ask)
        return await self._call(function, args)

    async def _ticket(self) -> Reply:
        return await self._with_name("ticket", self.functions.create_ticket, {})

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
        "reach", "here", "speaking", "yes", "yeah", "ok", "okay", "there", "good", "morning",
        "afternoon", "evening",
    }  # fmt: skip
    return [w for w in words if w not in skip and not w.isdigit() and w not in cw._DIGIT_WORDS]

"""The step between the caller's finished turn and the model: a caller who goes on with their
turn after it was decided gets one answer to all of it (``HelpdeskFlowProcessor``)."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import InterruptionFrame, LLMContextFrame, TTSSpeakFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from voice_agent.call.flow_processor import HelpdeskFlowProcessor, TurnNote
from voice_agent.flows.services import Reply


class Conversation:
    """What the processor needs of ``HelpdeskConversation``: it remembers every turn it was told,
    answers with ``replies`` in turn, and can be taken back to a checkpoint."""

    def __init__(self, *replies: Reply) -> None:
        self.heard: list[str] = []
        self.replies = list(replies)
        self.rollbacks: list[list[str]] = []

    async def decide(self, said: str, logprob: float | None) -> Reply:
        self.heard.append(said)
        return self.replies.pop(0)

    def checkpoint(self) -> list[str]:
        return list(self.heard)

    def rollback(self, checkpoint: list[str]) -> None:
        self.rollbacks.append(checkpoint)
        self.heard = list(checkpoint)


def processor(conversation: Conversation, turns: list[int]) -> HelpdeskFlowProcessor:
    indices = iter(turns)
    return HelpdeskFlowProcessor(
        conversation.decide,
        TurnNote(),
        turn_index=lambda: next(indices),
        checkpoint=conversation.checkpoint,
        rollback=conversation.rollback,
    )


def context(*messages: tuple[str, str]) -> LLMContext:
    return LLMContext([{"role": role, "content": text} for role, text in messages])


GREETING = ("assistant", "Thanks for calling the IT helpdesk. How can I help?")
TASK = ("developer", "Help with network problems.")


async def test_a_caller_who_went_on_gets_one_answer_to_all_they_said():
    conversation = Conversation(Reply(say="Could you tell me the problem again?"), Reply())
    first = context(GREETING, ("user", "My laptop will not"))
    # the caller went on into the first words of the answer: same turn; the node's task message
    # the first decision added stays, the cut answer goes
    went_on = context(
        GREETING,
        ("user", "My laptop will not"),
        TASK,
        ("assistant", "Could you"),
        ("user", "connect to the VPN."),
    )
    down, _ = await run_test(
        processor(conversation, [0, 0]),
        frames_to_send=[LLMContextFrame(first), LLMContextFrame(went_on)],
    )
    assert conversation.rollbacks == [[]]  # the first decision was taken back...
    assert conversation.heard == ["My laptop will not connect to the VPN."]  # ...made on all
    assert went_on.get_messages() == [
        {"role": GREETING[0], "content": GREETING[1]},
        {"role": TASK[0], "content": TASK[1]},
        {"role": "user", "content": "My laptop will not connect to the VPN."},
    ]
    # the first answer was spoken; the second is the model's, so its context goes on
    assert [type(f) for f in down] == [TTSSpeakFrame, LLMContextFrame]


class StallingConversation(Conversation):
    """Its first decision never finishes (a slow triage): the caller's going on cuts it off."""

    decisions = 0

    async def decide(self, said: str, logprob: float | None) -> Reply:
        self.heard.append(said)  # the conversation had begun to move when it was cut off
        self.decisions += 1
        if self.decisions == 1:
            await asyncio.sleep(3600)
        return self.replies.pop(0)


async def test_a_decision_cut_off_by_the_caller_going_on_is_taken_back():
    conversation = StallingConversation(Reply(say="Which part of the VPN fails?"))
    first = context(GREETING, ("user", "My laptop will not"))
    went_on = context(GREETING, ("user", "My laptop will not"), ("user", "connect to the VPN."))
    down, _ = await run_test(
        processor(conversation, [0, 0]),
        frames_to_send=[
            LLMContextFrame(first),
            SleepFrame(0.2),
            InterruptionFrame(),  # the caller went on: pipecat cancels the decision under way
            LLMContextFrame(went_on),
        ],
    )
    assert conversation.rollbacks == [[]]  # the half-made decision was taken back...
    assert conversation.heard == ["My laptop will not connect to the VPN."]  # ...made on all
    assert [f.text for f in down if isinstance(f, TTSSpeakFrame)] == [
        "Which part of the VPN fails?"
    ]


async def test_the_next_turn_is_decided_on_its_own_words():
    conversation = Conversation(Reply(say="Is this about: VPN won't connect?"), Reply(say="Ok."))
    first = context(GREETING, ("user", "My VPN will not connect."))
    answered = context(
        GREETING,
        ("user", "My VPN will not connect."),
        ("assistant", "Is this about: VPN won't connect?"),
        ("user", "Yes."),
    )
    await run_test(
        processor(conversation, [0, 1]),
        frames_to_send=[LLMContextFrame(first), LLMContextFrame(answered)],
    )
    assert conversation.rollbacks == []
    assert conversation.heard == ["My VPN will not connect.", "Yes."]
    assert len(answered.get_messages()) == 4


async def test_a_ticket_once_opened_is_not_taken_back():
    """The caller went on after a decision that opened a ticket: the ticket stands, and what
    they went on with is decided on by itself."""
    conversation = Conversation(
        Reply(say="Your ticket is INC0000012.", ticket="INC0000012"), Reply(say="Sure.")
    )
    first = context(GREETING, ("user", "Yes please open one."))
    went_on = context(GREETING, ("user", "Yes please open one."), ("user", "and call me back."))
    await run_test(
        processor(conversation, [3, 3]),
        frames_to_send=[LLMContextFrame(first), LLMContextFrame(went_on)],
    )
    assert conversation.rollbacks == []
    assert conversation.heard == ["Yes please open one.", "and call me back."]


async def test_words_never_decided_on_are_decided_with_the_next():
    """A turn whose context frame never reached the conversation (dropped when the caller went
    on): its words come with the next."""
    conversation = Conversation(Reply())
    both = context(GREETING, ("user", "My printer says"), ("user", "it is offline."))
    await run_test(processor(conversation, [5]), frames_to_send=[LLMContextFrame(both)])
    assert conversation.heard == ["My printer says it is offline."]
    assert both.get_messages()[-1] == {"role": "user", "content": "My printer says it is offline."}


async def test_what_the_model_did_with_a_function_is_not_taken_back():
    """The model answered the first part by calling one of the flow's functions (an
    OpenAI-compatible server offers them): that stands; what the caller went on with is
    decided on by itself."""
    conversation = Conversation(Reply(), Reply(say="Sure."))
    first = context(GREETING, ("user", "Open a ticket for my printer."))
    went_on = context(
        GREETING,
        ("user", "Open a ticket for my printer."),
        ("tool", '{"say": "Your ticket is INC0000013."}'),
        ("user", "It is on the third floor."),
    )
    await run_test(
        processor(conversation, [2, 2]),
        frames_to_send=[LLMContextFrame(first), LLMContextFrame(went_on)],
    )
    assert conversation.rollbacks == []
    assert conversation.heard == ["Open a ticket for my printer.", "It is on the third floor."]

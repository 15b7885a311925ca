"""Runbook grounding per turn, on the real starter knowledge base and the real retriever."""

from __future__ import annotations

from pipecat.frames.frames import LLMContextFrame, TTSSpeakFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from flows import prompts
from voice_agent.grounding import RunbookGrounder, TurnNote
from voice_agent.knowledge.store import KnowledgeUnavailable


def context(*user_turns: str) -> LLMContext:
    messages = []
    for text in user_turns:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return LLMContext(messages=messages[:-1])


async def ground(grounder: RunbookGrounder, *user_turns: str):
    down, _ = await run_test(grounder, frames_to_send=[LLMContextFrame(context(*user_turns))])
    return down


def spoken(frames) -> list[str]:
    return [f.text for f in frames if isinstance(f, TTSSpeakFrame)]


async def test_a_covered_problem_is_walked_through_one_step_at_a_time(small_engines):
    said, grounded = [], []
    grounder = RunbookGrounder(
        small_engines.knowledge, TurnNote(),
        on_grounded=lambda c, e: grounded.append((c, e)), on_say=said.append,
    )  # fmt: skip
    down = await ground(grounder, "My VPN won't connect when I'm working from home.")
    (first,) = spoken(down)
    assert first.startswith("Let's start with this: open any public website")
    assert first.endswith("Did that work?") and said == [first]
    assert not any(isinstance(f, LLMContextFrame) for f in down)  # no model needed
    ((citations, error),) = grounded
    assert error is None and citations[0]["path"] == "vpn-cannot-connect.md"
    assert citations[0]["similarity"] >= 0.84

    # "no, still nothing" moves on to the next step of the same runbook
    down = await ground(grounder, "My VPN won't connect.", "No, it still doesn't work.")
    assert spoken(down)[0].startswith("Okay, next: if you are on hotel")
    assert grounded[-1][0][0]["path"] == "vpn-cannot-connect.md"
    # "yes, that worked" closes it
    down = await ground(grounder, "My VPN won't connect.", "ok", "Yes, that worked, thanks!")
    assert spoken(down) == [prompts.STEP_WORKED] and grounder.walk is None


async def test_when_every_step_failed_a_ticket_is_offered(small_engines):
    grounder = RunbookGrounder(small_engines.knowledge, TurnNote())
    await ground(grounder, "My laptop won't turn on at all.")
    steps = len(grounder.walk.steps)
    for _ in range(steps - 1):
        await ground(grounder, "My laptop won't turn on.", "No, nothing happens.")
    down = await ground(grounder, "My laptop won't turn on.", "No, still nothing.")
    assert spoken(down) == [prompts.STEPS_EXHAUSTED] and grounder.walk is None


async def test_an_uncovered_problem_is_said_plainly(small_engines):
    note = TurnNote()
    grounder = RunbookGrounder(small_engines.knowledge, note)
    down = await ground(grounder, "Can you book me a table for two at an Italian restaurant?")
    assert note() == prompts.NO_RUNBOOK_NOTE  # the model says so, and offers a ticket
    assert any(isinstance(f, LLMContextFrame) for f in down) and not spoken(down)


class DownRetriever:
    """The real retriever's interface over a store that is down."""

    class store:  # noqa: N801 - mirrors the attribute of the real retriever
        def __len__(self) -> int:
            raise KnowledgeUnavailable("Qdrant at http://kb:6333 is unreachable")

    store = store()


async def test_a_store_that_is_down_is_heard_not_a_crash():
    fallbacks, grounded = [], []
    grounder = RunbookGrounder(
        DownRetriever(), TurnNote(),
        on_grounded=lambda c, e: grounded.append(e), on_say=fallbacks.append,
    )  # fmt: skip
    down = await ground(grounder, "My printer is jammed.")
    assert spoken(down) == [prompts.LOOKUP_DOWN] and fallbacks == [prompts.LOOKUP_DOWN]
    assert not any(isinstance(f, LLMContextFrame) for f in down)
    assert grounded == ["lookup_unavailable"]


async def test_no_knowledge_base_at_all_is_heard_too():
    grounder = RunbookGrounder(None, TurnNote())
    down = await ground(grounder, "Outlook keeps asking for my password.")
    assert [f.text for f in down if isinstance(f, TTSSpeakFrame)] == [prompts.LOOKUP_DOWN]


async def test_a_store_that_is_down_leaves_a_ticket_and_says_its_number(store):
    call_id = store.start_call("simulated")

    async def open_ticket(summary: str) -> str:
        return store.open_ticket(summary=summary, call_id=call_id, reason="runbooks_unavailable")

    grounder = RunbookGrounder(DownRetriever(), TurnNote(), open_ticket=open_ticket)
    down = await ground(grounder, "My printer is jammed again.")
    (said,) = spoken(down)
    (ticket,) = store.tickets_for_call(call_id)
    assert ticket["number"] == "INC0000001" and ticket["summary"] == "My printer is jammed again."
    assert said == prompts.lookup_down_with_ticket("INC0000001")
    assert "I N C 0 0 0 0 0 0 1" in said  # spelled out, one character at a time

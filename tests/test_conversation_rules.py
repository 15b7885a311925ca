"""The conversation's rules with no model at all: fakes for the triage classifier, the runbook
search and the dialogue-act classifier, and a language model that is never called.

What stays real: the conversation (voice_agent.flows) on pipecat.flows' FlowManager, ``Triager``
with the guide's rules and taxonomy (over a classifier made of the guide's keyword rules), the
built-in ticket store on SQLite.
tests/test_flows.py runs the same conversation with the real classifiers and runbooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from tests.conftest import small_settings
from tests.test_flows import Call
from voice_agent.flows import prompts
from voice_agent.knowledge.retriever import ArticleHit, ChunkHit
from voice_agent.knowledge.store import StoredChunk
from voice_agent.triage.classifier import Prediction
from voice_agent.triage.rules import rule_category
from voice_agent.triage.service import Triager
from voice_agent.triage.taxonomy import load_taxonomy

VPN_STEPS = (
    "1. Check that the laptop is online: open any website.\n"
    "2. Sign out of the VPN client and sign in again.\n"
    "3. Restart the laptop and connect once more."
)


class KeywordClassifier:
    """The triage model's place: the guide's keyword rules, sure of what they match."""

    def __init__(self, categories: list[str], priorities: list[str]) -> None:
        self.categories = categories
        self.priorities = priorities

    def predict(self, text: str) -> Prediction:
        matched = rule_category(text)
        category = matched[0] if matched else "other"
        rest = 0.1 / (len(self.categories) - 1)
        probs = {c: 0.9 if c == category else rest for c in self.categories}
        return Prediction(category, 0.9, "P3", 0.9, probs)


class PhraseActs:
    """The dialogue-act classifier's place: a few phrases, one act each; anything else is a
    description of the problem."""

    PHRASES = (
        ("worked", "that worked"),
        ("not_worked", "didn't work"),
        ("not_worked", "still doesn't"),
        ("goodbye", "that's all"),
    )

    def predict(self, text: str) -> dict[str, float]:
        lowered = text.lower()
        act = next((act for act, phrase in self.PHRASES if phrase in lowered), "problem")
        return {act: 0.9}


@dataclass
class Runbooks:
    """The runbook search's place: one VPN runbook, found by its words."""

    chunks_: tuple[StoredChunk, ...] = (
        StoredChunk("c1", "kb", "vpn.md", 0, "VPN won't connect", "Steps", VPN_STEPS),
    )

    @property
    def store(self) -> Runbooks:
        return self

    def __len__(self) -> int:
        return 1

    def chunks(self) -> tuple[StoredChunk, ...]:
        return self.chunks_

    def search(self, text: str, k: int) -> list[ArticleHit]:
        if "vpn" not in text.lower():
            return []
        chunk = self.chunks_[0]
        best = ChunkHit(chunk.id, chunk.section, chunk.text, 1.0)
        return [ArticleHit("vpn.md", chunk.title, 1.0, best, root="kb", similarity=0.9)]


@pytest.fixture
def engines(tmp_path):
    # the model is named but never reached: the conversation speaks these turns itself
    settings = small_settings(
        tmp_path, llm_backend="openai", llm_base_url="http://127.0.0.1:9/v1", llm_model="none"
    )
    taxonomy = load_taxonomy(settings.triage_taxonomy)
    keywords = KeywordClassifier(list(taxonomy.category_names), list(taxonomy.priority_names))
    triage = Triager(taxonomy, keywords)  # type: ignore[arg-type]
    return SimpleNamespace(
        settings=settings, triage=triage, knowledge=Runbooks(), acts=PhraseActs()
    )


async def test_a_runbook_is_walked_step_by_step_and_the_call_ends_resolved(engines, store):
    call = await Call(engines, store).start()
    reply = await call.say("Hi, this is Dana Whitfield, you can call me back on 555 0142.")
    assert reply.say == prompts.ask_problem("Dana Whitfield")
    assert call.record["name"] == "Dana Whitfield" and call.record["number"] == "5550142"

    reply = await call.say("My VPN won't connect when I'm working from home.")
    assert call.record["triage"].category == "network"
    assert reply.say.startswith("Okay, I have a guide for this: VPN won't connect.")
    assert "open any website" in reply.say and reply.say.endswith("Did that work?")
    reply = await call.say("No, it still doesn't connect.")
    assert (
        reply.say == "Next, try this: sign out of the VPN client and sign in again. Did that work?"
    )
    reply = await call.say("Yes, that worked, thanks.")
    assert reply.say == prompts.GLAD_IT_WORKED and call.record["outcome"] == "resolved"
    reply = await call.say("No, that's all. Bye.")
    assert reply.say == prompts.GOODBYE and reply.end_call and call.tickets() == []


async def test_a_security_incident_escalates_with_a_priority_ticket(engines, store):
    call = await Call(engines, store).start()
    reply = await call.say(
        "This is Dana. I clicked a link in a phishing email and now there's a virus warning."
    )
    (ticket,) = call.tickets()
    assert call.node == "escalation" and ticket["category"] == "security"
    assert ticket["priority"] in ("P1", "P2") and reply.transfer
    assert call.record["outcome"] == "transferred"


async def test_no_transfer_possible_so_a_call_back_is_arranged(engines, store):
    call = await Call(engines, store, can_transfer=False).start()
    reply = await call.say("Hi, this is Omar Haddad. I want to speak to a technician.")
    assert not reply.transfer and reply.say == prompts.OFFER_CALLBACK
    reply = await call.say("No, a real person please.")
    (ticket,) = call.tickets()
    assert prompts.spell(ticket["number"]) in reply.say and ticket["reason"] == "callback"
    assert call.record["outcome"] == "callback"


async def test_with_no_runbooks_the_caller_gets_a_ticket(engines, store):
    call = await Call(engines, store, runbooks=None).start()
    reply = await call.tell("My VPN won't connect when I'm working from home.")
    (ticket,) = call.tickets()
    assert reply.say == prompts.lookup_down_with_ticket(ticket["number"])
    assert reply.error == "lookup_unavailable" and ticket["category"] == "network"
    assert call.record["outcome"] == "ticket"


async def test_a_tickets_status_is_read_back_by_its_number(engines, store):
    earlier = await Call(engines, store).start()
    await earlier.tell("My monitor flickers all the time.", name="Omar Haddad")
    await earlier.say("Please just open a ticket for me.")
    (ticket,) = earlier.tickets()

    call = await Call(engines, store).start()
    reply = await call.say("I'm calling to check on the status of my ticket.")
    assert reply.say == prompts.ASK_NAME_FOR_STATUS
    reply = await call.say("Omar Haddad.")
    assert reply.say == prompts.ASK_TICKET_NUMBER
    spoken = " ".join(ticket["number"][3:].lstrip("0"))
    reply = await call.say(f"It's I N C {spoken}.")
    assert reply.say.startswith(f"Ticket {prompts.spell(ticket['number'])} is open")
    assert call.record["outcome"] == "status"

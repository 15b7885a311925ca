"""The helpdesk conversation from text alone: every specialist path, escalation, transfer, tickets.

Real parts: the trained triage classifier, the starter runbooks through the real retriever, the
built-in ticket store in SQLite, and pipecat.flows' FlowManager over a real (idle) pipeline.
"""

from __future__ import annotations

import pytest
from pipecat.flows import FlowManager
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair

from voice_agent.call.pipeline import make_llm_service
from voice_agent.flows import caller_words, prompts
from voice_agent.flows.conversation import HelpdeskConversation, IrreversibleDecision
from voice_agent.flows.runbooks import RunbookGuide
from voice_agent.flows.services import HelpdeskServices
from voice_agent.speech.answer_grammar import Expected
from voice_agent.storage import CallStore
from voice_agent.tickets import make_ticket_service


class Call:
    """One conversation, typed: what the agent answers, and what the call record learned."""

    def __init__(self, engines, store: CallStore, *, can_transfer=True, runbooks="real"):
        self.store = store
        self.call_id = store.start_call("test", caller="+15550100")
        self.record: dict = {}
        retriever = engines.knowledge if runbooks == "real" else None
        self.services = HelpdeskServices(
            runbooks=RunbookGuide(retriever),
            triage=engines.triage,
            tickets=make_ticket_service(engines.settings, store),
            acts=engines.acts,
            call_id=self.call_id,
            caller_phone="+15550100",
            can_transfer=can_transfer,
            on_triage=lambda result, secs: self.record.update(triage=result),
            on_caller=lambda name, number: self.record.update(name=name, number=number),
            on_outcome=lambda outcome: self.record.update(outcome=outcome),
        )
        context = LLMContextAggregatorPair(LLMContext())
        llm = make_llm_service(engines, engines.settings, "You are a helpdesk agent.")
        worker = PipelineWorker(Pipeline([context.user(), llm, context.assistant()]))
        self.conversation = HelpdeskConversation(
            self.services, FlowManager(llm=llm, context_aggregator=context, worker=worker)
        )

    async def start(self) -> Call:
        await self.conversation.start()
        return self

    async def say(self, text: str, heard_logprob: float | None = None):
        return await self.conversation.handle(text, heard_logprob=heard_logprob)

    async def tell(self, problem: str, heard_logprob: float | None = None, name="Dana Whitfield"):
        """A problem from a caller who has not said who they are: the agent asks their name
        first, then works on the problem."""
        reply = await self.say(problem, heard_logprob)
        if reply.say == prompts.ASK_NAME_FIRST:
            reply = await self.say(f"{name}.")
        return reply

    @property
    def node(self) -> str | None:
        return self.conversation.node

    def tickets(self) -> list[dict]:
        return self.store.tickets_for_call(self.call_id)


@pytest.fixture
async def call(small_engines, store):
    return await Call(small_engines, store).start()


async def test_a_call_from_greeting_to_goodbye_with_a_runbook_that_works(call):
    assert call.node == "greeting"
    reply = await call.say("Hi, this is Dana Whitfield, you can call me back on 555 0142.")
    assert reply.say == prompts.ask_problem("Dana Whitfield")
    assert call.record["name"] == "Dana Whitfield" and call.record["number"] == "5550142"

    reply = await call.say("My VPN won't connect when I'm working from home.")
    assert call.node == "network_support"
    assert call.record["triage"].category == "network"
    # the problem confirmed in one sentence, then the runbook's first step
    assert reply.say.startswith("Okay, I have a guide for this: VPN won't connect. Let's start")
    assert reply.say.endswith("Did that work?")
    assert reply.citations[0]["path"] == "vpn-cannot-connect.md"
    assert {"triage_done", "lookup_done"} <= set(reply.stages)

    reply = await call.say("No, it still doesn't connect.")
    assert reply.say.startswith(("Next, try this:", "Last thing to try:"))
    reply = await call.say("Yes! That worked, thank you.")
    assert reply.say == prompts.GLAD_IT_WORKED and call.node == "wrap_up"
    assert call.record["outcome"] == "resolved"

    reply = await call.say("No, that's all. Thanks.")
    assert reply.say == prompts.GOODBYE and reply.end_call
    assert call.tickets() == []


SPECIALIST_CALLS = {
    "account_access": "I forgot my Windows password and now my account is locked out.",
    "email": "Outlook keeps asking me for my password and my mailbox won't load.",
    "network": "The Wi-Fi on my laptop keeps dropping every few minutes in the office.",
    "printer": "The printer on the third floor says it's offline and nothing prints.",
    "hardware": "My laptop won't turn on at all, even when it's plugged in.",
    "software": "Excel crashes every time I open the monthly report spreadsheet.",
    "phone": "My desk phone has no dial tone and I can't make any calls.",
}


@pytest.mark.parametrize("category", sorted(SPECIALIST_CALLS))
async def test_each_category_has_its_specialist_path(call, category):
    reply = await call.tell(SPECIALIST_CALLS[category])
    assert call.record["triage"].category == category
    assert call.node == f"{category}_support"
    # a runbook step, spoken as written; a runbook that may not fit, checked with the caller
    # first; or a ticket offered when no runbook covers the problem
    assert (
        reply.say.endswith("Did that work?")
        or "is this about:" in reply.say.lower()
        or reply.say == prompts.NO_RUNBOOK
    )


async def test_no_runbook_then_a_ticket_with_the_callers_name(call):
    reply = await call.say("The ERP system shows the wrong prices on customer delivery orders.")
    assert reply.say == prompts.ASK_NAME_FIRST  # who is calling, before the problem
    reply = await call.say("Priya Raman.")
    assert call.node == "software_support" and call.record["name"] == "Priya Raman"
    assert reply.say == prompts.NO_RUNBOOK  # a ticket offered, no model on this path
    reply = await call.say("Yes please, open a ticket.")
    (ticket,) = call.tickets()
    assert reply.say == prompts.ticket_opened(ticket["number"], "+15550100")
    assert ticket["category"] == "software" and ticket["priority"] in ("P3", "P2")
    assert ticket["caller_name"] == "Priya Raman" and "wrong prices" in ticket["summary"]
    assert call.node == "wrap_up" and call.record["outcome"] == "ticket"


async def test_asking_for_a_ticket_in_the_middle_of_the_steps(call):
    reply = await call.say("Hi, I'm Dana Whitfield. The printer on the third floor is offline.")
    assert call.node == "printer_support"
    if "is this about:" in reply.say.lower():
        reply = await call.say("Yes, that's right.")
    assert reply.say.endswith("Did that work?")
    reply = await call.say("Yes please, just open a ticket.")
    (ticket,) = call.tickets()
    assert reply.say == prompts.ticket_opened(ticket["number"], "+15550100")
    assert ticket["category"] == "printer" and ticket["caller_name"] == "Dana Whitfield"


async def test_every_step_failed_so_a_ticket_is_offered_and_declined(call):
    reply = await call.tell("My laptop won't turn on at all, even when it's plugged in.")
    while reply.say and reply.say.endswith("Did that work?"):
        reply = await call.say("No, nothing happens.")
    assert reply.say == prompts.STEPS_EXHAUSTED
    reply = await call.say("No, don't bother.")
    assert reply.say == prompts.NO_TICKET and call.tickets() == []


async def test_a_security_incident_escalates_to_a_human_with_a_priority_ticket(call):
    reply = await call.say(
        "This is Dana. I clicked a link in a phishing email and now there's a virus warning."
    )
    assert call.node == "escalation"
    (ticket,) = call.tickets()
    assert ticket["category"] == "security" and ticket["priority"] in ("P1", "P2")
    assert reply.transfer and "security matter" in reply.say
    assert call.record["outcome"] == "transferred"


async def test_p1_escalates_and_without_transfer_promises_a_call_back(small_engines, store):
    call = await Call(small_engines, store, can_transfer=False).start()
    reply = await call.say(
        "The internet is down for the whole site, nobody in the building can work."
    )
    assert call.record["triage"].priority == "P1"
    assert reply.say == prompts.ask_name_for_urgent(security=False)  # the ticket needs a name
    reply = await call.say("Karen Walsh.")
    assert call.record["name"] == "Karen Walsh"
    assert call.node == "escalation" and not reply.transfer
    (ticket,) = call.tickets()
    assert ticket["priority"] == "P1"
    assert "call you back" in reply.say and prompts.spell(ticket["number"]) in reply.say


async def test_ticket_status_by_number(small_engines, store, call):
    earlier = await Call(small_engines, store).start()
    await earlier.tell("The ERP system shows the wrong prices on delivery orders.", name="Omar")
    await earlier.say("Yes please.")
    (ticket,) = earlier.tickets()

    reply = await call.say("I'm calling to check on the status of my ticket.")
    assert reply.say == prompts.ASK_NAME_FOR_STATUS
    assert call.record["triage"].category == "ticket_status"
    reply = await call.say("Omar Haddad.")
    assert reply.say == prompts.ASK_TICKET_NUMBER
    # the recogniser hears the answer under the ticket-number grammar
    assert call.conversation.expected_answer() is Expected.TICKET_NUMBER
    spoken_digits = " ".join(ticket["number"][3:].lstrip("0"))
    reply = await call.say(f"It's I N C {spoken_digits}.")
    assert reply.say.startswith(f"Ticket {prompts.spell(ticket['number'])} is open")
    assert call.node == "wrap_up"
    assert call.conversation.expected_answer() is Expected.SPEECH

    reply = await call.say("What's the status of ticket INC9999999?")
    assert reply.say == prompts.ticket_not_found("INC9999999")


async def test_asking_for_a_person_transfers_or_explains(small_engines, store, call):
    reply = await call.say("Can I just talk to a real person please?")
    assert reply.transfer and reply.say == prompts.TRANSFERRING
    assert call.record["outcome"] == "transferred"

    # no transfer possible: a call back is offered once; asked again, it is arranged, and the
    # caller never hears the same refusal twice
    alone = await Call(small_engines, store, can_transfer=False).start()
    reply = await alone.say("Hi, this is Omar Haddad. I want to speak to a technician.")
    assert not reply.transfer and reply.say == prompts.OFFER_CALLBACK
    reply = await alone.say("No, a real person please.")
    (ticket,) = alone.tickets()
    assert reply.say.startswith("I understand. There's no one I can put you through to")
    assert prompts.spell(ticket["number"]) in reply.say and ticket["reason"] == "callback"
    assert alone.record["outcome"] == "callback"


async def test_with_the_runbooks_down_the_caller_gets_a_ticket(small_engines, store):
    call = await Call(small_engines, store, runbooks=None).start()
    reply = await call.tell("My VPN won't connect when I'm working from home.")
    (ticket,) = call.tickets()
    assert reply.say == prompts.lookup_down_with_ticket(ticket["number"])
    assert reply.error == "lookup_unavailable" and ticket["category"] == "network"


async def test_a_ticket_is_looked_up_when_the_caller_has_no_number(small_engines, store, call):
    earlier = await Call(small_engines, store).start()
    await earlier.say("My name is Diana Ross. My monitor flickers all the time.")
    await earlier.say("Please just open a ticket for me.")
    (ticket,) = earlier.tickets()

    reply = await call.say("I opened a ticket about my monitor, what's happening with it?")
    assert reply.say == prompts.ASK_NAME_FOR_STATUS
    reply = await call.say("It's Diana Ross.")
    assert reply.say == prompts.ASK_TICKET_NUMBER
    reply = await call.say("Sorry, I don't have it.")
    assert reply.say.startswith(f"Ticket {prompts.spell(ticket['number'])} is open")
    assert call.record["outcome"] == "status" and call.record["name"] == "Diana Ross"


async def test_small_talk_goes_to_the_model_without_triage(call):
    reply = await call.say("Hello, can you hear me?")
    assert reply.say is None and reply.note is None and "triage" not in call.record


@pytest.mark.parametrize(
    ("text", "name", "number"),
    [
        ("This is Dana Whitfield, call me back on five five five, oh one four two.",
         "Dana Whitfield", "5550142"),
        ("Hi, my name is Omar and my number is 07700 900123.", "Omar", "07700900123"),
        ("I'm calling because my printer is broken.", None, None),
        ("It's double four, seven seven, one two three at extension nine.", None, "4477123"),
    ],
)  # fmt: skip
def test_names_and_callback_numbers_as_whisper_writes_them(text, name, number):
    assert caller_words.caller_name(text) == name
    got = caller_words.callback_number(text)
    assert (got or "").startswith(number or "") and bool(got) == bool(number)


@pytest.mark.parametrize(
    ("text", "worked"),
    [
        ("Yes, that worked!", True),
        ("Yeah it's working now, thanks.", True),
        ("No, it still doesn't work.", False),
        ("Nope, same thing.", False),
        ("Hmm, what do you mean by the network icon?", None),
    ],
)
def test_did_that_work(text, worked):
    assert caller_words.step_worked(text) is worked


@pytest.mark.parametrize(
    ("text", "wants"),
    [
        ("Please just open it ticket for me.", True),
        ("Please just open it to get for me.", True),  # Whisper tiny, "a ticket"
        ("Can you open it to get for me, please?", True),
        ("I can't open it to get my files.", False),
        ("I'm trying to get into Teams.", False),
        ("Can you open up a ticket?", True),
        ("Yes, raise an incident please.", True),
        ("I already have a ticket open for this.", False),
        ("Please open Outlook for me.", False),
    ],
)
def test_asking_for_a_ticket(text, wants):
    assert caller_words.wants_ticket(text) is wants


@pytest.mark.parametrize(
    ("text", "after_anything_else", "goodbye"),
    [
        ("I'm good, thanks, and you?", False, False),  # small talk, not a goodbye
        ("I'm good, thanks.", True, True),  # the answer to "anything else?"
        ("No, that's all. Bye!", False, True),
        ("Nope.", True, True),
    ],
)
def test_goodbyes(text, after_anything_else, goodbye):
    assert caller_words.says_goodbye(text, asked_anything_else=after_anything_else) is goodbye


@pytest.mark.parametrize(
    "text",
    [
        "I'm planning to leave right after Thursday.",  # "right" deep in a sentence is no yes
        "Okay so the thing is my screen flickers when I dock the laptop.",
    ],
)
def test_a_sentence_is_not_a_yes_to_the_ticket_offer(text):
    assert not caller_words.said_yes(text)


# -- when hearing fails: transcripts as Whisper wrote them over an 8 kHz line -------------------


async def test_an_unsure_transcript_gets_one_natural_question_before_a_runbook(call):
    """Whisper was unsure (a low mean log-probability): the agent checks what it understood
    instead of walking a runbook on a guess, and asks only once."""
    reply = await call.tell("Hi, my maybe hand won't connect from the hotel.", heard_logprob=-0.9)
    assert reply.say == "Sorry, the line is a bit unclear. Is this about: VPN won't connect?"
    assert call.tickets() == [] and "Did that work?" not in reply.say
    reply = await call.say("Yes, that's it.", heard_logprob=-0.3)
    assert reply.say.startswith("Okay, I have a guide for this: VPN won't connect.")
    assert reply.citations[0]["path"] == "vpn-cannot-connect.md"


async def test_a_rejected_runbook_is_not_offered_again(call):
    reply = await call.tell(
        "I deleted a folder on the shared drive by mistake, can you restore it?"
    )
    assert "is this about:" in reply.say.lower()
    guessed = reply.say.split("about:", 1)[1]
    reply = await call.say("No.")
    assert reply.say == prompts.RETELL
    reply = await call.say("I deleted a folder and I need it back from the backup.")
    assert guessed not in (reply.say or "")
    if "is this about:" in reply.say.lower():
        reply = await call.say("No.")  # a second guess, never a third
    assert reply.say == prompts.NO_RUNBOOK  # nothing else fits: a ticket is offered
    reply = await call.say("Yes.")
    (ticket,) = call.tickets()  # the name was asked before the problem was worked on
    assert reply.say == prompts.ticket_opened(ticket["number"], "+15550100")


async def test_garbled_words_get_a_request_to_say_it_again_not_a_ticket(call):
    reply = await call.tell("The scram booked on my dusk is flashing purple.", heard_logprob=-1.1)
    assert reply.say == prompts.SAY_AGAIN and call.tickets() == []


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Open up tickets for me please.", "ticket"),  # Whisper's "open a ticket for me"
        ("No, nothing else. Bye.", "goodbye"),
        ("Nope, it's still crushing.", "next step"),
        ("Oh, I hadn't done that. Okay, it connects now.", "worked"),
    ],
)
async def test_answers_during_a_runbook_walk_as_whisper_wrote_them(call, said, expected):
    reply = await call.say("This is Dana Whitfield. My VPN won't connect from home.")
    assert reply.say.endswith("Did that work?")
    reply = await call.say(said)
    if expected == "ticket":
        (ticket,) = call.tickets()
        assert reply.say == prompts.ticket_opened(ticket["number"], "+15550100")
    elif expected == "goodbye":
        assert reply.end_call and reply.say == prompts.GOODBYE
    elif expected == "next step":
        assert reply.say.startswith("Next, try this:")
    else:
        assert reply.say == prompts.GLAD_IT_WORKED and call.record["outcome"] == "resolved"


async def test_an_answer_that_is_neither_yes_nor_no_is_asked_once(call):
    await call.say("This is Dana Whitfield. My VPN won't connect from home.")
    reply = await call.say("Hmm.")
    assert reply.say == prompts.ASK_STEP_RESULT
    reply = await call.say("Purple.")
    assert reply.say.startswith("Next, try this:")  # taken as not fixed, never a loop


async def test_the_caller_can_ask_to_hear_it_again(call):
    first = await call.say("This is Dana Whitfield. My VPN won't connect from home.")
    again = await call.say("Sorry, can you say that again?")
    assert again.say == first.say


async def test_a_name_heard_unsure_is_spelled_and_stored_on_the_call(call):
    reply = await call.say("My printer on the third floor won't print, please open a ticket.")
    assert reply.say == prompts.ASK_NAME_FOR_TICKET
    assert call.conversation.expected_answer() is Expected.SPEECH
    reply = await call.say("It's Angela Reese.", heard_logprob=-0.8)
    assert reply.say == prompts.ASK_SPELLING
    assert call.conversation.expected_answer() is Expected.SPEECH  # letters: heard freely
    reply = await call.say("Angela, A-N-G-E-L-A. Ruiz, R-U-I-Z.")
    (ticket,) = call.tickets()
    assert ticket["caller_name"] == "Angela Ruiz" and call.record["name"] == "Angela Ruiz"


async def test_the_callers_name_and_number_reach_the_call_record_when_heard(call):
    reply = await call.say("Hey, Angela Ruiz here. The VPN keeps failing to connect.")
    assert call.record["name"] == "Angela Ruiz"  # not only once a ticket is opened
    assert reply.say.endswith("Did that work?")


async def test_a_security_incident_escalates_whatever_the_words(small_engines, store):
    call = await Call(small_engines, store, can_transfer=False).start()
    reply = await call.say(
        "Hi, Oliver Hart. An email said my bank account was frozen, so I clicked the link and "
        "typed in my password."
    )
    (ticket,) = call.tickets()
    assert ticket["category"] == "security" and ticket["priority"] == "P1"
    assert reply.say.startswith("This is a security matter, so I've opened priority ticket")
    assert "In the meantime" in reply.say and reply.citations  # what to do right now
    lost = await Call(small_engines, store, can_transfer=False).start()
    await lost.say("This is Mark Davis. My work laptop was lost in transit.")
    (ticket,) = lost.tickets()
    assert ticket["category"] == "security" and ticket["priority"] in ("P1", "P2")


async def test_a_decision_that_opened_a_ticket_is_not_taken_back(call):
    """A decision cut off by the caller going on may already have opened a ticket: taking it
    back and deciding again would open a second one, so it stands."""
    await call.say("The ERP system shows the wrong prices on customer delivery orders.")
    await call.say("Priya Raman.")
    before = call.conversation.checkpoint()
    await call.say("Yes please, open a ticket.")
    (ticket,) = call.tickets()
    with pytest.raises(IrreversibleDecision):
        call.conversation.rollback(before)
    assert call.conversation.state["ticket"] == ticket["number"]


async def test_a_decision_taken_back_is_as_if_only_the_whole_turn_was_said(
    small_engines, store, call
):
    """The caller paused mid-sentence and the first half was decided on; they went on, so the
    conversation goes back to its checkpoint and decides on all of it: the same answer and state
    as a call where the sentence came whole."""
    whole = "Dana Whitfield here. My laptop will not connect to the VPN from home."
    before = call.conversation.checkpoint()
    await call.say("Dana Whitfield here. My laptop")
    assert call.conversation.state != before  # the half was acted on (the caller's name)
    call.conversation.rollback(before)
    assert call.conversation.state == before
    reply = await call.say(whole)

    fresh = await Call(small_engines, store).start()
    expected = await fresh.say(whole)
    assert reply.say == expected.say and "VPN" in reply.say
    assert call.conversation.state.keys() == fresh.conversation.state.keys()
    assert call.conversation.state["awaiting"] == fresh.conversation.state["awaiting"]

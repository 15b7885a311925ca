"""Whole calls through the real pipeline: real Silero VAD, smart-turn, faster-whisper, llama.cpp
(the 135M model: mechanics, not answer quality) and Piper, on real speech, paced in real time.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CLEAN, TELEPHONY, engines_with, gold_transcripts
from tests.test_audio_and_stt import wer
from voice_agent.call.pipeline import make_llm_service
from voice_agent.call.runner import run_call
from voice_agent.engines import Engines
from voice_agent.flows import prompts
from voice_agent.llm.service import LLMGenerationError, LocalLLMService
from voice_agent.speech.audio import decode_audio_file, write_wav
from voice_agent.storage import CallStore
from voice_agent.telephony.caller_voice import CallerVoice
from voice_agent.telephony.simulated_call import simulate_call, synthesize_utterances
from voice_agent.tickets.records import NewTicket, TicketRecords

CLIPS = [
    CLEAN / "jfk.flac",
    CLEAN / "librispeech_test-clean_1089-134691-0001.flac",
    CLEAN / "fleurs_en_004.wav",
]


def rms(path: str) -> float:
    samples = decode_audio_file(path).samples.astype(np.float32)
    return float(np.sqrt(np.mean(samples**2)))


async def test_call_over_real_clips_is_heard_answered_and_stored(small_engines, store, tmp_path):
    report = await simulate_call(CLIPS, engines=small_engines, store=store, out_dir=tmp_path)
    gold = gold_transcripts()
    assert report["status"] == "completed"
    assert "IT helpdesk" in report["greeting"]["text"]
    assert report["greeting"]["audio_secs"] > 2
    assert len(report["turns"]) == 3
    # heard over the whole call (each turn is decoded with the agent's last words as Whisper's
    # prompt, and those depend on the small model's reply: in one clean-checkout run, one clip
    # read 0.27 where other runs pass 0.25, "them as dinosaurs" heard as "the nurse or his")
    references = [gold[f"clean/{clip.name}"] for clip in CLIPS]
    heard = [turn["transcript"] for turn in report["turns"]]
    assert wer(" ".join(references), " ".join(heard)) <= 0.25, heard
    for clip, turn in zip(CLIPS, report["turns"], strict=True):
        assert turn["error"] is None
        # each turn heard as its own sentence. FLEURS 004 in a call reads "don't think about
        # them as dinosaurs" as other words in about half the runs, with the whole window as
        # with the short one ("Many people wanted to come back in their centers because they
        # have feathers and can fly.", 0.47; "Many people's only help out in the center so
        # it's because...", 0.6; offline the same clip decodes word for word under the same
        # prompts): its bound only asks for the same sentence
        bound = 0.7 if clip.name.startswith("fleurs") else 0.35
        assert wer(gold[f"clean/{clip.name}"], turn["transcript"]) <= bound, turn["transcript"]
        assert turn["reply"].strip(), turn
        assert turn["reply_audio_secs"] > 0.3 and rms(turn["reply_audio"]) > 200
        lat = turn["latency"]
        # (a turn a runbook covers is answered without the model: no llm_first_token then)
        for name in ("stt_secs", "first_sentence_secs", "voice_to_voice_secs"):
            assert lat.get(name) is not None and lat[name] >= 0, (name, lat)
        # (the edge counts from the end of the audio file: a reply that began in the clip's
        # trailing silence is still playing when the file ends, and reads 0.0)
        assert 0 <= lat["edge_voice_to_voice_secs"] < 15

    stored = store.get_call(report["call_id"])
    assert stored["status"] == "completed" and stored["transport"] == "simulated"
    kinds = [t["kind"] for t in stored["turns"]]
    assert kinds[0] == "greeting"
    answered = [t for t in stored["turns"] if t["user_text"]]
    assert len(answered) >= 3
    for t in answered:
        st = t["stages"]
        assert st["speech_start"] < st["speech_end"] <= st["stt_done"] <= st["first_sentence"]
        assert st["first_sentence"] <= st["tts_first_audio"] <= st["answer_audio_out"]
        # an acknowledgement ("Okay.") may be heard before the answer, never after it
        assert st["speech_end"] < st["first_audio_out"] <= st["answer_audio_out"]
        if "llm_first_token" in st:
            assert st["stt_done"] <= st["llm_first_token"] <= st["tts_first_audio"]
        assert t["bot_text"].strip()
    assert report["summary"]["median_latency"]["voice_to_voice_secs"] > 0


async def test_bad_audio_is_reported_and_the_caller_still_hears_something(small_engines, tmp_path):
    engines = engines_with(small_engines, tmp_path, user_idle_secs=3.0)
    store = CallStore(engines.settings.resolved_database_url)
    unreadable = tmp_path / "unreadable.wav"
    unreadable.write_bytes(b"this is not audio at all" * 100)
    silence = write_wav(tmp_path / "silence.wav", bytes(16000 * 2 * 3), 16000)
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000 * 2) * 3000).astype("<i2").tobytes()
    noise_wav = write_wav(tmp_path / "noise.wav", noise, 16000)

    report = await simulate_call(
        [unreadable, noise_wav, CLIPS[1], silence],
        engines=engines,
        store=store,
        out_dir=tmp_path / "out",
        reply_timeout_secs=20,
    )
    turns = report["turns"]
    assert report["status"] == "completed"
    assert "unreadable.wav" in turns[0]["error"]
    for turn in turns:  # never dead air: every caller turn hears a spoken reply
        assert turn["reply_audio_secs"] > 0.3, turn
        assert not turn["reply_timed_out"], turn
    assert len(turns) == 4
    assert prompts.STILL_THERE in turns[0]["reply"]  # the unreadable turn is heard as silence
    assert prompts.STILL_THERE in turns[1]["reply"] or prompts.DIDNT_CATCH in turns[1]["reply"]
    gold = gold_transcripts()[f"clean/{CLIPS[1].name}"]
    assert wer(gold, turns[2]["transcript"]) <= 0.25
    assert prompts.STILL_THERE in turns[3]["reply"]
    stored = store.get_call(report["call_id"])
    assert stored["status"] == "completed"
    assert sum(t["kind"] == "fallback" for t in stored["turns"]) >= 2


async def test_a_silent_line_is_prompted_then_closed_politely(small_engines, tmp_path):
    engines = engines_with(small_engines, tmp_path, user_idle_secs=2.0)
    store = CallStore(engines.settings.resolved_database_url)
    silence = write_wav(tmp_path / "silence.wav", bytes(16000 * 2), 16000)
    report = await simulate_call(
        [silence] * 5,
        engines=engines,
        store=store,
        out_dir=tmp_path / "out",
        reply_timeout_secs=15,
    )
    replies = [t["reply"] for t in report["turns"]]
    assert replies[:2] == [prompts.STILL_THERE, prompts.STILL_THERE]
    assert replies[2] == prompts.GOODBYE_IDLE
    assert len(report["turns"]) == 3  # the agent hung up; the caller's other turns never happen
    assert store.get_call(report["call_id"])["status"] == "completed"


def llm_of(service: type[LocalLLMService]):
    """A ``make_llm`` for the call that builds ``service`` (a LocalLLMService made to misbehave)
    over the session's small model, with the call's system prompt."""

    def make(engines, settings, system, turn_note=None):
        real = make_llm_service(engines, settings, system)
        return service(
            engines.llm,
            max_tokens=24,
            temperature=0.0,
            seed=1,
            system_instruction=real._settings.system_instruction,
            turn_note=turn_note,
        )

    return make


class FailingLLM(LocalLLMService):
    """The real service, told to break mid-answer after its first words."""

    async def _completion_chunks(self, messages, tools, mode, only):
        produced = 0
        async for chunk in super()._completion_chunks(messages, tools, mode, only):
            yield chunk
            produced += 1
            if produced == 2:
                raise LLMGenerationError("llama.cpp generation failed: simulated device loss")


async def test_a_model_failure_mid_turn_is_heard_as_a_fallback_and_recorded(
    small_engines, store, tmp_path
):
    # small talk: the one kind of turn the model answers in its own words
    said = synthesize_utterances(["Hello, can you hear me?"], small_engines, tmp_path / "caller")
    report = await simulate_call(
        said, engines=small_engines, store=store, out_dir=tmp_path, make_llm=llm_of(FailingLLM)
    )
    turn = report["turns"][0]
    assert report["status"] == "completed"
    assert prompts.TROUBLE.split(".")[0] in turn["reply"]
    stored = store.get_call(report["call_id"])
    codes = [t["error_code"] for t in stored["turns"] if t["error_code"]]
    assert "llm_failed" in codes
    assert any(t["user_text"] for t in stored["turns"])  # what the caller said is kept


class StalledLLM(LocalLLMService):
    """The real service, stuck before its first word (an overloaded model or model server)."""

    async def _completion_chunks(self, messages, tools, mode, only):
        await asyncio.Event().wait()  # never set: only the watchdog's interruption ends it
        yield  # (an async generator, as the real one)


async def test_a_stalled_answer_is_held_then_abandoned_out_loud(small_engines, tmp_path):
    engines = engines_with(small_engines, tmp_path, answer_hold_secs=2.0, answer_give_up_secs=5.0)
    store = CallStore(engines.settings.resolved_database_url)

    # small talk: the one kind of turn the model answers in its own words
    said = synthesize_utterances(["Hello, can you hear me?"], engines, tmp_path / "caller")
    report = await simulate_call(
        said, engines=engines, store=store, out_dir=tmp_path, make_llm=llm_of(StalledLLM)
    )
    assert report["status"] == "completed"
    heard = report["turns"][0]["reply"]
    assert prompts.HOLD_ON in heard and prompts.TROUBLE.split(".")[0] in heard, heard
    stored = store.get_call(report["call_id"])
    (turn,) = [t for t in stored["turns"] if t["user_text"]]
    assert turn["error_code"] == "answer_timeout"
    st = turn["stages"]
    # the holding phrase at 2 s after the caller stopped, the trouble phrase at 5 s (checked
    # every 0.25 s; the phrase then takes its time to synthesise and play: 2.2 s in CI once,
    # on a CPU busy enough that Whisper took 3.2 s over "Hello, can you hear me?")
    assert 2.0 <= st["answer_held"] - st["speech_end"] < 3.5, st
    assert 5.0 <= st["answer_audio_out"] - st["speech_end"] < 9.0, st


async def test_barge_in_cuts_the_agent_off_and_is_recorded(small_engines, tmp_path):
    engines = engines_with(small_engines, tmp_path, llm_max_tokens=80)
    store = CallStore(engines.settings.resolved_database_url)
    report = await simulate_call(
        [CLIPS[1], CLIPS[0]],
        engines=engines,
        store=store,
        out_dir=tmp_path / "out",
        # the first turn starts 0.8 s into the greeting (the agent's longest fixed words: a
        # reply may end before speech over it has lasted barge_in_min_speech_secs)
        barge_in_after_secs={1: 0.8},
    )
    first, second = report["turns"]
    assert first["transcript"] and first["reply"] and second["reply"]
    stored = store.get_call(report["call_id"])
    greeting, took = stored["turns"][:2]
    assert greeting["kind"] == "greeting" and greeting["interrupted"], stored["turns"]
    assert took["user_text"]
    # cut off while the caller talked: barge_in_min_speech_secs (1 s) after the VAD heard them
    assert greeting["stages"]["bot_done"] - took["stages"]["speech_start"] < 2.5


@pytest.mark.slow
async def test_a_sixty_second_monologue_is_transcribed_and_answered(small_engines, tmp_path):
    pieces = [decode_audio_file(p).samples for p in sorted(CLEAN.glob("fleurs_en_00*.wav"))[:6]]
    pause = np.zeros(16000 // 4, dtype=np.int16)  # short pauses: one long turn
    monologue = np.concatenate([x for p in pieces for x in (p, pause)])[: 16000 * 60]
    path = write_wav(tmp_path / "monologue.wav", monologue.tobytes(), 16000)
    store = CallStore(f"sqlite:///{tmp_path / 'm.db'}")
    report = await simulate_call([path], engines=small_engines, store=store, out_dir=tmp_path)
    turn = report["turns"][0]
    assert report["status"] == "completed"
    assert len(turn["transcript"].split()) > 90  # of the clips' 123 words (about 60 s of them)
    assert turn["reply"] and turn["reply_audio_secs"] > 0.3


async def test_with_the_runbooks_down_the_caller_hears_it_and_a_ticket_is_left(
    small_engines, store, tmp_path
):
    engines = Engines(
        small_engines.settings, small_engines.stt, small_engines.tts, small_engines.llm,
        small_engines.model_names, knowledge=None,  # the knowledge base could not be opened
        triage=small_engines.triage,
        acts=small_engines.acts,
    )  # fmt: skip
    # short, clear turns: what is tested is the lookup failing. With a long real clip first, this
    # test passed alone but failed in two full runs: the agent asked the caller to spell the name
    # that followed it and so never reached the lookup.
    said = ["My laptop screen keeps going black during video calls.", "It's Dana Whitfield."]
    paths = synthesize_utterances(said, engines, tmp_path / "caller")
    report = await simulate_call(paths, engines=engines, store=store, out_dir=tmp_path)
    heard = [(t["transcript"], t["reply"]) for t in report["turns"]]
    asked, turn = report["turns"]  # the caller's name first, then the lookup that fails
    assert asked["reply"].endswith(prompts.ASK_NAME_FIRST), heard
    assert report["status"] == "completed"
    assert "can't look that up right now" in turn["reply"] and "ticket number" in turn["reply"], (
        heard
    )
    assert turn["reply_audio_secs"] > 2
    (ticket,) = store.tickets_for_call(report["call_id"])
    assert ticket["reason"] == "runbooks_unavailable"
    assert "screen" in ticket["summary"].lower()
    stored = store.get_call(report["call_id"])
    assert any(t["error_code"] == "lookup_unavailable" for t in stored["turns"])


async def test_a_spoken_call_ends_with_a_ticket_of_the_right_category_and_priority(
    small_engines, store, tmp_path
):
    said = [
        "Hi, this is Dana Whitfield. The printer on the third floor says it is offline "
        "and nothing prints.",
        "Yes, that's right.",
        "No, it is still offline.",
        "Please just open a ticket for me.",
    ]
    paths = synthesize_utterances(said, small_engines, tmp_path / "caller")
    report = await simulate_call(paths, engines=small_engines, store=store, out_dir=tmp_path)
    assert report["status"] == "completed"
    heard = [(t["transcript"], t["reply"]) for t in report["turns"]]
    assert len(report["tickets"]) == 1, heard
    (ticket,) = report["tickets"]
    assert (ticket["category"], ticket["priority"]) == ("printer", "P3")
    assert ticket["caller_name"] == "Dana Whitfield" and "offline" in ticket["summary"].lower()
    assert report["call"]["category"] == "printer" and report["call"]["outcome"] == "ticket"
    checked, first, second, third = report["turns"]
    # two printer runbooks could fit: the agent checks which before the first step
    assert "is this about:" in checked["reply"].lower() and "print" in checked["reply"].lower()
    assert first["reply"].rstrip().endswith("Did that work?")  # a runbook step, as written
    assert prompts.spell(ticket["number"]) in third["reply"]  # the number is read back
    stored = store.get_call(report["call_id"])
    assert stored["category"] == "printer" and stored["triage"]["source"] in ("classifier", "rules")
    assert any(t["citations"] for t in stored["turns"])


async def test_a_caller_who_speaks_pii_leaves_none_of_it_in_the_stored_transcript(
    small_engines, tmp_path
):
    store = CallStore(f"sqlite:///{tmp_path / 'pii.db'}")  # redaction on, every kind (default)
    said = [
        "My email is dana dot whitfield at contoso dot com, and you can call me on 555 867 5309.",
        "My card number is 4111 1111 1111 1111, and my password is sunflower42.",
    ]
    paths = synthesize_utterances(said, small_engines, tmp_path / "caller")
    report = await simulate_call(paths, engines=small_engines, store=store, out_dir=tmp_path)
    heard = " ".join(t["transcript"] for t in report["turns"])
    # the caller was understood ("4111 1111 ..." may be written "4,111 1111 ...")...
    assert "4111" in re.sub(r"[\s,]", "", heard) and "867" in heard
    stored = " ".join(
        t["user_text"] + " " + t["bot_text"] for t in store.get_call(report["call_id"])["turns"]
    )
    assert "[phone]" in stored and "[card]" in stored and "[email]" in stored
    raw = stored.lower().replace(" ", "").replace("-", "")
    for leak in ("contoso", "@", "5678675309", "8675309", "4111"):
        assert leak not in raw, (leak, stored)  # ...and none of it was stored
    if "password is" in heard.lower():  # Whisper sometimes hears "my pass were to ..."
        assert "sunflower" not in raw, stored


async def test_a_ticket_number_read_out_is_heard_under_its_grammar(small_engines, store, tmp_path):
    """After "What's the ticket number?" the caller's digits are decoded under the
    ticket-number grammar (``voice_agent.speech.answer_grammar``), and the call record says so."""
    ticket = TicketRecords(store).insert(
        NewTicket(summary="My monitor flickers all the time.", category="hardware")
    )
    number = ticket.number
    asked = synthesize_utterances(
        ["Hi, I'm calling to check on my ticket, what's happening with it?", "It's John Smith."],
        small_engines,
        tmp_path / "caller",
    )
    # the number read by another voice, over an 8 kHz phone line
    line = f"I N C, {' '.join(number[3:])}."
    read = write_wav(tmp_path / "caller" / "number.wav", CallerVoice("en-us+m3").say(line), 8000)
    report = await simulate_call(
        [*asked, read], engines=small_engines, store=store, out_dir=tmp_path
    )
    heard = [(t["transcript"], t["reply"]) for t in report["turns"]]
    _, asked_number, answered = report["turns"]
    assert asked_number["reply"].endswith(prompts.ASK_TICKET_NUMBER), heard
    assert f"Ticket {prompts.spell(number)} is open" in answered["reply"], heard
    greeting, *caller_turns = store.get_call(report["call_id"])["turns"]
    assert caller_turns[-1]["understood"]["heard_as"] == "ticket_number"
    assert "heard_as" not in caller_turns[0]["understood"]  # an ordinary turn is heard freely


async def test_a_call_that_cannot_be_set_up_is_recorded_as_failed(small_engines, store, tmp_path):
    """A call whose services cannot be made (here: a model server named without its URL) is
    refused with the reason, and its record is closed as failed, not left in progress."""
    engines = engines_with(small_engines, tmp_path, llm_backend="openai", llm_base_url=None)
    with pytest.raises(ValueError, match="VOICE_AGENT_LLM_BASE_URL"):
        await run_call(
            None,  # type: ignore[arg-type]  # the call fails before it touches a transport
            engines=engines,
            store=store,
            transport_name="test",
            external_id="CA-setup-fails",
            audio_out_sample_rate=16000,
        )
    call = store.get_call_by_external_id("CA-setup-fails")
    assert call["status"] == "failed" and "VOICE_AGENT_LLM_BASE_URL" in call["error"]
    assert call["ended_at"] is not None


async def _over_the_greeting(
    engines, tmp_path, said_over_it: str | Path, after_secs: float = 1.0, then: Path = CLIPS[0]
) -> tuple[dict, dict]:
    """The caller says something (espeak-ng over the phone band, or a recording) ``after_secs``
    into the greeting, then states their problem (``then``) once the agent is quiet: (the
    simulated call's report, its record)."""
    store = CallStore(engines.settings.resolved_database_url)
    over = said_over_it
    if isinstance(said_over_it, str):
        over = write_wav(
            tmp_path / "caller" / "over.wav", CallerVoice("en-us+f3").say(said_over_it), 8000
        )
    report = await simulate_call(
        [over, then], engines=engines, store=store, out_dir=tmp_path / "out",
        barge_in_after_secs={1: after_secs},
    )  # fmt: skip
    return report, store.get_call(report["call_id"])


async def test_a_caller_who_pauses_mid_sentence_and_goes_on_gets_one_answer(
    small_engines, store, tmp_path, monkeypatch
):
    """ "This is Dana Whitfield." [a second's pause] "My laptop will not connect to the VPN.":
    the pause may end the turn (a fast transcript ends a sentence there) and its answer begin,
    but the caller goes on before it can be heard, so the turn is the whole of it, the first
    answer is taken back, and the agent answers the problem."""
    # the short window: its transcript is in before the pause is over (the whole window's,
    # ~1.1 s after the caller stops, outlasts a one-second pause)
    monkeypatch.setattr(small_engines.stt, "window_padding_secs", 10.0)
    voice = CallerVoice("en-us+m3")
    pause = np.zeros(8000, dtype=np.int16)  # 1.0 s at 8 kHz
    said = np.concatenate(
        [
            voice.say("This is Dana Whitfield."),
            pause,
            voice.say("My laptop will not connect to the VPN."),
        ]
    )
    clip = write_wav(tmp_path / "caller" / "paused.wav", said.tobytes(), 8000)
    report = await simulate_call([clip], engines=small_engines, store=store, out_dir=tmp_path)
    call = store.get_call(report["call_id"])
    turns = [t for t in call["turns"] if t["user_text"]]
    assert len(turns) == 1, call["turns"]
    (turn,) = turns
    # both parts (espeak-ng's "Dana Whitfield" reads as other words: "They've been playing
    # with seal."), and the answer is the problem's: triaged, then the caller's name asked for
    heard = turn["user_text"].lower()
    assert "vpn" in heard and not heard.startswith("my laptop"), turn
    assert call["category"] == "network", call
    assert turn["bot_text"].strip() and turn["understood"]["act"] == "problem", turn


async def test_a_backchannel_over_the_agent_does_not_cut_it_off(small_engines, tmp_path):
    full = len(prompts.greeting(small_engines.settings.company_name).split())
    # "Okay.": espeak-ng's "Mm-hmm." is a hum Whisper once read as other words
    report, call = await _over_the_greeting(small_engines, tmp_path, "Okay.")
    greeting = call["turns"][0]
    assert greeting["kind"] == "greeting" and not greeting["interrupted"]
    assert len(greeting["bot_text"].split()) == full
    # the greeting played on to the end: what the caller heard after the "mm-hm" is its rest
    heard = report["greeting"]["audio_secs"] + report["turns"][0]["reply_audio_secs"]
    assert heard > 4.0, report
    assert not any("okay" in (t["user_text"] or "").lower() for t in call["turns"]), call["turns"]
    problem = [t for t in call["turns"] if t["user_text"]]
    assert problem and "country" in problem[0]["user_text"].lower() and problem[0]["bot_text"]


async def test_a_word_over_the_agent_cuts_it_off(small_engines, tmp_path):
    report, call = await _over_the_greeting(small_engines, tmp_path, "No, wait.")
    greeting = call["turns"][0]
    assert greeting["kind"] == "greeting" and greeting["interrupted"], call["turns"]
    took = call["turns"][1]
    assert "wait" in took["user_text"].lower(), call["turns"]
    st = took["stages"]
    # cut off once the words were heard: within about a second of the end of "no, wait"
    assert greeting["stages"]["bot_done"] - st["speech_end"] < 2.5, (st, greeting["stages"])


async def test_an_interruption_that_says_nothing_resumes_the_agent(small_engines, tmp_path):
    """A real caller's "okay, I got it" over the greeting, long enough to cut the agent off
    (0.5 s here): it was nothing to answer, so the agent says the greeting again from where it
    was cut (the greeting is one utterance to the context), and the call goes on."""
    engines = engines_with(small_engines, tmp_path, barge_in_min_speech_secs=0.5)
    okay = TELEPHONY / "spokenwoz_SNG0072_user_turn06.wav"
    # a problem said without JFK's mid-sentence pause, which the sentence-end rule may end at
    problem = write_wav(
        tmp_path / "caller" / "vpn.wav",
        CallerVoice("en-us+m3").say("My laptop will not connect to the VPN."),
        8000,
    )
    report, call = await _over_the_greeting(engines, tmp_path, okay, after_secs=2.5, then=problem)
    greeting, resumed = call["turns"][:2]
    assert greeting["kind"] == "greeting" and greeting["interrupted"], call["turns"]
    assert resumed["kind"] == "resumed", call["turns"]
    said = resumed["bot_text"]
    assert prompts.RESUMING in said and said.endswith(prompts.GREETING_QUESTION[1:]), said
    assert not any("got it" in (t["user_text"] or "").lower() for t in call["turns"])
    stated = [t for t in call["turns"] if t["user_text"]]
    assert stated and "vpn" in stated[0]["user_text"].lower() and stated[0]["bot_text"], stated


async def test_the_model_reads_the_greeting_while_it_plays(small_engines, tmp_path, monkeypatch):
    """The caller's first turn the model answers has only their words (and the turn's note)
    left to read: the system prompt, the flow's task and the greeting were read while the
    greeting played."""
    engine = small_engines.llm
    assert engine is not None
    prompts_read: list[tuple[str, int]] = []
    real_stream = engine.stream

    def stream(prompt, **kw):
        prompts_read.append((prompt, engine.cached_tokens(prompt)))
        return real_stream(prompt, **kw)

    monkeypatch.setattr(engine, "stream", stream)
    engine.prefill(engine.render([{"role": "user", "content": "Another call's words."}]))
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    # small talk: the one kind of turn the model answers in its own words
    said = synthesize_utterances(["Hello, can you hear me?"], small_engines, tmp_path / "caller")
    report = await simulate_call(said, engines=small_engines, store=store, out_dir=tmp_path)
    assert report["status"] == "completed" and prompts_read, report
    prompt, cached = prompts_read[0]
    greeting = report["greeting"]["text"]
    through_greeting = prompt[: prompt.index(greeting) + len(greeting)]
    assert cached >= engine.count_tokens(through_greeting) - 1, (cached, prompt)

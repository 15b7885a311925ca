"""Turn-taking over the agent's speech: backchannels let pass, interruptions taken (no models)."""

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import TranscriptionUserTurnStartStrategy, VADUserTurnStartStrategy

from voice_agent.call.barge_in import OverlapTolerantTurnStart, turn_start_strategies, unheard_rest
from voice_agent.speech.backchannel import is_backchannel


@pytest.mark.parametrize(
    "text",
    [
        "Mm-hmm.",
        "Mhm",
        "MNM.",
        "Uh-huh.",
        "Okay.",
        "OK, got it.",
        "Yeah.",
        "Yes, I see.",
        "Hmm.",
        "Okay, I got it.",  # a real phone caller (SpokenWOZ SNG0072), as Whisper reads it
        "Okay, that's perfect. Okay.",  # another (SNG1640)
    ],
)
def test_acknowledgements_are_backchannels(text):
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "...",
        "No.",
        "Wait.",
        "Stop.",
        "Hold on.",
        "Okay, but it says access denied.",
        "Yes, you're correct.",  # an answer, not an acknowledgement
        "Okay, and then the address.",
        "Yeah, yeah, okay, right, sure.",
    ],  # fmt: skip
)
def test_words_that_take_the_turn_are_not(text):
    assert not is_backchannel(text)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def strategy():
    clock = Clock()
    started: list[float] = []
    start = OverlapTolerantTurnStart(min_speech_secs=1.0, clock=clock)

    async def on_started(_strategy, _params) -> None:
        started.append(clock.now)

    start.add_event_handler("on_user_turn_started", on_started)
    return start, clock, started


AUDIO = InputAudioRawFrame(audio=b"\0\0" * 160, sample_rate=8000, num_channels=1)


async def test_speech_while_the_agent_is_silent_starts_the_turn_at_once():
    start, clock, started = strategy()
    assert await start.process_frame(VADUserStartedSpeakingFrame()) == ProcessFrameResult.STOP
    assert started == [100.0]


async def test_short_speech_over_the_agent_does_not_start_the_turn():
    start, clock, started = strategy()
    await start.process_frame(BotStartedSpeakingFrame())
    await start.process_frame(VADUserStartedSpeakingFrame())
    for _ in range(40):  # 0.8 s of "mm-hm"
        clock.now += 0.02
        assert await start.process_frame(AUDIO) == ProcessFrameResult.CONTINUE
    await start.process_frame(VADUserStoppedSpeakingFrame())
    clock.now += 5
    await start.process_frame(AUDIO)
    await start.process_frame(BotStoppedSpeakingFrame())  # the agent finished its sentence
    assert started == []


async def test_speech_over_the_agent_starts_the_turn_once_it_lasts():
    start, clock, started = strategy()
    await start.process_frame(BotStartedSpeakingFrame())
    await start.process_frame(VADUserStartedSpeakingFrame())
    results = []
    for _ in range(60):
        clock.now += 0.02
        results.append(await start.process_frame(AUDIO))
    assert started == [pytest.approx(101.0, abs=0.03)]  # within an audio frame of 1 s
    assert results.count(ProcessFrameResult.STOP) == 1


async def test_speech_over_the_agents_last_words_is_a_turn_when_it_stops():
    start, clock, started = strategy()
    await start.process_frame(BotStartedSpeakingFrame())
    await start.process_frame(VADUserStartedSpeakingFrame())
    clock.now += 0.3
    await start.process_frame(BotStoppedSpeakingFrame())  # the caller still talking
    assert started == [100.3]


async def speak_for(start, clock, secs: float) -> list[ProcessFrameResult]:
    await start.process_frame(VADUserStartedSpeakingFrame())
    results = []
    for _ in range(round(secs / 0.02)):
        clock.now += 0.02
        results.append(await start.process_frame(AUDIO))
    return results


async def test_a_noise_while_the_answer_is_coming_does_not_cancel_it():
    # the caller's turn has ended; a click 0.3 s later, before the answer's first audio, lasting
    # 0.1 s past the VAD's start, does not cancel the answer (shorter than any going on)
    start, clock, started = strategy()
    await start.process_frame(BotStartedSpeakingFrame())  # "Okay.", as smart-turn judged it done
    await start.handle_user_turn_stopped()
    await start.process_frame(BotStoppedSpeakingFrame())  # ...ends just after the turn did
    clock.now += 0.3
    assert ProcessFrameResult.STOP not in await speak_for(start, clock, 0.1)  # a click
    await start.process_frame(VADUserStoppedSpeakingFrame())
    clock.now += 1.1  # (the answer: the click is no going on with the caller's words)
    await start.process_frame(BotStartedSpeakingFrame())
    await start.process_frame(BotStoppedSpeakingFrame())
    assert started == []
    # the answer has been spoken: the caller's next words start their turn at once
    clock.now += 1.0
    assert await start.process_frame(VADUserStartedSpeakingFrame()) == ProcessFrameResult.STOP
    assert started == [pytest.approx(102.5)]


async def test_a_caller_going_on_before_the_answer_plays_takes_the_floor_back_at_once():
    # a pause mid-sentence ended the turn; the caller goes on 0.5 s later, the answer not yet
    # playing: the turn is theirs again 0.2 s into their speech, before the answer can play
    start, clock, started = strategy()
    await start.handle_user_turn_stopped()
    clock.now += 0.5
    await speak_for(start, clock, 0.6)
    assert started == [pytest.approx(100.7, abs=0.03)]


async def test_a_caller_going_on_into_the_first_words_of_the_answer_cuts_it_at_once():
    start, clock, started = strategy()
    await start.handle_user_turn_stopped()
    clock.now += 0.4
    await start.process_frame(BotStartedSpeakingFrame())  # the answer to the first part
    clock.now += 0.5
    await speak_for(start, clock, 0.6)
    assert started == [pytest.approx(101.1, abs=0.03)]  # not 1.0 s of it over the answer


async def test_a_caller_going_on_in_short_bursts_takes_the_floor_back():
    # "ask" [0.3 s] "not" [0.8 s] "what your country...": each burst too short alone, the
    # answer began to play after the first; the bursts go on with the turn all the same
    start, clock, started = strategy()
    await start.handle_user_turn_stopped()
    clock.now += 0.4
    await speak_for(start, clock, 0.1)  # "ask", while the answer is not yet playing
    await start.process_frame(VADUserStoppedSpeakingFrame())
    await start.process_frame(BotStartedSpeakingFrame())  # the answer to the first part
    clock.now += 0.3
    await speak_for(start, clock, 0.1)  # "not"
    await start.process_frame(VADUserStoppedSpeakingFrame())
    clock.now += 0.8  # 1.3 s into the answer: a reply to it, were it not for the bursts before
    await speak_for(start, clock, 0.4)
    assert started == [pytest.approx(101.9, abs=0.03)]


async def test_a_backchannel_well_into_the_answer_waits_for_its_words():
    # "mm-hm" 1.5 s into the answer is said to it: it does not cut the answer off
    start, clock, started = strategy()
    await start.handle_user_turn_stopped()
    clock.now += 0.4
    await start.process_frame(BotStartedSpeakingFrame())
    clock.now += 1.5
    assert ProcessFrameResult.STOP not in await speak_for(start, clock, 0.6)
    await start.process_frame(VADUserStoppedSpeakingFrame())
    assert started == []


async def test_an_answer_that_never_comes_does_not_hold_the_caller_back():
    start, clock, started = strategy()
    await start.handle_user_turn_stopped()
    clock.now += 3.5
    assert await start.process_frame(VADUserStartedSpeakingFrame()) == ProcessFrameResult.STOP
    assert started == [103.5]


def test_zero_keeps_pipecats_default_turn_start():
    default = turn_start_strategies(0)
    assert [type(s) for s in default] == [
        VADUserTurnStartStrategy,
        TranscriptionUserTurnStartStrategy,
    ]
    tolerant = turn_start_strategies(1.0)
    assert [type(s) for s in tolerant] == [
        OverlapTolerantTurnStart,
        TranscriptionUserTurnStartStrategy,
    ]


STEP = "Okay. Open the VPN app. Then choose Settings. Check the server name."


@pytest.mark.parametrize(
    ("heard", "rest"),
    [
        ("", "Open the VPN app. Then choose Settings. Check the server name."),
        ("Open the VPN app.", "Then choose Settings. Check the server name."),
        ("Open the VPN app. Then choose settings.", "Check the server name."),
        (STEP, ""),  # all of it was played
        ("Hi, how can I help?", "Open the VPN app. Then choose Settings. Check the server name."),
    ],
)
def test_a_cut_reply_resumes_at_the_sentence_it_stopped_in(heard, rest):
    # the "Okay." said before the answer is not said again
    assert unheard_rest(STEP, heard, skip=["Okay."]) == rest


def test_a_reply_cut_while_it_was_written_does_not_resume_with_half_a_sentence():
    assert unheard_rest("Open the VPN app. Then choose", "") == "Open the VPN app."
    assert unheard_rest("Open the VPN app. Then choose", "Open the VPN app.") == ""

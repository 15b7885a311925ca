"""When a caller's turn ends: smart-turn v3 on the audio, and the transcript's sentence end."""

from __future__ import annotations

import asyncio
import time

import pytest
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from tests.conftest import SPEECH
from voice_agent.call.turn_end import SentenceEndTurnStop, ends_a_sentence
from voice_agent.engines import SharedSmartTurn
from voice_agent.speech.audio import decode_audio_file

# a SpokenWOZ caller (8 kHz phone speech) whose last words smart-turn judges unfinished
UNFINISHED_CLIP = SPEECH / "telephony" / "spokenwoz_MUL1423_user_turn01.wav"
FINISHED_CLIP = SPEECH / "clean" / "jfk.flac"  # "...what you can do for your country."
RATE = 16000


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("I need to book a train to Cambridge.", True),
        ("Can you reset my password?", True),
        ("It still doesn't work!", True),
        ("My laptop won't start and...", False),  # Whisper's trailing-off
        ("So the thing is,", False),
        ("Thank you.", True),
        ("I tried it and.", False),  # a full stop after an open word
        ("", False),
    ],
)
def test_a_transcript_ends_a_sentence(text, ends):
    assert ends_a_sentence(text) is ends


async def _turn_end_after(
    text: str,
    sentence_end_silence_secs: float | None,
    wait: float,
    *,
    clip=UNFINISHED_CLIP,
    verdict=EndOfTurnState.INCOMPLETE,
    min_silence_secs: float = 0.0,
    max_silence_secs: float = 3.0,
    speaks_again_after: float | None = None,
):
    """Feed the strategy a caller turn smart-turn judges as ``verdict``, then its transcript
    (and, ``speaks_again_after`` seconds into the silence, more speech); how long after the end
    of speech the turn ended (None: not within ``wait`` seconds)."""
    tasks = TaskManager(loop=asyncio.get_running_loop())
    strategy = SentenceEndTurnStop(
        # max_silence_secs: smart-turn's limit for an unfinished turn, and so for words left open
        turn_analyzer=SharedSmartTurn(params=SmartTurnParams(stop_secs=max_silence_secs)),
        sentence_end_silence_secs=sentence_end_silence_secs,
        min_silence_secs=min_silence_secs,
    )
    await strategy.setup(
        FrameProcessorSetup(
            clock=SystemClock(), task_manager=tasks, pipeline_worker=None, audio_in_sample_rate=RATE
        )
    )
    ended = asyncio.Event()

    @strategy.event_handler("on_user_turn_stopped")
    async def on_stopped(_strategy, _params):
        ended.set()

    audio = decode_audio_file(clip, RATE).to_bytes()
    verdicts = []
    analyzer = strategy._turn_analyzer
    original = analyzer.analyze_end_of_turn

    async def recorded():
        state, metrics = await original()
        verdicts.append(state)
        return state, metrics

    analyzer.analyze_end_of_turn = recorded
    await strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
    step = RATE // 50 * 2
    for i in range(0, len(audio), step):
        await strategy.process_frame(InputAudioRawFrame(audio[i : i + step], RATE, 1))
    speech_end = time.time()
    stop = VADUserStoppedSpeakingFrame(stop_secs=0.0)
    stop.timestamp = speech_end
    await strategy.process_frame(stop)
    assert verdicts == [verdict]  # the premise: what smart-turn says of the audio
    transcript = TranscriptionFrame(text, "caller", "now")
    transcript.finalized = True
    await strategy.process_frame(transcript)
    if speaks_again_after is not None:
        await asyncio.sleep(speaks_again_after)
        await strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
    try:
        await asyncio.wait_for(ended.wait(), wait)
        return time.time() - speech_end
    except TimeoutError:
        return None
    finally:
        await strategy.cleanup()


async def test_a_finished_sentence_ends_the_turn_smart_turn_judged_unfinished():
    after = await _turn_end_after("I need your assistance booking a train.", 0.8, wait=1.2)
    assert after is not None and 0.7 <= after < 1.2


async def test_words_that_trail_off_wait_for_the_silence():
    assert await _turn_end_after("I need your assistance booking a train to...", 0.8, 1.2) is None


async def test_the_sentence_rule_can_be_turned_off():
    assert await _turn_end_after("I need your assistance booking a train.", None, 1.2) is None


JFK_END = "Ask not what your country can do for you, ask what you can do for your country."


async def test_a_finished_turn_waits_for_the_least_silence_not_for_the_transcript():
    # smart-turn says "finished" and the transcript is in at once (a fast decode): the turn
    # still ends only after min_silence_secs of silence
    after = await _turn_end_after(
        JFK_END, 1.2, 2.5, clip=FINISHED_CLIP, verdict=EndOfTurnState.COMPLETE, min_silence_secs=1.0
    )
    assert after is not None and 0.95 <= after < 1.6, after
    at_once = await _turn_end_after(
        JFK_END, 1.2, 2.5, clip=FINISHED_CLIP, verdict=EndOfTurnState.COMPLETE
    )
    assert at_once is not None and at_once < 0.7, at_once


async def test_speech_inside_the_least_silence_keeps_the_turn_open():
    # the caller goes on inside the silence: no turn ends (their next stop decides)
    after = await _turn_end_after(
        JFK_END,
        1.2,
        2.5,
        clip=FINISHED_CLIP,
        verdict=EndOfTurnState.COMPLETE,
        min_silence_secs=1.5,
        speaks_again_after=0.3,
    )
    assert after is None


async def test_words_left_open_keep_a_finished_sounding_turn_open_longer():
    # smart-turn judges JFK's audio finished, but Whisper wrote the words before his pause
    # open ("And so my fellow America", no full stop): the turn waits for the longer silence
    open_words = dict(
        clip=FINISHED_CLIP,
        verdict=EndOfTurnState.COMPLETE,
        min_silence_secs=0.5,
        max_silence_secs=1.3,
    )
    after = await _turn_end_after("And so my fellow America", 1.2, 2.5, **open_words)
    assert after is not None and 1.25 <= after < 1.9, after
    # ...and the caller going on inside it keeps the turn open
    went_on = await _turn_end_after(
        "And so my fellow America", 1.2, 2.5, speaks_again_after=0.9, **open_words
    )
    assert went_on is None

"""Piper: the sentences the agent said before are spoken from memory, within a bound; the
model's first sentence is spoken as soon as the reply guard lets it through."""

from __future__ import annotations

import time

from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from voice_agent.llm.reply_guard import spoken_sentences
from voice_agent.speech.tts import PiperEngine, PiperTTSService

SAID = "May I have your name first?"


def test_a_sentence_said_before_is_not_synthesized_again(small_engines):
    tts = PiperEngine(small_engines.tts.model_path)
    first = tts.synthesize(SAID)
    assert len(first) > tts.sample_rate  # over half a second of 16-bit audio
    assert tts.synthesize(SAID) is first
    assert tts.synthesize("Could you spell it for me?") is not first


def test_the_memory_lets_the_least_recently_said_sentences_go_first(small_engines):
    sizer = PiperEngine(small_engines.tts.model_path)
    one_sentence = len(sizer.synthesize(SAID))
    tts = PiperEngine(small_engines.tts.model_path, cache_bytes=int(one_sentence * 2.5))
    name = tts.synthesize(SAID)
    spell = tts.synthesize("Could you spell it?")
    assert tts.synthesize(SAID) is name  # said again: now the most recent
    tts.synthesize("Thanks, that's everything I need.")  # over the bound: the oldest goes
    assert tts.synthesize(SAID) is name
    assert tts.synthesize("Could you spell it?") is not spell


def test_audio_longer_than_the_whole_memory_is_spoken_and_not_kept(small_engines):
    tts = PiperEngine(small_engines.tts.model_path, cache_bytes=1000)
    first = tts.synthesize(SAID)
    assert len(first) > 1000
    assert tts.synthesize(SAID) is not first


class Clock(FrameProcessor):
    """Notes when the first frame of a kind passes."""

    def __init__(self, kind: type[Frame], seen: dict[str, float], name: str) -> None:
        super().__init__()
        self._kind, self._seen, self._name = kind, seen, name

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, self._kind) and (
            not isinstance(frame, LLMTextFrame) or frame.text.startswith("May")
        ):
            self._seen.setdefault(self._name, time.monotonic())
        await self.push_frame(frame, direction)


async def test_the_first_sentence_is_spoken_before_the_model_writes_the_next(small_engines):
    """The reply guard hands on whole sentences; pipecat's own sentence aggregator would hold
    each until text after it arrives (the next sentence, ~0.5 s of generation later)."""
    seen: dict[str, float] = {}
    steps = Pipeline(
        [
            Clock(LLMTextFrame, seen, "second sentence written"),
            spoken_sentences(),
            PiperTTSService(small_engines.tts),
            Clock(TTSAudioRawFrame, seen, "first audio"),
        ]
    )
    reply = [
        LLMFullResponseStartFrame(),
        LLMTextFrame("I can help with that. "),
        SleepFrame(sleep=2.0),  # the model writing its second sentence
        LLMTextFrame("May I have your name first? "),
        LLMFullResponseEndFrame(),
    ]
    await run_test(steps, frames_to_send=reply)
    assert seen["first audio"] < seen["second sentence written"], seen

"""The turn recorder, fed pipeline frames in the order a call produces them."""

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice_agent.call_records import TurnRecord, TurnRecorder


async def test_an_answer_after_the_acknowledgement_is_stored_as_its_own_words():
    stored: list[TurnRecord] = []

    async def sink(turn: TurnRecord) -> None:
        stored.append(turn)

    recorder = TurnRecorder(sink, vad_stop_secs=0.2)
    here, there = FrameProcessor(), FrameProcessor()
    clock = 0

    async def push(frame) -> None:
        nonlocal clock
        clock += 100_000_000  # 0.1 s apart
        await recorder.on_push_frame(
            FramePushed(here, there, frame, FrameDirection.DOWNSTREAM, clock)
        )

    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("Please just open a ticket for me.", "caller", "now"))
    recorder.start_ack("Got it.")
    await push(LLMFullResponseStartFrame())
    for token in ["I'll", " open", " one", " now."]:
        await push(LLMTextFrame(token))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame())
    await recorder.flush()

    (turn,) = stored
    assert turn.user_text == "Please just open a ticket for me."
    assert turn.bot_text == "Got it. I'll open one now."

"""The turn recorder, fed pipeline frames in the order a call produces them."""

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    UserBackchannelFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voice_agent.call.turn_recorder import TurnRecorder
from voice_agent.records import TurnKind, TurnRecord


def recording(defer_overlaps: bool = True):
    """A recorder as calls have it (speech over the agent held until it interrupts), the turns
    it stores, and a way to push frames to it (0.1 s apart unless told otherwise)."""
    stored: list[TurnRecord] = []

    async def sink(turn: TurnRecord) -> None:
        stored.append(turn)

    recorder = TurnRecorder(sink, vad_stop_secs=0.2, defer_overlaps=defer_overlaps)
    here, there = FrameProcessor(), FrameProcessor()
    clock = 0

    async def push(frame, after_secs: float = 0.1) -> None:
        nonlocal clock
        clock += int(after_secs * 1e9)
        await recorder.on_push_frame(
            FramePushed(here, there, frame, FrameDirection.DOWNSTREAM, clock)
        )

    return recorder, stored, push


async def _model_answers(push, text: str) -> None:
    """The model's answer to the caller's turn, written, synthesized and played to the end."""
    await push(LLMFullResponseStartFrame())
    await push(LLMTextFrame(text))
    await push(LLMFullResponseEndFrame())
    await push(TTSStartedFrame())
    await push(TTSAudioRawFrame(b"\0\0" * 160, 8000, 1))
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame())


async def test_an_answer_after_the_acknowledgement_is_stored_as_its_own_words():
    recorder, stored, push = recording()

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


async def test_an_acknowledgement_the_caller_talked_over_is_not_the_first_audio():
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())  # a pause mid-sentence...
    recorder.start_ack("Okay.")  # ...acknowledged
    await push(VADUserStartedSpeakingFrame())  # the caller goes on
    await push(BotStartedSpeakingFrame())  # and the "Okay." only then starts playing
    await push(BotStoppedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame(), after_secs=2.0)  # the rest of the sentence
    await push(TranscriptionFrame("My printer says it is offline.", "caller", "now"))
    await push(LLMFullResponseStartFrame())
    await push(LLMTextFrame("Let's check the cable."))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame())
    await recorder.flush()

    (turn,) = stored
    st = turn.stages
    assert st["speech_end"] < st["first_audio_out"] == st["answer_audio_out"]
    assert turn.latencies()["voice_to_voice_secs"] > 0


async def test_a_caller_going_on_over_the_acknowledgement_keeps_one_turn():
    """The turn ended at a pause, "Okay." is playing and the model has begun the answer, when
    the caller goes on: the answer is cut off unheard, and the turn is the whole sentence."""
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My printer says", "caller", "now"))
    recorder.start_ack("Okay.")
    await push(TTSStartedFrame())
    await push(BotStartedSpeakingFrame())  # the "Okay."
    await push(LLMFullResponseStartFrame())  # an answer to the first half is under way
    await push(LLMTextFrame("Printers often"))
    await push(VADUserStartedSpeakingFrame())  # the caller goes on over the "Okay."
    await push(BotStoppedSpeakingFrame())
    await push(LLMFullResponseEndFrame())
    await push(VADUserStoppedSpeakingFrame(), after_secs=1.5)
    await push(TranscriptionFrame("it is offline.", "caller", "now"))
    await _model_answers(push, "Let's check the cable.")
    await recorder.flush()

    (turn,) = stored
    assert turn.user_text == "My printer says it is offline."
    assert turn.bot_text == "Let's check the cable."
    st = turn.stages
    assert st["speech_end"] < st["stt_done"] <= st["first_sentence"] <= st["tts_first_audio"]
    assert st["tts_first_audio"] <= st["first_audio_out"] == st["answer_audio_out"]


async def test_a_holding_phrase_is_not_the_answer():
    """The answer is late: "I'm still with you" plays, then the answer. The answer's audio, not
    the phrase's, is the turn's answer_audio_out; both are in what the agent said."""
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My laptop will not start.", "caller", "now"))
    await push(LLMFullResponseStartFrame())  # the model is slow to its first word
    recorder.start_hold("Sorry, this is taking me a moment.")
    await push(BotStartedSpeakingFrame())  # the holding phrase
    await push(BotStoppedSpeakingFrame(), after_secs=2.0)
    await push(LLMTextFrame("Hold the power button for ten seconds."), after_secs=3.0)
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())  # the answer
    await push(BotStoppedSpeakingFrame(), after_secs=2.0)
    await recorder.flush()

    (turn,) = stored
    st = turn.stages
    assert st["first_audio_out"] < st["answer_audio_out"]
    assert st["answer_audio_out"] - st["first_audio_out"] >= 5.0  # the answer, not the hold
    assert "answer_held" in st and turn.error_code == "answer_slow"
    assert turn.bot_text == (
        "Sorry, this is taking me a moment. Hold the power button for ten seconds."
    )


async def test_a_holding_phrase_cut_off_leaves_the_next_answer_recorded():
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My laptop will not start.", "caller", "now"))
    recorder.start_hold("Sorry, this is taking me a moment.")
    await push(InterruptionFrame())  # the caller spoke before the phrase could play
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("It shows a black screen.", "caller", "now"))
    await push(LLMFullResponseStartFrame())
    await push(LLMTextFrame("Let's try a hard restart."))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame())
    await recorder.flush()

    (turn,) = stored  # the caller went on before any answer: one turn
    st = turn.stages
    assert turn.bot_text.endswith("Let's try a hard restart.")
    assert st["answer_audio_out"] > st["stt_done"]  # when the answer began, not the dropped hold


async def _answered(push) -> None:
    """The caller's first turn, and the agent's answer now playing."""
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My laptop will not connect to the VPN.", "caller", "now"))
    await push(LLMFullResponseStartFrame())
    await push(LLMTextFrame("Open the VPN app, then choose Settings and check the server name."))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())


async def test_a_backchannel_over_the_agent_leaves_its_turn_whole():
    recorder, stored, push = recording()
    await _answered(push)
    await push(VADUserStartedSpeakingFrame(), after_secs=1.0)  # "mm-hm" over the step
    await push(VADUserStoppedSpeakingFrame(), after_secs=0.6)
    await push(UserBackchannelFrame("Mm-hmm.", "caller", "now"), after_secs=0.5)
    await push(BotStoppedSpeakingFrame(), after_secs=2.0)  # the step was read to the end
    await recorder.flush()

    (turn,) = stored
    assert not turn.interrupted
    assert turn.user_text == "My laptop will not connect to the VPN."
    assert turn.stages["bot_done"] - turn.stages["answer_audio_out"] > 3.0
    assert recorder.backchannels == 1


async def test_words_over_the_agent_become_the_callers_turn_when_they_interrupt():
    recorder, stored, push = recording()
    await _answered(push)
    await push(VADUserStartedSpeakingFrame(), after_secs=1.0)  # "wait, stop"
    await push(VADUserStoppedSpeakingFrame(), after_secs=0.5)
    await push(TranscriptionFrame("Wait, stop.", "caller", "now"), after_secs=0.6)
    await push(InterruptionFrame())  # the transcript started the caller's turn
    await push(BotStoppedSpeakingFrame())
    await recorder.flush()

    first, second = stored
    assert first.interrupted and first.stages["bot_done"] > second.stages["stt_done"]
    assert second.user_text == "Wait, stop."
    st = second.stages
    assert st["speech_start"] < st["speech_end"] < st["stt_done"] < first.stages["bot_done"]
    assert round(st["speech_end"] - st["speech_start"], 2) == 0.3  # VAD stop minus its delay


async def test_long_speech_over_the_agent_interrupts_it_while_the_caller_talks():
    recorder, stored, push = recording()
    await _answered(push)
    await push(VADUserStartedSpeakingFrame(), after_secs=1.0)
    await push(InterruptionFrame(), after_secs=1.0)  # a second of speech: the turn is theirs
    await push(BotStoppedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame(), after_secs=2.0)
    await push(TranscriptionFrame("No, I don't have a VPN app at all.", "caller", "now"))
    await recorder.flush()

    first, second = stored
    assert first.interrupted
    assert second.user_text == "No, I don't have a VPN app at all."
    st = second.stages
    assert st["speech_start"] < first.stages["bot_done"] < st["speech_end"] < st["stt_done"]


async def test_a_caller_going_on_into_the_first_words_of_the_answer_keeps_one_turn():
    """The turn ended at a pause and its answer began to play, when the caller went on: too soon
    to be a reply to it, so the turn is the whole sentence and its answer the one to all of it.
    Until the caller's words come, the cut answer is what would be said again."""
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("And so my fellow Americans.", "caller", "now"))
    await recorder.open_bot_turn(TurnKind.REPLY, "Could you tell me the problem again?")
    await push(TTSStartedFrame())
    await push(BotStartedSpeakingFrame())
    await push(VADUserStartedSpeakingFrame(), after_secs=0.4)  # the caller goes on
    await push(InterruptionFrame(), after_secs=1.0)  # a second of it cuts the agent off
    await push(BotStoppedSpeakingFrame())
    assert recorder.reply_cut_off() == "Could you tell me the problem again?"
    await push(VADUserStoppedSpeakingFrame(), after_secs=2.0)
    await push(TranscriptionFrame("ask not what your country can do for you.", "caller", "now"))
    assert recorder.reply_cut_off() is None
    await _model_answers(push, "How can I help you today?")
    await recorder.flush()

    (turn,) = stored
    assert turn.user_text == "And so my fellow Americans. ask not what your country can do for you."
    assert turn.bot_text == "How can I help you today?" and not turn.interrupted
    st = turn.stages
    assert st["speech_end"] < st["stt_done"] < st["answer_audio_out"]
    assert st["answer_audio_out"] - st["speech_end"] < 1.0  # from the end of all of it


async def test_an_answer_cut_before_it_played_is_kept_to_be_said_after_all():
    """The caller's going on cut the answer off before any of it played (a breath, it may turn
    out): it is what the call says if their speech is no words, as it was decided."""
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My laptop will not start.", "caller", "now"))
    recorder.start_ack("Okay.")
    await push(TTSStartedFrame())
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame(), after_secs=0.5)
    await recorder.open_bot_turn(TurnKind.REPLY, "Is this about: computer won't start?")
    await push(VADUserStartedSpeakingFrame(), after_secs=0.2)  # before the answer plays
    await push(InterruptionFrame(), after_secs=0.3)  # going on: it takes the floor back
    assert recorder.reply_cut_off() == "Okay. Is this about: computer won't start?"
    assert not recorder.cut_reply_played
    recorder.start_ack("Alright.")  # its end acknowledged again: the answer stays the cut one
    await push(VADUserStartedSpeakingFrame(), after_secs=0.5)
    await push(InterruptionFrame(), after_secs=0.3)
    assert recorder.reply_cut_off() == "Okay. Is this about: computer won't start?"


async def test_speech_once_the_answer_is_heard_is_a_turn_of_its_own():
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My laptop will not start.", "caller", "now"))
    await recorder.open_bot_turn(TurnKind.REPLY, "Is this about: computer won't start?")
    await push(BotStartedSpeakingFrame())
    await push(VADUserStartedSpeakingFrame(), after_secs=1.2)  # "no, it..." over the question
    await push(InterruptionFrame(), after_secs=1.0)
    await push(BotStoppedSpeakingFrame())
    assert recorder.reply_cut_off() == "Is this about: computer won't start?"
    await push(VADUserStoppedSpeakingFrame(), after_secs=1.0)
    await push(TranscriptionFrame("No, it starts but the screen stays black.", "caller", "now"))
    await recorder.flush()

    first, second = stored
    assert first.interrupted and first.user_text == "My laptop will not start."
    assert second.user_text == "No, it starts but the screen stays black."


async def test_an_answer_that_plays_over_a_caller_going_on_is_not_their_turns_answer():
    """The caller went on while the answer to their first words was being made; it began to
    play over them before their speech cut it off: it answered half the turn, so it is dropped,
    and the answer to all of it is the turn's."""
    recorder, stored, push = recording()
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("My printer says", "caller", "now"))
    await push(LLMFullResponseStartFrame())
    await push(VADUserStartedSpeakingFrame(), after_secs=0.5)  # the caller goes on
    await push(LLMTextFrame("Printers often jam."))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())  # ...and the half answer plays over them
    await push(InterruptionFrame(), after_secs=0.6)  # until their speech cuts it off
    await push(BotStoppedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame(), after_secs=1.0)
    await push(TranscriptionFrame("it is offline.", "caller", "now"))
    await push(UserStoppedSpeakingFrame())
    await push(LLMFullResponseStartFrame())
    await push(LLMTextFrame("Let's check the cable."))
    await push(LLMFullResponseEndFrame())
    await push(BotStartedSpeakingFrame())
    await push(BotStoppedSpeakingFrame())
    await recorder.flush()

    (turn,) = stored
    assert turn.user_text == "My printer says it is offline."
    assert turn.bot_text == "Let's check the cable." and not turn.interrupted
    assert turn.stages["answer_audio_out"] > turn.stages["stt_done"]


async def _decided_before_the_acknowledgement_played(push, recorder) -> float:
    """The frames of a turn whose answer the flow decided while Piper still synthesized the
    "Okay." (a fast transcript, as in a real call with the short window): the acknowledgement's
    run and stretch, then the answer's. Returns when the answer began to play."""
    await push(VADUserStartedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame())
    await push(TranscriptionFrame("And so my fellow Americans.", "caller", "now"))
    recorder.start_ack("Okay.")
    await push(TTSStartedFrame())  # the acknowledgement's run
    await push(UserStoppedSpeakingFrame(), after_secs=0.3)  # the turn's end
    await recorder.open_bot_turn(TurnKind.REPLY, "Sorry, I didn't quite catch that.")
    await push(TTSAudioRawFrame(b"\0\0" * 3400, 8000, 1))
    await push(BotStartedSpeakingFrame())  # the "Okay." plays...
    await push(TTSStartedFrame())  # (the answer's run)
    await push(BotStoppedSpeakingFrame(), after_secs=0.4)
    await push(BotStartedSpeakingFrame())  # ...then the answer
    return recorder.current.stages["answer_audio_out"]


async def test_an_answer_decided_before_its_acknowledgement_played_is_stamped_at_its_own_audio():
    recorder, stored, push = recording()
    answered = await _decided_before_the_acknowledgement_played(push, recorder)
    await push(BotStoppedSpeakingFrame(), after_secs=2.0)
    await recorder.flush()

    (turn,) = stored
    st = turn.stages
    assert st["answer_audio_out"] == answered
    assert round(st["answer_audio_out"] - st["first_audio_out"], 3) == 0.6  # the "Okay." first
    assert st["first_sentence"] > st["first_audio_out"]  # the answer's run, not the "Okay."'s
    assert turn.bot_text == "Okay. Sorry, I didn't quite catch that."


async def test_going_on_is_counted_from_the_answers_audio_not_the_acknowledgements():
    """JFK after his pause, as CI's loaded CPU reported it: his going on came 1.3 s after the
    "Okay." began and 0.8 s into the answer; he had heard little of it, and keeps the turn."""
    recorder, stored, push = recording()
    answered = await _decided_before_the_acknowledgement_played(push, recorder)
    await push(VADUserStartedSpeakingFrame(), after_secs=0.8)  # the caller goes on
    assert recorder.current.stages["speech_start"] == pytest.approx(answered + 0.8)
    await push(InterruptionFrame(), after_secs=1.0)
    await push(BotStoppedSpeakingFrame())
    await push(VADUserStoppedSpeakingFrame(), after_secs=2.0)
    await push(TranscriptionFrame("ask not what your country can do for you.", "caller", "now"))
    await _model_answers(push, "How can I help you today?")
    await recorder.flush()

    (turn,) = stored
    assert turn.user_text == "And so my fellow Americans. ask not what your country can do for you."
    assert turn.bot_text == "How can I help you today?"

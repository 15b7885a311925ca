"""The named stages of a turn, and the observer that timestamps them as frames flow.

Stages (seconds since the epoch):

- ``speech_start`` / ``speech_end``: the caller's speech as Silero VAD hears it (``speech_end`` is
  the VAD stop minus its configured stop delay: when the caller actually went quiet)
- ``stt_done``: the transcript is ready
- ``turn_end``: the turn detector (smart-turn) decided the caller has finished
- ``triage_done``: the caller's problem has a category and priority (first problem turn only)
- ``lookup_done``: the runbook search for this turn returned
- ``llm_first_token``: the language model's first token
- ``first_sentence``: the first sentence handed to text-to-speech
- ``tts_first_audio``: the first synthesized audio
- ``first_audio_out``: the first reply audio written to the transport (what the caller hears;
  may be a short acknowledgement)
- ``answer_audio_out``: the first audio that carries the answer's content
- ``bot_done``: the transport has sent the whole reply (or it was cut off)
- ``reply_heard``: the caller's side confirms the reply finished playing (Twilio ``mark`` echo);
  only for transports that report playback

Transcripts, latency figures and (later) the supervisor console all read from these records.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    UserBackchannelFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_output import BaseOutputTransport

from voice_agent.call.barge_in import GOING_ON_SECS
from voice_agent.errors import ErrorCode, error_code_of
from voice_agent.flows.prompts import ACKNOWLEDGEMENTS
from voice_agent.records import TurnKind, TurnRecord


class SeenFrames:
    """Each frame once for an observer: a frame passes many processors on its way, and a
    broadcast frame has a twin going the other way."""

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def first_time(self, frame) -> bool:
        if frame.id in self._ids:
            return False
        self._ids.add(frame.id)
        if frame.broadcast_sibling_id is not None:
            self._ids.add(frame.broadcast_sibling_id)
        return True


def error_code(frame: ErrorFrame) -> str:
    """The code the frame's exception carries (``voice_agent.errors``), or ``pipeline_error``."""
    return error_code_of(frame.exception)


TurnSink = Callable[[TurnRecord], Awaitable[None]]
FrameHandler = Callable[[Any, "TurnRecord | None", float], Awaitable[None]]


class TurnPhase(Enum):
    """Where the open turn stands."""

    LISTENING = "listening"  # the caller's turn: no answer decided, only "Okay." may play
    ANSWERING = "answering"  # the answer is decided (flow words, the model, a fallback)


class AckAudio(Enum):
    """Where the turn's acknowledgement ("Okay.") is on its way to the caller. Each text-to-speech
    run plays as its own stretch (pipecat stops the bot's speech at each run's end), so the
    acknowledgement's run and stretch come before the answer's, even when the answer was decided
    first (a fast transcript the flow answered while Piper still synthesized "Okay.")."""

    NONE = "none"  # no acknowledgement is on its way
    QUEUED = "queued"  # asked for; its text-to-speech run has not started
    SYNTHESIZED = "synthesized"  # its run has started; its audio has not begun to play


@dataclass
class Overlap:
    """Caller speech over the agent that has not (yet) taken the turn: it becomes the caller's
    turn when it interrupts the agent, and is forgotten when it was a backchannel."""

    started_at: float
    ended_at: float | None = None
    text: str = ""
    stt_done: float | None = None


class TurnRecorder(BaseObserver):
    """Observes a call's pipeline and emits one :class:`TurnRecord` per turn to ``sink``.

    A turn opens when the caller starts speaking (or when the bot speaks on its own: greeting,
    fallback) and closes when the bot's reply has finished playing (and, with
    ``wait_for_playback_marks``, the transport has confirmed the caller heard it:
    :meth:`reply_heard`), or when the caller barges in over it (the turn is then marked
    ``interrupted``). Each kind of frame is one method (``_on_<frame>``); what they share is the
    open turn, its :class:`TurnPhase`, and three facts about the call: whether the model is
    generating, whether the bot is speaking, and which turn was acknowledged.

    With ``defer_overlaps`` (speech over the agent interrupts it only past a length or for its
    words: ``voice_agent.call.barge_in``), the caller's speech over the agent is held as an
    :class:`Overlap` until the interruption comes, and dropped if it was a backchannel.
    """

    def __init__(
        self,
        sink: TurnSink,
        *,
        vad_stop_secs: float,
        wait_for_playback_marks: bool = False,
        defer_overlaps: bool = False,
    ) -> None:
        super().__init__()
        self._wait_for_marks = wait_for_playback_marks
        self._sink = sink
        self._vad_stop_secs = vad_stop_secs
        self._defer_overlaps = defer_overlaps
        self._overlap: Overlap | None = None
        self.backchannels = 0  # backchannels the caller said over the agent
        self._seen = SeenFrames()
        self._clock_offset: float | None = None
        self._turn: TurnRecord | None = None
        self._phase = TurnPhase.LISTENING
        self._next_index = 0
        self._llm_running = False
        self._response_started = False  # the model's first words of this response are next
        self._bot_speaking = False
        self._caller_speaking = False
        self._acked_turn: int | None = None  # the turn "Okay." was said for
        self._ack_audio = AckAudio.NONE
        # what the agent had begun (or decided) to say when the caller went on with their turn
        # over it, and whether any of it played
        self.cut_reply: str | None = None
        self.cut_reply_played = False
        # the caller went on with their turn while its answer was under way: that answer, if
        # it plays before their speech cuts it off, answers only the first part
        self._going_on = False
        self._holding = False  # a holding phrase is playing: its audio is not the answer
        self._answer_during_hold = False  # the answer's words came while it played
        self.turns: list[TurnRecord] = []
        self._handler_cache: dict[type, FrameHandler | None] = {}
        self._handlers: dict[type, FrameHandler] = {
            VADUserStartedSpeakingFrame: self._on_caller_started,
            VADUserStoppedSpeakingFrame: self._on_caller_stopped,
            TranscriptionFrame: self._on_transcript,
            UserStoppedSpeakingFrame: self._on_turn_end,
            LLMFullResponseStartFrame: self._on_llm_started,
            LLMFullResponseEndFrame: self._on_llm_ended,
            LLMTextFrame: self._on_llm_text,
            TTSStartedFrame: self._on_tts_started,
            TTSAudioRawFrame: self._on_tts_audio,
            BotStartedSpeakingFrame: self._on_bot_started,
            BotStoppedSpeakingFrame: self._on_bot_stopped,
            InterruptionFrame: self._on_interruption,
            UserBackchannelFrame: self._on_backchannel,
            ErrorFrame: self._on_error,
            MetricsFrame: self._on_metrics,
        }

    # -- public API for the call -------------------------------------------------------------
    async def open_bot_turn(self, kind: TurnKind, text: str) -> None:
        """The bot speaks unprompted (greeting, fallback): record it as its own turn."""
        turn = self._turn
        if turn is None or turn.kind != TurnKind.REPLY or "answer_audio_out" in turn.stages:
            await self._close()  # the turn before is kept, whatever it holds
            turn = self._open(kind)
        elif turn.kind == TurnKind.REPLY and not turn.user_text:
            turn.kind = kind
        turn.bot_text = (turn.bot_text + " " + text).strip()
        self._phase = TurnPhase.ANSWERING
        self._answer_during_hold = self._answer_during_hold or self._holding

    def may_acknowledge(self) -> bool:
        """Once per turn, and only while the caller's turn has no answer yet."""
        turn = self._turn
        return (
            turn is not None
            and turn.kind == TurnKind.REPLY
            and not self._bot_speaking
            and self._acked_turn != turn.index
            and "answer_audio_out" not in turn.stages
        )

    def start_ack(self, text: str) -> None:
        """A short acknowledgement is about to be spoken before this turn's answer."""
        turn = self._turn
        if turn is None:
            return
        self._acked_turn = turn.index
        self._ack_audio = AckAudio.QUEUED
        turn.bot_text = (text + " " + turn.bot_text).strip()

    def start_hold(self, text: str) -> None:
        """A holding phrase is about to play because the answer is late (``AnswerWatchdog``)."""
        turn = self._turn
        if turn is None:
            return
        self._holding, self._answer_during_hold = True, False
        turn.mark("answer_held", time.time())
        turn.error_code = turn.error_code or ErrorCode.ANSWER_SLOW
        turn.bot_text = (turn.bot_text + " " + text).strip()

    async def reply_heard(self) -> None:
        """The transport confirmed the caller heard the reply to the end (Twilio's mark)."""
        if self._turn is not None:
            self._turn.mark("reply_heard", time.time())
            await self._maybe_close()

    @property
    def answering(self) -> bool:
        """False while only the acknowledgement can be playing (transports name marks by it)."""
        return self._phase is TurnPhase.ANSWERING

    @property
    def bot_speaking(self) -> bool:
        return self._bot_speaking

    @property
    def caller_speaking(self) -> bool:
        return self._caller_speaking

    @property
    def bot_idle(self) -> bool:
        """True when nothing is being generated or played."""
        return not self._llm_running and not self._bot_speaking

    def speech_secs(self) -> float:
        turn = self._turn
        if turn is None or "speech_start" not in turn.stages:
            return 0.0
        return turn.stages.get("speech_end", time.time()) - turn.stages["speech_start"]

    def reply_cut_off(self) -> str | None:
        """What the agent was saying when the caller's latest speech cut it off (the reply it
        went on over, or the last turn's when it was interrupted); None when it was not."""
        if self.cut_reply is not None:
            return self.cut_reply
        last = self.turns[-1] if self.turns else None
        return last.bot_text if last is not None and last.interrupted else None

    def note_error(self, code: str) -> None:
        turn = self._turn or self._open(TurnKind.FALLBACK)
        turn.error_code = turn.error_code or code

    @property
    def current(self) -> TurnRecord | None:
        return self._turn

    async def flush(self) -> None:
        """Close the turn in progress (end of call)."""
        if self._turn is not None:
            await self._close()

    # -- the turn ----------------------------------------------------------------------------
    def _now(self, data: FramePushed) -> float:
        if self._clock_offset is None:
            self._clock_offset = time.time() - data.timestamp / 1e9
        return self._clock_offset + data.timestamp / 1e9

    def _open(self, kind: TurnKind) -> TurnRecord:
        turn = TurnRecord(index=self._next_index, kind=kind)
        self._next_index += 1
        self._turn = turn
        self._phase = TurnPhase.LISTENING
        self._holding = self._answer_during_hold = False
        self.cut_reply = None
        self._going_on = False
        return turn

    async def _close(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        self.turns.append(turn)
        await self._sink(turn)

    async def _maybe_close(self) -> None:
        turn = self._turn
        if (
            turn is not None
            and not self._llm_running
            and not self._bot_speaking
            and "answer_audio_out" in turn.stages
            and (not self._wait_for_marks or "reply_heard" in turn.stages)
        ):
            await self._close()

    # -- observer: one method per kind of frame ----------------------------------------------
    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        handler = self._handler_for(type(frame))
        if handler is None or not self._seen.first_time(frame):
            return
        if isinstance(frame, TTSAudioRawFrame) and isinstance(data.source, BaseOutputTransport):
            return  # the transport's slices of audio as they play, not the synthesized audio
        await handler(frame, self._turn, self._now(data))

    def _handler_for(self, kind: type) -> FrameHandler | None:
        """The handler of the frame's class or its nearest handled base (FatalErrorFrame is an
        ErrorFrame), looked up once per class."""
        if kind not in self._handler_cache:
            handled = (self._handlers.get(base) for base in kind.__mro__)
            self._handler_cache[kind] = next((h for h in handled if h is not None), None)
        return self._handler_cache[kind]

    async def _on_caller_started(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._caller_speaking = True
        self._overlap = None
        going_on = (
            turn is not None
            and turn.kind == TurnKind.REPLY
            and "answer_audio_out" not in turn.stages
            and "speech_start" in turn.stages
        )
        if self._defer_overlaps and self._bot_speaking and not going_on:
            self._overlap = Overlap(started_at=at)  # the turn is the caller's once it interrupts
            return
        await self._caller_takes_turn(turn, speech_start=at, agent_stopped=at)

    async def _caller_takes_turn(
        self, turn: TurnRecord | None, *, speech_start: float, agent_stopped: float
    ) -> TurnRecord:
        went_on = self._goes_on(turn, speech_start)
        if went_on:
            # the caller went on after a pause (over the acknowledgement, while an answer was
            # made, or into its first words): the same turn, whose reply is dropped, and whose
            # end may be acknowledged again
            assert turn is not None
            self._acked_turn = None
            self._going_on = True
            self._drop_reply(turn)
        elif turn is not None and (self._bot_speaking or "answer_audio_out" in turn.stages):
            if self._bot_speaking:
                turn.interrupted = True
            turn.mark("bot_done", agent_stopped)
            await self._close()
            turn = None
        if turn is None:
            turn = self._open(TurnKind.REPLY)
        elif turn.kind == TurnKind.REPLY and not went_on:
            turn.discard_reply()  # a reply to no speech yet (a transcript-only turn)
            self._phase = TurnPhase.LISTENING
        turn.mark("speech_start", speech_start)
        return turn

    def _drop_reply(self, turn: TurnRecord) -> None:
        """The caller went on with ``turn``: its reply so far answered only part of it. It is
        said after all if their speech turns out to be no words (``cut_reply``)."""
        reply = turn.bot_text.strip()
        if reply and reply not in ACKNOWLEDGEMENTS:  # an "Okay." alone keeps the answer cut
            self.cut_reply = reply
            self.cut_reply_played = self._bot_speaking or "answer_audio_out" in turn.stages
        turn.discard_reply()
        self._phase = TurnPhase.LISTENING

    def _goes_on(self, turn: TurnRecord | None, speech_start: float) -> bool:
        """Whether speech that began at ``speech_start`` continues the caller's turn: it began
        before the turn's answer could be heard (``GOING_ON_SECS`` into its audio at most)."""
        if turn is None or turn.kind != TurnKind.REPLY or "speech_start" not in turn.stages:
            return False
        answered = turn.stages.get("answer_audio_out")
        return answered is None or speech_start < answered + GOING_ON_SECS

    async def _on_caller_stopped(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._caller_speaking = False
        end = at - self._vad_stop_secs
        if self._overlap is not None:
            self._overlap.ended_at = end
            return
        if turn is None:
            return
        turn.mark("speech_end", end, overwrite=True)
        if "answer_audio_out" not in turn.stages and turn.stages.get("first_audio_out", end) < end:
            # an acknowledgement the caller talked over (it began playing only after they went
            # on): the caller's first audio comes after this end of speech
            turn.stages.pop("first_audio_out")

    async def _on_transcript(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        if self._overlap is not None:  # words over the agent: they interrupt it next
            self._overlap.text = (self._overlap.text + " " + frame.text).strip()
            self._overlap.stt_done = at
            return
        turn = turn or self._open(TurnKind.REPLY)
        turn.user_text = (turn.user_text + " " + frame.text).strip()
        turn.mark("stt_done", at, overwrite=True)
        self.cut_reply = None  # the caller's words went on with the turn: it is answered anew

    async def _on_turn_end(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._going_on = False
        if turn is not None:
            turn.mark("turn_end", at, overwrite=True)

    async def _on_llm_started(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._llm_running = True
        self._phase = TurnPhase.ANSWERING
        self._response_started = True

    async def _on_llm_ended(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._llm_running = False
        await self._maybe_close()

    async def _on_llm_text(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        turn = turn or self._open(TurnKind.REPLY)
        self._phase = TurnPhase.ANSWERING
        turn.mark("llm_first_token", at)
        self._answer_during_hold = self._answer_during_hold or self._holding
        if self._response_started and turn.bot_text.strip():
            # the answer follows the acknowledgement ("Okay.") already in the text
            turn.bot_text = turn.bot_text.rstrip() + " " + frame.text.lstrip()
        else:
            turn.bot_text += frame.text
        self._response_started = False

    async def _on_tts_started(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        if self._ack_audio is AckAudio.QUEUED:
            self._ack_audio = AckAudio.SYNTHESIZED  # the acknowledgement's run, not the answer's
        elif turn is not None and self.answering:
            turn.mark("first_sentence", at)

    async def _on_tts_audio(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        # the answer's audio (its run has started), not the acknowledgement's
        if turn is not None and self.answering and "first_sentence" in turn.stages:
            turn.mark("tts_first_audio", at)

    async def _on_bot_started(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._bot_speaking = True
        ack_plays = self._ack_audio is AckAudio.SYNTHESIZED  # this stretch is the "Okay."
        if ack_plays:
            self._ack_audio = AckAudio.NONE
        if turn is not None:
            turn.mark("first_audio_out", at)
            if self.answering and not self._holding and not ack_plays:
                turn.mark("answer_audio_out", at)

    async def _on_bot_stopped(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self._bot_speaking = False
        if self._holding:
            self._holding = False
            if not self._answer_during_hold:
                return  # only the holding phrase has played: the turn goes on
            if turn is not None:  # the answer played on straight after it, in one stretch
                turn.mark("answer_audio_out", turn.stages.get("answer_held", at))
        if not self.answering:
            return  # only the acknowledgement has played: the turn goes on
        if turn is not None:
            turn.mark("bot_done", at, overwrite=True)
        await self._maybe_close()

    async def _on_interruption(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        overlap, self._overlap = self._overlap, None
        if overlap is not None:  # the caller's speech over the agent took the turn
            turn = await self._caller_takes_turn(
                turn, speech_start=overlap.started_at, agent_stopped=at
            )
            if overlap.ended_at is not None and not self._caller_speaking:
                turn.mark("speech_end", overlap.ended_at, overwrite=True)
            if overlap.text:
                turn.user_text = (turn.user_text + " " + overlap.text).strip()
                turn.mark("stt_done", overlap.stt_done or at, overwrite=True)
                self.cut_reply = None  # words: the turn is answered anew
        elif turn is not None and self._going_on:
            self._drop_reply(turn)  # it played over the caller going on: it never happened
        elif turn is not None and self._bot_speaking:
            turn.interrupted = True
        # a holding phrase cut off (or dropped before it played): what plays next is no hold;
        # an acknowledgement not yet heard will not be
        self._holding = self._answer_during_hold = False
        self._ack_audio = AckAudio.NONE

    async def _on_backchannel(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        logger.info(f"the caller said {frame.text!r} over the agent; it goes on")
        self._overlap = None
        self.backchannels += 1

    async def _on_error(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        self.note_error(error_code(frame))
        self._ack_audio = AckAudio.NONE  # (it may have failed: the next stretch is the answer's)

    async def _on_metrics(self, frame: Any, turn: TurnRecord | None, at: float) -> None:
        for item in frame.data:
            if isinstance(item, LLMUsageMetricsData) and turn is not None:
                turn.prompt_tokens = (turn.prompt_tokens or 0) + item.value.prompt_tokens
                turn.completion_tokens = (
                    turn.completion_tokens or 0
                ) + item.value.completion_tokens

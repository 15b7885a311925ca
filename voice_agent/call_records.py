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
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed

STAGES = (
    "speech_start",
    "speech_end",
    "stt_done",
    "turn_end",
    "triage_done",
    "lookup_done",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "first_audio_out",
    "answer_audio_out",
    "bot_done",
    "reply_heard",
)

# Latencies reported per turn: name -> (from stage, to stage)
LATENCIES = {
    "stt_secs": ("speech_end", "stt_done"),
    "turn_detect_secs": ("speech_end", "turn_end"),
    "llm_first_token_secs": ("turn_end", "llm_first_token"),
    "first_sentence_secs": ("turn_end", "first_sentence"),
    "tts_first_audio_secs": ("first_sentence", "tts_first_audio"),
    "voice_to_voice_secs": ("speech_end", "first_audio_out"),
    "voice_to_answer_secs": ("speech_end", "answer_audio_out"),
}


@dataclass
class TurnRecord:
    index: int
    kind: str = "reply"  # greeting | reply | fallback
    user_text: str = ""
    bot_text: str = ""
    interrupted: bool = False
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # runbook articles the reply was grounded on: [{"path", "title", "section", "score"}]
    citations: list[dict[str, Any]] = field(default_factory=list)
    # what the caller's words were understood to do: {"act", "confidence", "by", "heard_logprob",
    # "heard_as": the answer grammar the words were decoded under}
    understood: dict[str, Any] | None = None
    stages: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, at: float, *, overwrite: bool = False) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        if overwrite or stage not in self.stages:
            self.stages[stage] = at

    def discard_unheard_reply(self) -> None:
        """The caller went on talking before any reply audio played: that reply never happened."""
        if "answer_audio_out" in self.stages:
            return
        for stage in ("llm_first_token", "first_sentence", "tts_first_audio", "first_audio_out"):
            self.stages.pop(stage, None)
        self.bot_text = ""
        self.prompt_tokens = self.completion_tokens = None
        self.citations = []
        self.understood = None

    def latencies(self) -> dict[str, float]:
        out = {}
        for name, (start, end) in LATENCIES.items():
            if start in self.stages and end in self.stages:
                out[name] = round(self.stages[end] - self.stages[start], 3)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "user_text": self.user_text,
            "bot_text": self.bot_text,
            "interrupted": self.interrupted,
            "error_code": self.error_code,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "citations": list(self.citations),
            "understood": self.understood,
            "stages": dict(self.stages),
            "latency": self.latencies(),
        }


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


def playback_mark_name(turn: TurnRecord) -> str:
    """The name of the playback mark sent after a turn's reply audio."""
    return f"turn-{turn.index}"


def error_code(frame: ErrorFrame) -> str:
    """A machine-readable code for an error: the exception's ``code``, or the message's prefix."""
    code = getattr(frame.exception, "code", None)
    if isinstance(code, str):
        return code
    prefix = str(frame.error).split(":", 1)[0].strip()
    return prefix if prefix.isidentifier() else "pipeline_error"


TurnSink = Callable[[TurnRecord], Awaitable[None]]


class TurnRecorder(BaseObserver):
    """Observes a call's pipeline and emits one :class:`TurnRecord` per turn to ``sink``.

    A turn opens when the caller starts speaking (or when the bot speaks on its own: greeting,
    fallback) and closes when the bot's reply has finished playing, or when the caller barges
    in over it (the turn is then marked ``interrupted``).
    """

    def __init__(
        self, sink: TurnSink, *, vad_stop_secs: float, wait_for_playback_marks: bool = False
    ) -> None:
        super().__init__()
        self._wait_for_marks = wait_for_playback_marks
        self._sink = sink
        self._vad_stop_secs = vad_stop_secs
        self._seen = SeenFrames()
        self._clock_offset: float | None = None
        self._turn: TurnRecord | None = None
        self._next_index = 0
        self._llm_running = False
        self._response_started = False
        self._bot_speaking = False
        # acknowledgement of the current turn: None | "queued" | "playing" | "done"
        # whether the current turn's answer has been decided (flow words, the model, a fallback);
        # bot audio before that is the acknowledgement ("Okay.")
        self._answering = False
        self._acked_turn: int | None = None
        self.turns: list[TurnRecord] = []

    # -- public API for the call runner ------------------------------------------------------
    async def open_bot_turn(self, kind: str, text: str) -> None:
        """The bot speaks unprompted (greeting, fallback): record it as its own turn."""
        turn = self._turn
        if turn is None or turn.kind != "reply" or "answer_audio_out" in turn.stages:
            await self._close()  # the turn before is kept, whatever it holds
            turn = self._open(kind)
        elif turn.kind == "reply" and not turn.user_text:
            turn.kind = kind
        turn.bot_text = (turn.bot_text + " " + text).strip()
        self._answering = True

    def may_acknowledge(self) -> bool:
        """Once per turn, and only while the caller's turn has no answer yet."""
        turn = self._turn
        return (
            turn is not None
            and turn.kind == "reply"
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
        turn.bot_text = (text + " " + turn.bot_text).strip()

    @property
    def answering(self) -> bool:
        """False while only the acknowledgement can be playing (transports name marks by it)."""
        return self._answering

    @property
    def bot_speaking(self) -> bool:
        return self._bot_speaking

    def speech_secs(self) -> float:
        turn = self._turn
        if turn is None or "speech_start" not in turn.stages:
            return 0.0
        return turn.stages.get("speech_end", time.time()) - turn.stages["speech_start"]

    def note_error(self, code: str) -> None:
        turn = self._turn or self._open("fallback")
        turn.error_code = turn.error_code or code

    @property
    def current(self) -> TurnRecord | None:
        return self._turn

    async def flush(self) -> None:
        """Close the turn in progress (end of call)."""
        if self._turn is not None:
            await self._close()

    # -- observer ----------------------------------------------------------------------------
    def _now(self, data: FramePushed) -> float:
        if self._clock_offset is None:
            self._clock_offset = time.time() - data.timestamp / 1e9
        return self._clock_offset + data.timestamp / 1e9

    def _open(self, kind: str) -> TurnRecord:
        turn = TurnRecord(index=self._next_index, kind=kind)
        self._next_index += 1
        self._turn = turn
        self._answering = False
        return turn

    async def _close(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        self.turns.append(turn)
        await self._sink(turn)

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not self._seen.first_time(frame):
            return
        at = self._now(data)
        turn = self._turn

        if isinstance(frame, VADUserStartedSpeakingFrame):
            if (
                turn is not None
                and turn.kind == "reply"
                and "answer_audio_out" not in turn.stages
                and "speech_start" in turn.stages
            ):
                # the caller went on after a pause, maybe over the acknowledgement and while an
                # answer was being made: no answer was heard, so it is the same turn (its unheard
                # reply is discarded below), and the end of it may be acknowledged again
                self._acked_turn = None
            elif turn is not None and (self._bot_speaking or "answer_audio_out" in turn.stages):
                if self._bot_speaking:
                    turn.interrupted = True
                turn.mark("bot_done", at)
                await self._close()
                turn = None
            if turn is None:
                turn = self._open("reply")
            elif turn.kind == "reply":
                turn.discard_unheard_reply()
                self._answering = False
            turn.mark("speech_start", at)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if turn is not None:
                end = at - self._vad_stop_secs
                turn.mark("speech_end", end, overwrite=True)
                if (
                    "answer_audio_out" not in turn.stages
                    and turn.stages.get("first_audio_out", end) < end
                ):
                    # an acknowledgement the caller talked over (it began playing only after
                    # they went on): the caller's first audio comes after this end of speech
                    turn.stages.pop("first_audio_out")
        elif isinstance(frame, TranscriptionFrame):
            turn = turn or self._open("reply")
            turn.user_text = (turn.user_text + " " + frame.text).strip()
            turn.mark("stt_done", at, overwrite=True)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            if turn is not None:
                turn.mark("turn_end", at, overwrite=True)
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._llm_running = True
            self._answering = True
            self._response_started = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._llm_running = False
            await self._maybe_close()
        elif isinstance(frame, LLMTextFrame):
            turn = turn or self._open("reply")
            self._answering = True
            turn.mark("llm_first_token", at)
            if self._response_started and turn.bot_text.strip():
                # the answer follows the acknowledgement ("Okay.") already in the text
                turn.bot_text = turn.bot_text.rstrip() + " " + frame.text.lstrip()
            else:
                turn.bot_text += frame.text
            self._response_started = False
        elif isinstance(frame, TTSSpeakFrame):
            pass  # recorded by open_bot_turn when the runner queues it
        elif isinstance(frame, TTSStartedFrame):
            if turn is not None and self._answering:
                turn.mark("first_sentence", at)
        elif isinstance(frame, TTSAudioRawFrame):
            if turn is not None and self._answering:
                turn.mark("tts_first_audio", at)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            if turn is not None:
                turn.mark("first_audio_out", at)
                if self._answering:
                    turn.mark("answer_audio_out", at)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if not self._answering:
                return  # only the acknowledgement has played: the turn goes on
            if turn is not None:
                turn.mark("bot_done", at, overwrite=True)
            await self._maybe_close()
        elif isinstance(frame, InterruptionFrame):
            if turn is not None and self._bot_speaking:
                turn.interrupted = True
        elif isinstance(frame, ErrorFrame):
            self.note_error(error_code(frame))
        elif isinstance(frame, InputTransportMessageFrame):
            message = frame.message if isinstance(frame.message, dict) else {}
            if message.get("event") == "mark" and turn is not None:
                name = str((message.get("mark") or {}).get("name", ""))
                if name == playback_mark_name(turn):
                    turn.mark("reply_heard", at)
                    await self._maybe_close()
        elif isinstance(frame, MetricsFrame):
            for item in frame.data:
                if isinstance(item, LLMUsageMetricsData) and turn is not None:
                    turn.prompt_tokens = (turn.prompt_tokens or 0) + item.value.prompt_tokens
                    turn.completion_tokens = (
                        turn.completion_tokens or 0
                    ) + item.value.completion_tokens

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

    @property
    def bot_idle(self) -> bool:
        """True when nothing is being generated or played."""
        return not self._llm_running and not self._bot_speaking

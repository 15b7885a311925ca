"""A simulated caller: audio files played as a caller's turns, in real time, through a transport.

Used by ``voice-agent call``. The caller waits for the greeting, then speaks each file as one turn
(20 ms frames paced by the wall clock, as a phone line delivers them), keeps the line open with
silence while the agent answers, and moves on once the reply has finished playing. The agent's
audio is "played" in real time too, so barge-in and bot-speaking state behave as on a real call.
Voice-to-voice latency is measured here, at the transport edge: from the end of the caller's audio
to the first reply audio the transport is asked to play.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from voice_agent.speech.audio import PcmAudio
from voice_agent.speech.auto_gain import AutoGainFilter

FRAME_SECS = 0.02
IN_RATE = 16000
ACK_MAX_SECS = 1.0  # a reply this short may be the acknowledgement before the answer
ACK_WAIT_SECS = 5.0
ANSWER_GAP_SECS = 0.25  # silence between an acknowledgement and the answer after it


@dataclass
class CallerTurn:
    """One caller turn as the caller experienced it."""

    index: int
    source: str
    error: str | None = None
    audio_secs: float = 0.0
    started_at: float | None = None
    audio_end_at: float | None = None
    first_reply_audio_at: float | None = None
    first_answer_audio_at: float | None = None  # past a short acknowledgement, if one came
    reply_audio: bytearray = field(default_factory=bytearray)
    timed_out: bool = False

    def heard_secs(self, sample_rate: int) -> float:
        return len(self.reply_audio) / 2 / sample_rate

    @property
    def edge_voice_to_voice_secs(self) -> float | None:
        if self.audio_end_at is None or self.first_reply_audio_at is None:
            return None
        return round(self.first_reply_audio_at - self.audio_end_at, 3)


class SimulatedCaller:
    """The caller's side of the line: what it says, when, and what it hears back."""

    def __init__(
        self,
        utterances: list[tuple[str, PcmAudio | Exception]],
        *,
        out_sample_rate: int,
        reply_timeout_secs: float = 60.0,
        settle_secs: float = 1.0,
        greeting_timeout_secs: float = 20.0,
        barge_in_after_secs: dict[int, float] | None = None,
    ) -> None:
        self.utterances = utterances
        self.out_sample_rate = out_sample_rate
        self.reply_timeout_secs = reply_timeout_secs
        self.settle_secs = settle_secs
        self.greeting_timeout_secs = greeting_timeout_secs
        # turn index -> start that turn this many seconds into the previous reply (barge-in)
        self.barge_in_after_secs = barge_in_after_secs or {}
        self.greeting = CallerTurn(index=0, source="greeting")
        self.turns: list[CallerTurn] = []
        self._current = self.greeting
        self._play_clock = 0.0  # loop time until which written bot audio is still "playing"
        self._last_bot_audio = 0.0
        self.hang_up: Callable[[], Awaitable[None]] | None = None
        self.done = asyncio.Event()

    # -- the line, caller -> agent -----------------------------------------------------------
    async def run(self, push: Callable[[InputAudioRawFrame], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        frame_samples = int(IN_RATE * FRAME_SECS)
        silence = bytes(frame_samples * 2)
        t0 = loop.time()
        sent = 0

        async def send(chunk: bytes) -> None:
            nonlocal sent
            await push(InputAudioRawFrame(audio=chunk, sample_rate=IN_RATE, num_channels=1))
            sent += 1
            delay = t0 + sent * FRAME_SECS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

        async def wait_for_reply(
            turn: CallerTurn, limit_secs: float, barge_in_after: float | None
        ) -> None:
            deadline = loop.time() + limit_secs
            while loop.time() < deadline:
                await send(silence)
                heard = turn.first_reply_audio_at is not None
                if barge_in_after is not None:
                    # the caller talks over the answer (not over an "Okay." before it)
                    answer_at = turn.first_answer_audio_at
                    if answer_at is not None and time.time() - answer_at >= barge_in_after:
                        return
                    continue
                quiet_for = loop.time() - max(self._play_clock, self._last_bot_audio)
                # after a bare acknowledgement ("Okay.") a caller waits for the answer
                heard_secs = turn.heard_secs(self.out_sample_rate)
                settle = self.settle_secs if heard_secs >= ACK_MAX_SECS else ACK_WAIT_SECS
                if heard and quiet_for >= settle:
                    return
            turn.timed_out = True

        try:
            await wait_for_reply(
                self.greeting, self.greeting_timeout_secs, self.barge_in_after_secs.get(1)
            )
            for i, (source, audio) in enumerate(self.utterances, start=1):
                turn = CallerTurn(index=i, source=source)
                self.turns.append(turn)
                turn.started_at = time.time()
                self._current = turn
                if isinstance(audio, Exception):
                    turn.error = str(audio)
                else:
                    turn.audio_secs = round(audio.duration_secs, 3)
                    pcm = audio.to_bytes()
                    step = frame_samples * 2
                    for offset in range(0, len(pcm), step):
                        await send(pcm[offset : offset + step].ljust(step, b"\0"))
                turn.audio_end_at = time.time()
                await wait_for_reply(
                    turn, self.reply_timeout_secs, self.barge_in_after_secs.get(i + 1)
                )
        finally:
            self.done.set()
            if self.hang_up is not None:
                await self.hang_up()

    # -- the line, agent -> caller -----------------------------------------------------------
    async def hear(self, audio: bytes, sample_rate: int) -> None:
        loop = asyncio.get_running_loop()
        turn = self._current
        answering = turn.audio_end_at is not None or turn is self.greeting
        now = loop.time()
        if answering and turn.first_answer_audio_at is None:
            heard_secs = turn.heard_secs(sample_rate)
            after_gap = now - self._play_clock >= ANSWER_GAP_SECS
            if turn.first_reply_audio_at is not None and after_gap and heard_secs < ACK_MAX_SECS:
                turn.first_answer_audio_at = time.time()  # the answer after an acknowledgement
            elif heard_secs >= ACK_MAX_SECS:  # no pause yet: the first audio was the answer
                turn.first_answer_audio_at = turn.first_reply_audio_at
        if turn.first_reply_audio_at is None and answering:
            turn.first_reply_audio_at = time.time()
        if answering:  # (an acknowledgement at a pause while the caller talks is no reply)
            turn.reply_audio.extend(audio)
        self._last_bot_audio = now
        self._play_clock = max(self._play_clock, now) + len(audio) / 2 / sample_rate
        ahead = self._play_clock - now
        if ahead > 0.1:  # a sound card buffers ~100 ms; the rest plays in real time
            await asyncio.sleep(ahead - 0.1)

    def reply_samples(self, turn: CallerTurn) -> np.ndarray:
        return np.frombuffer(bytes(turn.reply_audio), dtype="<i2")


class _CallerInput(BaseInputTransport):
    def __init__(self, caller: SimulatedCaller, params: TransportParams) -> None:
        super().__init__(params)
        self._caller = caller
        self._task: asyncio.Task | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._task is None:
            self._task = self.create_task(self._caller.run(self.push_audio_frame))

    async def _stop_task(self) -> None:
        if self._task is not None and not self._caller.done.is_set():
            await self.cancel_task(self._task)
        self._task = None

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_task()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_task()


class _CallerOutput(BaseOutputTransport):
    def __init__(self, caller: SimulatedCaller, params: TransportParams) -> None:
        super().__init__(params)
        self._caller = caller

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        await self._caller.hear(frame.audio, frame.sample_rate)
        return True


class SimulatedCallerTransport(BaseTransport):
    def __init__(self, caller: SimulatedCaller) -> None:
        super().__init__()
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=IN_RATE,
            audio_in_filter=AutoGainFilter(),
            audio_out_enabled=True,
            audio_out_sample_rate=caller.out_sample_rate,
            audio_out_end_silence_secs=0,
        )
        self._input = _CallerInput(caller, params)
        self._output = _CallerOutput(caller, params)

    def input(self) -> _CallerInput:
        return self._input

    def output(self) -> _CallerOutput:
        return self._output

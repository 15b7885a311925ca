"""When the caller's speech over the agent cuts it off: the turn's start strategy.

pipecat's default starts the caller's turn, and interrupts the agent, as soon as the VAD hears
speech. On a helpdesk call that trips on every "mm-hm" and "okay" a caller says while a runbook
step is read to them. ``OverlapTolerantTurnStart`` starts the turn at once while the agent is
silent, and while it speaks only once the caller has talked over it for ``min_speech_secs``
(a sentence, "no, that's not what I see"). Shorter speech over the agent waits for its words:
the recogniser drops a backchannel (``WhisperSTTService(backchannels=True)`` pushes a
``UserBackchannelFrame`` instead of a transcript) and anything else ("stop", "wait", "no")
arrives as a transcript, which starts the turn through pipecat's
``TranscriptionUserTurnStartStrategy`` after it.

Speech that did cut the agent off and then turns out to be nothing to answer (no words, or a
long "mm-hm") is a false interruption: the agent says again what the caller did not hear
(``unheard_rest``; the call does it in ``Call.on_false_interruption``). pipecat keeps in the
context the utterances whose audio played to the end: a model reply is spoken sentence by
sentence, so it resumes at the sentence it stopped in; a fixed reply (a ``TTSSpeakFrame``: the
greeting, a runbook step) is one utterance, said again from its start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import (
    BaseUserTurnStartStrategy,
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)

ANSWER_DUE_SECS = 3.0  # after the caller's turn, the agent's answer is due for this long

# Speech that begins less than this after the answer began playing cannot be a reply to it (a
# person needs the answer's first words, and a few tenths of a second more, to react): it goes on
# with the caller's turn, which then gets one answer to all of it. The VAD reports speech
# vad_start_secs (0.2 s) after it began, later on a loaded CPU, so this is well under a second of
# the answer heard. (0.6 s split JFK's quotation in CI: his 1.1 s pause, then his speech reported
# 0.6-0.7 s after the turn's end.)
GOING_ON_SECS = 1.0

# Speech going on with the caller's turn (the answer not yet heard) takes the floor back once it
# has lasted this long after the VAD's start (itself 0.2 s into it): the answer is cancelled
# before it plays, or a few tenths of a second into it, instead of playing over the caller for
# barge_in_min_speech_secs. Speech that begins less than GOING_ON_SECS after such speech stopped
# goes on too: a caller's words come in bursts the VAD cuts apart ("ask" [0.3 s] "not what your
# country..."), each of them shorter than this. A breath or a click is shorter; one that is not,
# and decodes to no words, has the cancelled answer said after all (``Call.on_empty_transcript``).
GOING_ON_SPEECH_SECS = 0.2


class OverlapTolerantTurnStart(BaseUserTurnStartStrategy):
    """VAD turn start, held back while the agent has the floor until the caller has spoken over
    it for ``min_speech_secs`` (counted from the VAD's start, while it still hears speech).

    The agent has the floor while it speaks, and from the end of the caller's turn until its
    answer has been spoken (at most ``ANSWER_DUE_SECS`` of waiting for it): a breath or a line
    click a second after the caller stopped, just as the answer starts, must not cancel the
    answer (it did, once the turn could end 0.8 s after the caller's last word).

    Speech that begins before the answer can have been heard (before it plays, or less than
    ``GOING_ON_SECS`` into it), or less than ``GOING_ON_SECS`` after such speech stopped, goes
    on with the caller's turn: it takes the floor back after ``going_on_speech_secs``, so that
    the answer to the turn's first part does not play over the rest of it."""

    def __init__(
        self,
        *,
        min_speech_secs: float,
        going_on_speech_secs: float = GOING_ON_SPEECH_SECS,
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._min_speech_secs = min_speech_secs
        self._going_on_speech_secs = min(going_on_speech_secs, min_speech_secs)
        self._clock = clock
        self._bot_speaking = False
        self._answer_due_until = 0.0  # the caller's turn ended: the answer is coming
        self._answer_started_at: float | None = None  # the agent began speaking after it ended
        self._speech_since: float | None = None  # the caller is speaking over the agent
        self._speech_needed = min_speech_secs  # ...and takes the turn after this much of it
        self._going_on = False  # ...going on with their turn
        self._going_on_until = 0.0  # speech that begins before this goes on with it too

    async def handle_user_turn_started(self) -> None:
        self._speech_since = None
        self._answer_due_until = self._going_on_until = 0.0

    async def handle_user_turn_stopped(self) -> None:
        self._answer_due_until = self._clock() + ANSWER_DUE_SECS
        self._answer_started_at = None
        self._going_on_until = 0.0

    def _agent_has_floor(self) -> bool:
        return self._bot_speaking or self._clock() < self._answer_due_until

    def _answer_unheard(self) -> bool:
        """The caller's turn ended and its answer has not played, or only its first words."""
        now = self._clock()
        return now < self._answer_due_until and (
            self._answer_started_at is None or now < self._answer_started_at + GOING_ON_SECS
        )

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            if self._answer_started_at is None:
                self._answer_started_at = self._clock()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._answer_started_at is not None:  # not an "Okay." begun before the turn ended
                self._answer_due_until = 0.0  # the answer has been spoken: the floor is open
            if self._speech_since is not None:  # the agent finished while the caller talks
                return await self._start()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if not self._agent_has_floor():
                return await self._start()
            self._speech_since = self._clock()
            self._going_on = self._answer_unheard() or self._clock() < self._going_on_until
            self._speech_needed = (
                self._going_on_speech_secs if self._going_on else self._min_speech_secs
            )
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_since = None  # short: its words decide (a transcript or a backchannel)
            if self._going_on:
                self._going_on_until = self._clock() + GOING_ON_SECS
        if (
            self._speech_since is not None
            and self._clock() - self._speech_since >= self._speech_needed
        ):
            return await self._start()  # audio frames keep arriving: this is checked every 20 ms
        return ProcessFrameResult.CONTINUE

    async def _start(self) -> ProcessFrameResult:
        self._speech_since = None
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP


def turn_start_strategies(min_speech_secs: float) -> list[BaseUserTurnStartStrategy]:
    """pipecat's defaults (VAD, then a transcript) with the VAD held back over the agent;
    ``min_speech_secs`` 0 keeps the defaults (any speech cuts the agent off at once)."""
    if min_speech_secs <= 0:
        return [VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()]
    return [
        OverlapTolerantTurnStart(min_speech_secs=min_speech_secs),
        TranscriptionUserTurnStartStrategy(),
    ]


_SENTENCE = re.compile(r"[^.?!]+(?:[.?!]+|$)")


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def unheard_rest(reply: str, heard: str, skip: Collection[str] = ()) -> str:
    """What of ``reply`` the caller has not heard: its sentences after the last one that ``heard``
    holds (pipecat keeps in the context the sentences whose audio played before the cut), less
    the phrases in ``skip`` (an "Okay." said before the answer) and an unfinished last sentence
    (a model reply cut while it was being written). Empty when there is nothing left to say."""
    sentences = [m.group().strip() for m in _SENTENCE.finditer(reply) if _words(m.group())]
    heard_words = f" {_words(heard)} "
    start = 0
    for i, sentence in enumerate(sentences):
        if f" {_words(sentence)} " in heard_words:
            start = i + 1
    skipped = {_words(p) for p in skip}
    rest = [s for s in sentences[start:] if _words(s) not in skipped]
    if rest and rest[-1][-1] not in ".?!":
        rest.pop()
    return " ".join(rest)

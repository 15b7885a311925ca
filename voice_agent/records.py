"""What is recorded of a call: its status, why it ended, its outcome, and each turn (its kind,
named stages and the latencies between them).

The vocabulary shared by the call that records (``voice_agent.call``), the conversation that
decides the outcome (``voice_agent.flows``), the store that keeps it (``voice_agent.storage``)
and the console that shows it. The enums are ``StrEnum``: stored, compared and sent as JSON as
the plain strings they always were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # the pipeline ended (a hang-up, a goodbye, a transfer)
    FAILED = "failed"  # the pipeline died; ``error`` says why
    ABANDONED = "abandoned"  # cancelled (the server shutting down under it)
    INTERRUPTED = "interrupted"  # the server died under it: closed at the next start


class EndReason(StrEnum):
    CALLER_HUNG_UP = "caller_hung_up"
    MEDIA_TIMEOUT = "media_timeout"  # no caller audio for ``media_timeout_secs``
    TRANSFERRED = "transferred"
    PROTOCOL_ERROR = "protocol_error"  # the media socket kept misbehaving
    SERVER_RESTART = "server_restart"
    SERVER_SHUTDOWN = "server_shutdown"  # the server was stopped and the call outlived its drain


class Outcome(StrEnum):
    """What the call achieved (a ticket or a transfer outranks "resolved" from an earlier problem
    on the same call: ``voice_agent.flows.functions.OUTCOME_RANK``)."""

    RESOLVED = "resolved"
    STATUS = "status"  # a ticket's status read back
    TICKET = "ticket"
    CALLBACK = "callback"  # no transfer possible: a call back arranged
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"


class TurnKind(StrEnum):
    GREETING = "greeting"
    REPLY = "reply"  # an answer to the caller's words
    FALLBACK = "fallback"  # said unprompted: didn't catch that, still there?, trouble
    TRANSFER = "transfer"  # "connecting you to a technician"
    RESUMED = "resumed"  # the rest of a reply cut off by speech that said nothing


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
    "answer_held",  # the answer was late: the caller was told to hold on (AnswerWatchdog)
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
    kind: TurnKind = TurnKind.REPLY
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

    def discard_reply(self) -> None:
        """The caller went on with this turn before its reply could answer it (nothing played,
        or only its first words: ``TurnRecorder`` decides): that reply never happened, and the
        turn's answer is the one to the whole of what the caller said."""
        for stage in STAGES[STAGES.index("triage_done") :]:  # what answering it did
            self.stages.pop(stage, None)
        self.bot_text = ""
        self.interrupted = False
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

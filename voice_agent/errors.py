"""One error hierarchy, whose errors carry a machine-readable code.

The code is what a turn's record, a log line and a command's JSON say about what went wrong
(``turns.error_code``: ``llm_failed``, ``stt_failed``...): it travels on the exception, never
inside its message. Errors from other libraries that reach a call carry no code and are recorded
as ``pipeline_error``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # in a call: recorded on the turn, and the caller hears a fallback phrase
    LLM_FAILED = "llm_failed"
    STT_FAILED = "stt_failed"
    TTS_FAILED = "tts_failed"
    FLOW_FAILED = "flow_failed"
    TRANSFER_FAILED = "transfer_failed"
    TRIAGE_LLM_FAILED = "triage_llm_failed"
    TWILIO_REST_FAILED = "twilio_rest_failed"
    PIPELINE_ERROR = "pipeline_error"
    ANSWER_SLOW = "answer_slow"  # no answer by answer_hold_secs: the caller was told to hold on
    ANSWER_TIMEOUT = "answer_timeout"  # none by answer_give_up_secs: the answer was abandoned
    # a call's transport
    TWILIO_PROTOCOL = "twilio_protocol"
    TWILIO_BAD_START = "twilio_bad_start"
    AUDIO_UNREADABLE = "audio_unreadable"
    # bad input or set-up, refused before any work (commands exit 2, the server does not start)
    DATA_DIR_UNUSABLE = "data_dir_unusable"
    BAD_DIALOGUE_EXAMPLES = "bad_dialogue_examples"
    BAD_ITSM_SETTINGS = "bad_itsm_settings"
    TICKET_NOT_FOUND = "ticket_not_found"
    BAD_CROSS_VALIDATION = "bad_cross_validation"
    BAD_TICKETS = "bad_tickets"
    BAD_TSV = "bad_tsv"
    BAD_TRIAGE_MODEL = "bad_triage_model"
    BAD_TAXONOMY = "bad_taxonomy"


class VoiceAgentError(Exception):
    """An error of ours; ``code`` says what kind (subclasses set it)."""

    code: str = ErrorCode.PIPELINE_ERROR


class RecognitionFailed(VoiceAgentError):
    code = ErrorCode.STT_FAILED


class SynthesisFailed(VoiceAgentError):
    code = ErrorCode.TTS_FAILED


def error_code_of(error: BaseException | None, default: str = ErrorCode.PIPELINE_ERROR) -> str:
    """The code an exception carries, or ``default`` for one that carries none."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else default

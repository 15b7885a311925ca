"""The voice pipeline: how a call flows, in one place.

    caller audio in (transport, resampled to 16 kHz with soxr)
      -> speech-to-text (faster-whisper on each utterance Silero VAD segments)
      -> user turn (Silero VAD + smart-turn decide the caller has finished; barge-in interrupts)
      -> conversation (flows/: triage, runbook steps, tickets, hand-off; speaks directly when
         the answer is known, else gives the model a one-line note for this turn)
      -> language model (llama.cpp in process, or an OpenAI-compatible server)
      -> answer watchdog (a late answer: "I'm still with you", then the trouble phrase)
      -> spoken sentences (each sentence the reply guard lets through, handed on at once)
      -> text-to-speech (Piper, sentence by sentence as the model streams)
      -> reply audio out (transport)
      -> call recording (only when enabled)
      -> assistant turn (what the caller heard goes back into the conversation)

Every transport (simulated caller, Twilio, WebRTC) ends in this same pipeline via the call runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import openai
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_stop import BaseUserTurnStopStrategy, SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voice_agent.call.barge_in import turn_start_strategies
from voice_agent.call.turn_end import SentenceEndTurnStop
from voice_agent.engines import Engines, SharedSmartTurn
from voice_agent.llm.model_servers import ModelServerPool, endpoints
from voice_agent.llm.reply_guard import guarded_chunks, spoken_sentences
from voice_agent.llm.service import LocalLLMService, with_turn_note
from voice_agent.settings import Settings
from voice_agent.speech.stt import WhisperSTTService
from voice_agent.speech.tts import PiperTTSService


def build_pipeline(
    transport: BaseTransport,
    stt: WhisperSTTService,
    context: LLMContextAggregatorPair,
    llm: OpenAILLMService,
    tts: PiperTTSService,
    *,
    conversation: FrameProcessor | None = None,
    answer_watchdog: FrameProcessor | None = None,
    call_control: Sequence[FrameProcessor] = (),
    before_output: Sequence[FrameProcessor] = (),
    recording: FrameProcessor | None = None,
) -> Pipeline:
    """``call_control``: keypad and other caller requests; ``answer_watchdog``: speaks when the
    answer is late (after the model, so a stalled model cannot hold it back); ``before_output``:
    what a transport needs beside the audio (e.g. Twilio playback marks); ``recording``: both
    sides' audio to a file, when recording is on."""
    return Pipeline(
        [
            transport.input(),
            *call_control,
            stt,
            context.user(),
            *([conversation] if conversation else []),
            llm,
            *([answer_watchdog] if answer_watchdog else []),
            spoken_sentences(),
            tts,
            *before_output,
            transport.output(),
            *([recording] if recording else []),
            context.assistant(),
        ]
    )


# a model server that fails like this is skipped and the request tried on the next one
FAILOVER_ERRORS = (
    openai.APIConnectionError,  # refused, reset, or no answer in time (APITimeoutError)
    openai.RateLimitError,  # 429: saturated
    openai.InternalServerError,  # 5xx
    TimeoutError,  # no response within llm_request_timeout_secs
)


class OpenAICompatibleLLMService(OpenAILLMService):
    """Any OpenAI-compatible server (vLLM, llama.cpp's server) for scale-out: one, or a pool
    (``voice_agent.llm.model_servers``) tried in turn when one fails or is slow to answer.

    Several such servers reject the ``developer`` role, so it is sent as ``user``.
    """

    supports_developer_role = False

    def __init__(
        self,
        *args,
        pool: ModelServerPool,
        request_timeout_secs: float = 5.0,
        turn_note: Callable[[], str | None] | None = None,
        function_calling: bool = True,
        **kwargs,
    ):
        super().__init__(*args, base_url=pool.urls[0], **kwargs)
        self._pool = pool
        self._request_timeout_secs = request_timeout_secs
        self._clients = {pool.urls[0]: self._client}
        self._api_key = kwargs.get("api_key")
        self._turn_note = turn_note
        self._function_calling = function_calling

    def create_client(
        self,
        api_key=None,
        base_url=None,
        organization=None,
        project=None,
        default_headers=None,
        **kwargs,
    ):
        # one try per server: the pool moves on to the next rather than retrying a failed one
        client = super().create_client(
            api_key, base_url, organization, project, default_headers, **kwargs
        )
        return client.with_options(max_retries=0)

    async def get_chat_completions(self, context):
        """The first pool server's stream that starts in time, with what may be spoken decided
        by ``ReplyGuard``; the last server's error when every one failed."""
        failure: BaseException | None = None
        for url in self._pool.order():
            if url not in self._clients:
                self._clients[url] = self.create_client(api_key=self._api_key, base_url=url)
            self._client = self._clients[url]
            try:
                chunks = await asyncio.wait_for(
                    super().get_chat_completions(context), self._request_timeout_secs
                )
            except FAILOVER_ERRORS as e:
                self._pool.failed(url)
                logger.warning(f"model server {url} failed ({type(e).__name__}): trying the next")
                failure = e
                continue
            self._pool.succeeded(url)
            return guarded_chunks(chunks)
        assert failure is not None
        raise failure

    def build_chat_completion_params(self, params_from_context) -> dict:
        params = super().build_chat_completion_params(params_from_context)
        params["messages"] = with_turn_note(list(params["messages"]), self._turn_note)
        if not self._function_calling:
            params.pop("tools", None)
            params.pop("tool_choice", None)
        return params


def make_llm_service(
    engines: Engines,
    settings: Settings,
    system_instruction: str,
    turn_note: Callable[[], str | None] | None = None,
) -> OpenAILLMService:
    if settings.llm_backend == "openai":
        urls = endpoints(settings.llm_base_url)
        if not urls:
            raise ValueError("llm_backend=openai needs VOICE_AGENT_LLM_BASE_URL")
        return OpenAICompatibleLLMService(
            api_key=settings.llm_api_key,
            pool=ModelServerPool.shared(urls),
            request_timeout_secs=settings.llm_request_timeout_secs,
            settings=OpenAILLMService.Settings(
                model=settings.llm_model,
                max_tokens=settings.llm_max_tokens,
                temperature=settings.llm_temperature,
                seed=settings.llm_seed,
                system_instruction=system_instruction,
            ),
            turn_note=turn_note,
            function_calling=settings.llm_function_calling is not False,
        )
    assert engines.llm is not None
    return LocalLLMService(
        engines.llm,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        seed=settings.llm_seed,
        system_instruction=system_instruction,
        turn_note=turn_note,
        max_history_messages=settings.max_history_messages,
        function_calling=bool(settings.llm_function_calling),
    )


def make_context_aggregators(
    context: LLMContext,
    settings: Settings,
    on_turn_complete: Callable[[], Awaitable[None]] | None = None,
) -> LLMContextAggregatorPair:
    """User turn-taking: Silero VAD for speech, smart-turn v3 and the transcript's sentence end
    for end of turn (``voice_agent.call.turn_end``), barge-in on, backchannels over the agent
    let pass (``voice_agent.call.barge_in``).

    ``on_turn_complete`` runs as soon as smart-turn judges the caller finished, before the
    transcript is ready (the acknowledgement hooks in here)."""
    vad = SileroVADAnalyzer(
        params=VADParams(
            confidence=settings.vad_confidence,
            start_secs=settings.vad_start_secs,
            stop_secs=settings.vad_stop_secs,
        )
    )
    if settings.smart_turn:
        # smart-turn judges whether the caller's words sound finished; when it says "not yet",
        # it answers anyway after turn_max_silence_secs of silence
        analyzer = SharedSmartTurn(params=SmartTurnParams(stop_secs=settings.turn_max_silence_secs))
        # ...unless the transcript itself ends a sentence and the caller stays silent a while
        strategy = SentenceEndTurnStop(
            turn_analyzer=analyzer,
            sentence_end_silence_secs=(
                settings.turn_sentence_end_silence_secs if settings.turn_end_at_sentence else None
            ),
            min_silence_secs=settings.turn_min_silence_secs,
        )
        strategy.on_turn_complete = on_turn_complete
        stop: list[BaseUserTurnStopStrategy] = [strategy]
    else:
        stop = [SpeechTimeoutUserTurnStopStrategy()]
    return LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=vad,
            user_turn_strategies=UserTurnStrategies(
                start=turn_start_strategies(settings.barge_in_min_speech_secs), stop=stop
            ),
            user_idle_timeout=settings.user_idle_secs,
            empty_user_turn=None,  # the STT service answers unrecognised speech itself
        ),
    )

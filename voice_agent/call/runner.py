"""The call runner: every transport's call ends here, in the same pipeline and the same records.

Per call it makes the per-call services over the shared engines, greets the caller, keeps the call
audible when something goes wrong (a fallback phrase, never dead air), stores the call and each
turn as it ends, and closes the record however the call ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.flows import FlowManager
from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from voice_agent import metrics
from voice_agent.call.acknowledgement import Acknowledger
from voice_agent.call.admission import CallSlot
from voice_agent.call.answer_watchdog import AnswerWatchdog
from voice_agent.call.barge_in import unheard_rest
from voice_agent.call.flow_processor import HelpdeskFlowProcessor, TurnNote
from voice_agent.call.keypad import HUMAN_DIGIT, KeypadListener
from voice_agent.call.media_watchdog import MediaWatchdog
from voice_agent.call.pipeline import build_pipeline, make_context_aggregators, make_llm_service
from voice_agent.call.recording import CallRecording, recording_path
from voice_agent.call.turn_recorder import TurnRecorder, error_code
from voice_agent.engines import Engines
from voice_agent.errors import ErrorCode, error_code_of
from voice_agent.flows import prompts
from voice_agent.flows.conversation import HelpdeskConversation
from voice_agent.flows.runbooks import RunbookGuide
from voice_agent.flows.services import HelpdeskServices, Reply, TriageLike
from voice_agent.llm.service import LocalLLMService
from voice_agent.records import CallStatus, EndReason, Outcome, TurnKind, TurnRecord
from voice_agent.speech.answer_grammar import Expected
from voice_agent.speech.stt import (
    Transcript,
    TurnConfidence,
    WhisperSTTService,
    last_agent_words,
    recognition_prompt,
)
from voice_agent.speech.tts import PiperTTSService
from voice_agent.storage import CallStore
from voice_agent.tickets import make_ticket_service

MAX_FALLBACKS_PER_CALL = 5
MAX_IDLE_PROMPTS = 2
NO_TRIAGE = "a call needs the triage model: load the engines with Engines.load"


@dataclass
class CallResult:
    call_id: str
    status: CallStatus
    turns: list[TurnRecord] = field(default_factory=list)
    error: str | None = None


class Call:
    """One call, from the first line of its record to the last.

    The call's state is its attributes and each thing that can happen to it is one method:
    the caller's words decided on (:meth:`answer`), an empty transcript, a pipeline error, the
    caller silent or gone, a keypad digit, a transfer, triage and caller details learned. A
    transport gets the call through ``on_started`` to steer it (:meth:`hang_up`, :meth:`drop`,
    ``end_reason``). Make one with :meth:`open`, which writes the call's record first.
    """

    def __init__(
        self,
        transport: BaseTransport,
        *,
        call_id: str,
        engines: Engines,
        store: CallStore,
        audio_out_sample_rate: int,
        caller: str | None = None,
        make_llm: Callable[..., OpenAILLMService] = make_llm_service,
        transfer: Callable[[], Awaitable[None]] | None = None,
        before_output: Callable[[TurnRecorder], list[FrameProcessor]] | None = None,
        wait_for_playback_marks: bool = False,
        observers: Sequence[BaseObserver] = (),
        on_turn: Callable[[TurnRecord], Awaitable[None]] | None = None,
    ) -> None:
        settings = self.settings = engines.settings
        if engines.triage is None:
            raise ValueError(NO_TRIAGE)
        self.call_id = call_id
        self.store = store
        self.end_reason: EndReason | None = None
        self.log = logger.bind(call_id=call_id)
        self._transfer_line = transfer
        self._on_turn = on_turn
        self._fallbacks = 0  # fallback phrases said; at most MAX_FALLBACKS_PER_CALL
        self._idle_prompts = 0  # "are you still there?" since the caller last spoke
        self._transferring = False

        self.recorder = TurnRecorder(
            self._persist_turn,
            vad_stop_secs=settings.vad_stop_secs,
            wait_for_playback_marks=wait_for_playback_marks,
            defer_overlaps=settings.backchannels_let_pass,
        )
        self._context = LLMContext()
        self._heard = TurnConfidence()
        self._note = TurnNote()
        self._stt = stt = WhisperSTTService(
            engines.stt,
            on_empty_transcript=self.on_empty_transcript,
            on_transcript=self._heard.add,
            # Whisper reads the caller's words as the answer to what the agent just said
            prompt=lambda: recognition_prompt(self._context.get_messages(), engines.stt.vocabulary),
            # and to "What's the ticket number?" under the ticket-number grammar
            expecting=self.expected_answer if settings.stt_answer_grammars else None,
            noise_floor_dbfs=settings.audio_noise_floor_dbfs,
            backchannels=settings.backchannels_let_pass,
            on_false_interruption=self.on_false_interruption,
        )
        llm = make_llm(engines, settings, prompts.system_prompt(settings.company_name), self._note)
        self._acknowledger = Acknowledger(self._speak_acknowledgement)
        self._aggregators = make_context_aggregators(
            self._context, settings, self.on_turn_complete if settings.acknowledge_turns else None
        )
        self._tickets = make_ticket_service(settings, store)
        services = HelpdeskServices(
            runbooks=RunbookGuide(engines.knowledge, top_k=settings.kb_top_k),
            triage=engines.triage,
            tickets=self._tickets,
            acts=engines.acts,
            call_id=call_id,
            caller_phone=caller,
            can_transfer=transfer is not None,
            company=settings.company_name,
            on_triage=self.on_triage,
            on_caller=self.on_caller,
            on_outcome=self.on_outcome,
        )
        self._recording = (
            CallRecording(recording_path(settings.data_dir, call_id))
            if settings.record_calls
            else None
        )
        pipeline = build_pipeline(
            transport,
            stt,
            self._aggregators,
            llm,
            PiperTTSService(engines.tts),
            answer_watchdog=AnswerWatchdog(
                self.answer_wait,
                hold_secs=settings.answer_hold_secs,
                give_up_secs=settings.answer_give_up_secs,
                hold_text=prompts.HOLD_ON,
                give_up_text=prompts.TROUBLE,
                on_hold=self.on_answer_late,
                on_give_up=self.on_answer_abandoned,
            ),
            conversation=HelpdeskFlowProcessor(
                self.answer,
                self._note,
                heard=self._heard.take,
                turn_index=self.turn_index,
                # the conversation is made below, once the worker its flow manager needs exists
                checkpoint=lambda: self.conversation.checkpoint(),
                rollback=lambda checkpoint: self.conversation.rollback(checkpoint),
                on_reply=self.on_reply,
                on_say=lambda text: self.recorder.open_bot_turn(TurnKind.REPLY, text),
                transfer=self.transfer,
                hang_up=self.hang_up,
            ),
            call_control=[
                MediaWatchdog(settings.media_timeout_secs, self.on_media_lost),
                KeypadListener(self.on_digit),
            ],
            before_output=before_output(self.recorder) if before_output else [],
            recording=self._recording.processor if self._recording else None,
        )
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=16000,
                audio_out_sample_rate=audio_out_sample_rate,
                enable_metrics=True,
                enable_usage_metrics=True,
            ),
            observers=[self.recorder, *observers],
            idle_timeout_secs=None,
            enable_rtvi=False,
        )
        self.worker.add_event_handler("on_pipeline_error", self.on_pipeline_error)
        self._aggregators.user().add_event_handler("on_user_turn_idle", self.on_caller_idle)
        self._aggregators.user().add_event_handler("on_user_turn_started", self.on_caller_spoke)
        # the in-process model reads the conversation ahead; a model server caches on its own
        self._reads_ahead = llm if isinstance(llm, LocalLLMService) else None
        if self._reads_ahead is not None:
            self._aggregators.assistant().add_event_handler(
                "on_assistant_turn_stopped", self.on_agent_turn_said
            )
        if "on_client_disconnected" in getattr(transport, "_event_handlers", {}):
            transport.add_event_handler("on_client_disconnected", self.on_caller_left)
        # the conversation drives pipecat.flows, whose manager needs the worker made above
        self.conversation = HelpdeskConversation(
            services,
            FlowManager(
                llm=llm,  # type: ignore[arg-type]  # pipecat's LLMService is invariant in its adapter
                context_aggregator=self._aggregators,
                worker=self.worker,
                transport=transport,
            ),
        )

    @classmethod
    async def open(
        cls,
        transport: BaseTransport,
        *,
        engines: Engines,
        store: CallStore,
        transport_name: str,
        caller: str | None = None,
        external_id: str | None = None,
        **options: Any,
    ) -> Call:
        """Write the call's record (``in_progress``), then make the call; a call that cannot be
        made is recorded as ``failed`` with the reason."""
        if engines.triage is None:
            raise ValueError(NO_TRIAGE)  # before the record: no call is started without it
        call_id = await asyncio.to_thread(
            store.start_call,
            transport_name,
            caller=caller,
            external_id=external_id,
            models=engines.model_names,
        )
        log = logger.bind(call_id=call_id)
        log.info(f"call {call_id} started on {transport_name}")
        try:
            return cls(
                transport, call_id=call_id, engines=engines, store=store, caller=caller, **options
            )
        except Exception as e:
            log.exception("the call could not be set up")
            error = f"{type(e).__name__}: {e}"
            await asyncio.to_thread(
                store.end_call, call_id, status=CallStatus.FAILED, end_reason=None, error=error
            )
            raise

    async def run(
        self, on_started: Callable[[Call], Awaitable[None] | None] | None = None
    ) -> CallResult:
        """Greet the caller and run the call to its end; the record is closed however it ends.
        Every log line written while the call runs (pipecat's too) carries its ``call_id``."""
        with logger.contextualize(call_id=self.call_id):
            return await self._run(on_started)

    async def _run(self, on_started: Callable[[Call], Awaitable[None] | None] | None) -> CallResult:
        await self.conversation.start()
        notice = self.settings.recording_notice if self.settings.record_calls else None
        await self.say(TurnKind.GREETING, prompts.greeting(self.settings.company_name, notice))
        if on_started is not None:
            maybe = on_started(self)
            if asyncio.iscoroutine(maybe):
                await maybe
        status, error = CallStatus.COMPLETED, None
        try:
            runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
            await runner.add_workers(self.worker)
            await runner.run()
        except asyncio.CancelledError:
            status, error = CallStatus.ABANDONED, "call cancelled"
            raise
        except Exception as e:  # the record says why the call died
            status, error = CallStatus.FAILED, f"{type(e).__name__}: {e}"
            self.log.exception("call failed")
        finally:
            await self._close(status, error)
        return CallResult(self.call_id, status, self.recorder.turns, error)

    async def _close(self, status: CallStatus, error: str | None) -> None:
        if self._recording is not None:
            self._recording.close()
        await self._tickets.aclose()
        await self.recorder.flush()
        if (
            self.conversation.state.get("outcome") is None
            and self.end_reason != EndReason.TRANSFERRED
        ):
            await self._update_record(outcome=Outcome.ABANDONED)
        try:
            await asyncio.to_thread(
                self.store.end_call,
                self.call_id,
                status=status,
                end_reason=self.end_reason,
                error=error,
            )
        except Exception:
            self.log.exception("could not close the call record")
        metrics.observe_call_end(status, self.end_reason)
        self.log.info(f"call {self.call_id} ended: {status}")

    # -- steering, for the transport and the conversation -------------------------------------
    async def hang_up(self) -> None:
        """End gracefully: what is queued is still said, then the pipeline stops."""
        await self.worker.queue_frame(EndFrame())

    async def close_for_shutdown(self) -> None:
        """This server is being stopped and the call outlived the drain: say so, then end."""
        self.log.warning(f"call {self.call_id} ended early: the server is shutting down")
        self.end_reason = EndReason.SERVER_SHUTDOWN
        await self.say(TurnKind.FALLBACK, prompts.SHUTTING_DOWN, then_end=True)

    async def drop(self) -> None:
        """The caller is gone (socket closed): stop at once."""
        await self.worker.cancel()

    async def say(self, kind: TurnKind, text: str, *, then_end: bool = False) -> None:
        """Speak unprompted (greeting, fallback, transfer notice) as a turn of its own."""
        await self.recorder.open_bot_turn(kind, text)
        frames: list[Frame] = [TTSSpeakFrame(text)]
        if then_end:
            frames.append(EndFrame())
        await self.worker.queue_frames(frames)

    async def transfer(self) -> None:
        """Hand the live call to a human (keypad 0, or the conversation decided to)."""
        if self._transferring:
            return
        if self._transfer_line is None:
            await self.say(TurnKind.FALLBACK, prompts.CANNOT_TRANSFER)
            return
        self._transferring = True
        try:
            await self._transfer_line()
        except Exception as e:
            self._transferring = False
            self.log.error(f"transfer failed: {e}")
            self.recorder.note_error(error_code_of(e, ErrorCode.TRANSFER_FAILED))
            await self.say(TurnKind.FALLBACK, prompts.CANNOT_TRANSFER)
            return
        self.end_reason = EndReason.TRANSFERRED
        await self._update_record(outcome=Outcome.TRANSFERRED)

    # -- what the caller does ----------------------------------------------------------------
    def turn_index(self) -> int | None:
        """The caller's turn being answered (the same one when they went on after a pause)."""
        turn = self.recorder.current
        return turn.index if turn is not None else None

    async def answer(self, said: str, heard_logprob: float | None) -> Reply:
        """The caller's finished turn, decided on by the conversation."""
        return await self.conversation.handle(said, heard_logprob=heard_logprob)

    def expected_answer(self) -> Expected:
        """The form of answer the agent just asked for (the recogniser's grammar)."""
        return self.conversation.expected_answer()

    async def on_empty_transcript(self, result: Transcript) -> None:
        if self.recorder.cut_reply is not None and await self.on_false_interruption(result):
            return  # the caller's going on was no words: the answer it cut off is said after all
        self.log.info(f"no words in {result.audio_secs:.1f}s of audio; asking the caller to repeat")
        if self._fallbacks < MAX_FALLBACKS_PER_CALL:
            self._fallbacks += 1
            await self.say(TurnKind.FALLBACK, prompts.DIDNT_CATCH)

    async def on_false_interruption(self, result: Transcript) -> bool:
        """The caller's speech cut the agent off and was nothing to answer (no words, or a long
        "mm-hm"): say again what of the cut reply the caller did not hear. False when there is
        nothing to resume (the caller's words are then handled as usual)."""
        cut = self.recorder.reply_cut_off()
        if cut is None:
            return False
        skip = (*prompts.ACKNOWLEDGEMENTS, prompts.HOLD_ON)
        heard = last_agent_words(self._context.get_messages()) or ""
        rest = unheard_rest(cut, heard, skip=skip)
        if not rest:
            return False
        self.log.info(f"{result.text or 'no words'!r} cut the agent off; it resumes: {rest!r}")
        if self.recorder.cut_reply is not None and not self.recorder.cut_reply_played:
            await self.say(TurnKind.RESUMED, rest)  # none of it played: said as it was
            return True
        if rest[1:2].islower():  # "As I was saying, who am I speaking with...?"
            rest = rest[0].lower() + rest[1:]
        await self.say(TurnKind.RESUMED, f"{prompts.RESUMING} {rest}")
        return True

    async def on_turn_complete(self) -> None:
        """Smart-turn judged the caller finished: "Okay." while the answer is made."""
        if self.recorder.may_acknowledge():
            await self._acknowledger.turn_complete(speech_secs=self.recorder.speech_secs())

    async def _speak_acknowledgement(self, phrase: str) -> None:
        self.recorder.start_ack(phrase)
        await self.worker.queue_frame(TTSSpeakFrame(phrase, append_to_context=False))

    async def on_digit(self, digit: str) -> None:
        self.log.info(f"caller pressed {digit}")
        if digit != HUMAN_DIGIT or self._transferring:
            return
        if self._transfer_line is not None:
            await self.say(TurnKind.TRANSFER, prompts.TRANSFERRING)
        await self.transfer()

    async def on_caller_idle(self, _aggregator: Any) -> None:
        self._idle_prompts += 1
        if self._idle_prompts > MAX_IDLE_PROMPTS:
            await self.say(TurnKind.FALLBACK, prompts.GOODBYE_IDLE, then_end=True)
        else:
            await self.say(TurnKind.FALLBACK, prompts.STILL_THERE)

    async def on_caller_spoke(self, _aggregator: Any, *_args: Any) -> None:
        self._idle_prompts = 0

    async def on_agent_turn_said(self, _aggregator: Any, *_args: Any) -> None:
        """The agent's turn is in the context: the in-process model reads the conversation so
        far while it is spoken and the caller answers (``LocalLLMService.prefill``)."""
        if self._reads_ahead is None:
            return
        try:
            await self._reads_ahead.prefill(self._context)
        except Exception as e:  # the next answer reads it all then, as it would have
            self.log.warning(f"reading the conversation ahead failed: {e!r}")

    async def on_caller_left(self, *_args: Any) -> None:
        self.log.info("the caller's connection closed")
        self.end_reason = self.end_reason or EndReason.CALLER_HUNG_UP
        await self.drop()

    async def on_media_lost(self, silent_secs: float) -> None:
        self.log.warning(f"no caller audio for {silent_secs:.0f}s: ending the call")
        self.end_reason = self.end_reason or EndReason.MEDIA_TIMEOUT
        await self.drop()

    # -- what goes wrong ---------------------------------------------------------------------
    def answer_wait(self) -> tuple[int, float] | None:
        """(turn index, seconds) the caller has waited for this turn's answer since they stopped
        speaking; None while they speak, something plays, or no answer is owed."""
        recorder, turn = self.recorder, self.recorder.current
        if (
            turn is None
            or turn.kind != TurnKind.REPLY
            or recorder.caller_speaking
            or recorder.bot_speaking
            or self._transferring
            or self.end_reason is not None
        ):
            return None
        ended = turn.stages.get("speech_end")
        if ended is None or "answer_audio_out" in turn.stages:
            return None
        if not turn.user_text and not self._stt.decoding:
            return None  # no words and nothing left to decode: on_empty_transcript answers
        return turn.index, time.time() - ended

    def on_answer_late(self, text: str) -> None:
        self.log.warning(f"no answer {self.settings.answer_hold_secs:g} s after the caller spoke")
        self.recorder.start_hold(text)

    async def on_answer_abandoned(self, text: str) -> None:
        self.log.error(
            f"no answer {self.settings.answer_give_up_secs:g} s after the caller spoke: abandoned"
        )
        turn = self.recorder.current
        if turn is not None:
            turn.error_code = ErrorCode.ANSWER_TIMEOUT
        await self.recorder.open_bot_turn(TurnKind.FALLBACK, text)

    async def on_pipeline_error(self, _worker: Any, frame: ErrorFrame) -> None:
        self.log.error(f"pipeline error: {frame.error}")
        if frame.fatal or self._fallbacks >= MAX_FALLBACKS_PER_CALL:
            return
        if error_code(frame) == ErrorCode.TTS_FAILED:
            return  # speaking a fallback needs the TTS that just failed
        self._fallbacks += 1
        await self.say(TurnKind.FALLBACK, prompts.TROUBLE)

    # -- what the conversation learns, onto the record ---------------------------------------
    def on_reply(self, reply: Reply) -> None:
        turn = self.recorder.current
        if turn is None:
            return
        turn.citations = reply.citations or turn.citations
        turn.error_code = turn.error_code or reply.error
        turn.understood = reply.understood or turn.understood
        for stage, at in reply.stages.items():
            turn.mark(stage, at, overwrite=True)  # the words the turn was finally answered on

    async def on_triage(self, result: TriageLike, secs: float) -> None:
        triage = result.for_call(latency_secs=secs)
        await self._update_record(category=result.category, priority=result.priority, triage=triage)

    async def on_caller(self, name: str | None, number: str | None) -> None:
        await self._update_record(caller_name=name, callback_number=number)

    async def on_outcome(self, outcome: Outcome) -> None:
        await self._update_record(outcome=outcome)

    async def _update_record(self, **fields: Any) -> None:
        try:
            await asyncio.to_thread(self.store.update_call, self.call_id, **fields)
        except Exception:  # the record is incomplete; the call goes on
            self.log.exception(f"could not update the call record with {sorted(fields)}")

    async def _persist_turn(self, turn: TurnRecord) -> None:
        metrics.observe_turn(turn)
        try:
            await asyncio.to_thread(self.store.add_turn, self.call_id, turn)
        except Exception:  # storage trouble must not end the call; the log keeps the turn
            self.log.exception(f"could not store turn {turn.index}: {turn.to_dict()}")
        if self._on_turn is not None:
            await self._on_turn(turn)


async def run_call(
    transport: BaseTransport,
    *,
    engines: Engines,
    store: CallStore,
    transport_name: str,
    on_started: Callable[[Call], Awaitable[None] | None] | None = None,
    slot: CallSlot | None = None,
    **options: Any,
) -> CallResult:
    """Run one call to its end: every transport's call comes here (options: :class:`Call`).
    ``transfer`` hands the live call to a human (the transport knows how); ``before_output``
    adds transport processors before the audio goes out. ``slot``, the call's admission, can
    then end it early when the server drains."""
    call = await Call.open(
        transport, engines=engines, store=store, transport_name=transport_name, **options
    )
    if slot is not None:
        slot.close_early = call.close_for_shutdown
    return await call.run(on_started)

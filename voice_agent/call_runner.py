"""The call runner: every transport's call ends here, in the same pipeline and the same records.

Per call it makes the per-call services over the shared engines, greets the caller, keeps the call
audible when something goes wrong (a fallback phrase, never dead air), stores the call and each
turn as it ends, and closes the record however the call ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger
from pipecat.flows import FlowManager
from pipecat.frames.frames import EndFrame, ErrorFrame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from flows import prompts
from flows.conversation import HelpdeskConversation
from flows.runbooks import RunbookGuide
from flows.services import HelpdeskServices, Reply
from voice_agent.acknowledgement import Acknowledger
from voice_agent.answer_grammar import Expected
from voice_agent.call_control import HUMAN_DIGIT, KeypadListener
from voice_agent.call_records import TurnRecord, TurnRecorder
from voice_agent.engines import Engines
from voice_agent.flow_processor import HelpdeskFlowProcessor, TurnNote
from voice_agent.media_watchdog import MediaWatchdog
from voice_agent.pipeline import build_pipeline, make_context_aggregators, make_llm_service
from voice_agent.recording import CallRecording, recording_path
from voice_agent.storage import CallStore
from voice_agent.stt import Transcript, TurnConfidence, WhisperSTTService, recognition_prompt
from voice_agent.tickets import make_ticket_service
from voice_agent.tts import PiperTTSService

MAX_FALLBACKS_PER_CALL = 5
MAX_IDLE_PROMPTS = 2


@dataclass
class CallResult:
    call_id: str
    status: str
    turns: list[TurnRecord] = field(default_factory=list)
    error: str | None = None


@dataclass
class CallHandle:
    """What a transport gets to steer the call it carries."""

    call_id: str
    task: PipelineWorker
    recorder: TurnRecorder
    end_reason: str | None = None

    async def hang_up(self) -> None:
        """End gracefully: what is queued is still said, then the pipeline stops."""
        await self.task.queue_frame(EndFrame())

    async def drop(self) -> None:
        """The caller is gone (socket closed): stop at once."""
        await self.task.cancel()


async def run_call(
    transport: BaseTransport,
    *,
    engines: Engines,
    store: CallStore,
    transport_name: str,
    audio_out_sample_rate: int,
    caller: str | None = None,
    external_id: str | None = None,
    on_started: Callable[[CallHandle], Awaitable[None] | None] | None = None,
    make_llm: Callable[..., LLMService] = make_llm_service,
    transfer: Callable[[], Awaitable[None]] | None = None,
    before_output: Callable[[TurnRecorder], list[FrameProcessor]] | None = None,
    wait_for_playback_marks: bool = False,
    observers: list[BaseObserver] = (),
    on_turn: Callable[[TurnRecord], Awaitable[None]] | None = None,
) -> CallResult:
    """Run one call to its end. ``transfer`` hands the live call to a human (the transport
    knows how); ``before_output`` adds transport processors before the audio goes out."""
    settings = engines.settings
    call_id = await asyncio.to_thread(
        store.start_call,
        transport_name,
        caller=caller,
        external_id=external_id,
        models=engines.model_names,
    )
    log = logger.bind(call_id=call_id)
    log.info(f"call {call_id} started on {transport_name}")

    async def persist_turn(turn: TurnRecord) -> None:
        try:
            await asyncio.to_thread(store.add_turn, call_id, turn)
        except Exception:  # storage trouble must not end the call; the log keeps the turn
            log.exception(f"could not store turn {turn.index}: {turn.to_dict()}")
        if on_turn is not None:
            await on_turn(turn)

    recorder = TurnRecorder(
        persist_turn,
        vad_stop_secs=settings.vad_stop_secs,
        wait_for_playback_marks=wait_for_playback_marks,
    )
    fallbacks = 0
    idle_prompts = 0
    task: PipelineWorker | None = None

    async def say(kind: str, text: str, *, then_end: bool = False) -> None:
        await recorder.open_bot_turn(kind, text)
        frames = [TTSSpeakFrame(text)]
        if then_end:
            frames.append(EndFrame())
        assert task is not None
        await task.queue_frames(frames)

    async def on_empty_transcript(result: Transcript) -> None:
        nonlocal fallbacks
        log.info(f"no words in {result.audio_secs:.1f}s of audio; asking the caller to repeat")
        if fallbacks < MAX_FALLBACKS_PER_CALL:
            fallbacks += 1
            await say("fallback", prompts.DIDNT_CATCH)

    def expected_answer() -> Expected:
        # the conversation exists before the pipeline runs, so before any audio is decoded
        conversation = flow_turns.conversation
        return conversation.expected_answer() if conversation is not None else Expected.SPEECH

    context = LLMContext()
    heard = TurnConfidence()
    stt = WhisperSTTService(
        engines.stt,
        on_empty_transcript=on_empty_transcript,
        on_transcript=heard.add,
        # Whisper reads the caller's words as the answer to what the agent just said
        prompt=lambda: recognition_prompt(context.get_messages(), engines.stt.vocabulary),
        # and to "What's the ticket number?" under the ticket-number grammar
        expecting=expected_answer if settings.stt_answer_grammars else None,
        noise_floor_dbfs=settings.audio_noise_floor_dbfs,
    )
    note = TurnNote()
    llm = make_llm(engines, settings, prompts.system_prompt(settings.company_name), note)
    tts = PiperTTSService(engines.tts)

    async def speak_acknowledgement(phrase: str) -> None:
        recorder.start_ack(phrase)
        assert task is not None
        await task.queue_frame(TTSSpeakFrame(phrase, append_to_context=False))

    acknowledger = Acknowledger(speak_acknowledgement)

    async def on_turn_complete() -> None:
        if recorder.may_acknowledge():
            await acknowledger.turn_complete(speech_secs=recorder.speech_secs())

    aggregators = make_context_aggregators(
        context, settings, on_turn_complete if settings.acknowledge_turns else None
    )
    handle: CallHandle | None = None
    transferring = False

    async def transfer_call() -> None:
        """Hand the live call to a human (keypad 0, or the conversation decided to)."""
        nonlocal transferring
        if transferring:
            return
        if transfer is None:
            await say("fallback", prompts.CANNOT_TRANSFER)
            return
        transferring = True
        try:
            await transfer()
        except Exception as e:
            transferring = False
            log.error(f"transfer failed: {e}")
            recorder.note_error(getattr(e, "code", "transfer_failed"))
            await say("fallback", prompts.CANNOT_TRANSFER)
            return
        assert handle is not None
        handle.end_reason = "transferred"
        await update_call(outcome="transferred")

    async def on_digit(digit: str) -> None:
        log.info(f"caller pressed {digit}")
        if digit != HUMAN_DIGIT or transferring:
            return
        if transfer is not None:
            await say("transfer", prompts.TRANSFERRING)
        await transfer_call()

    async def update_call(**fields) -> None:
        try:
            await asyncio.to_thread(store.update_call, call_id, **fields)
        except Exception:  # the record is incomplete; the call goes on
            log.exception(f"could not update the call record with {sorted(fields)}")

    async def on_triage(result, secs: float) -> None:
        triage = {
            "category": result.category,
            "priority": result.priority,
            "confidence": round(float(result.confidence), 3),
            "source": result.source,
            "latency_ms": round(secs * 1000, 1),
        }
        await update_call(category=result.category, priority=result.priority, triage=triage)

    def on_reply(reply: Reply) -> None:
        turn = recorder.current
        if turn is None:
            return
        turn.citations = reply.citations or turn.citations
        turn.error_code = turn.error_code or reply.error
        turn.understood = reply.understood or turn.understood
        for stage, at in reply.stages.items():
            turn.mark(stage, at, overwrite=True)  # the words the turn was finally answered on

    tickets = make_ticket_service(settings, store)
    services = HelpdeskServices(
        runbooks=RunbookGuide(engines.knowledge, top_k=settings.kb_top_k),
        triage=engines.triage,
        tickets=tickets,
        acts=engines.acts,
        call_id=call_id,
        caller_phone=caller,
        can_transfer=transfer is not None,
        company=settings.company_name,
        on_triage=on_triage,
        on_caller=lambda name, number: update_call(caller_name=name, callback_number=number),
        on_outcome=lambda outcome: update_call(outcome=outcome),
    )

    async def hang_up() -> None:
        assert task is not None
        await task.queue_frame(EndFrame())

    async def media_lost(silent_secs: float) -> None:
        log.warning(f"no caller audio for {silent_secs:.0f}s: ending the call")
        assert handle is not None
        handle.end_reason = handle.end_reason or "media_timeout"
        await handle.drop()

    flow_turns = HelpdeskFlowProcessor(
        None,  # set below, once the flow manager has its worker
        note,
        heard=heard.take,
        on_reply=on_reply,
        on_say=lambda text: recorder.open_bot_turn("reply", text),
        transfer=transfer_call,
        hang_up=hang_up,
    )
    recording = (
        CallRecording(recording_path(settings.data_dir, call_id)) if settings.record_calls else None
    )
    pipeline = build_pipeline(
        transport,
        stt,
        aggregators,
        llm,
        tts,
        conversation=flow_turns,
        call_control=[
            MediaWatchdog(settings.media_timeout_secs, media_lost),
            KeypadListener(on_digit),
        ],
        before_output=before_output(recorder) if before_output else [],
        recording=recording.processor if recording else None,
    )
    task = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=16000,
            audio_out_sample_rate=audio_out_sample_rate,
            enable_metrics=True,
            enable_usage_metrics=True,
        ),
        observers=[recorder, *observers],
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    @task.event_handler("on_pipeline_error")
    async def on_pipeline_error(_task, frame: ErrorFrame) -> None:
        nonlocal fallbacks
        log.error(f"pipeline error: {frame.error}")
        if frame.fatal or fallbacks >= MAX_FALLBACKS_PER_CALL:
            return
        if "tts_failed" in str(frame.error):
            return  # speaking a fallback needs the TTS that just failed
        fallbacks += 1
        await say("fallback", prompts.TROUBLE)

    @aggregators.user().event_handler("on_user_turn_idle")
    async def on_user_idle(_aggregator) -> None:
        nonlocal idle_prompts
        idle_prompts += 1
        if idle_prompts > MAX_IDLE_PROMPTS:
            await say("fallback", prompts.GOODBYE_IDLE, then_end=True)
        else:
            await say("fallback", prompts.STILL_THERE)

    @aggregators.user().event_handler("on_user_turn_started")
    async def on_user_turn_started(_aggregator, *args) -> None:
        nonlocal idle_prompts
        idle_prompts = 0

    handle = CallHandle(call_id, task, recorder)
    flow = FlowManager(llm=llm, context_aggregator=aggregators, worker=task, transport=transport)
    conversation = HelpdeskConversation(services, flow)
    flow_turns.conversation = conversation
    await conversation.start()

    async def caller_left(*_args) -> None:
        log.info("the caller's connection closed")
        handle.end_reason = handle.end_reason or "caller_hung_up"
        await handle.drop()

    if "on_client_disconnected" in getattr(transport, "_event_handlers", {}):
        transport.add_event_handler("on_client_disconnected", caller_left)
    notice = settings.recording_notice if settings.record_calls else None
    await say("greeting", prompts.greeting(settings.company_name, notice))
    if on_started is not None:
        maybe = on_started(handle)
        if asyncio.iscoroutine(maybe):
            await maybe

    status, error = "completed", None
    try:
        runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await runner.add_workers(task)
        await runner.run()
    except asyncio.CancelledError:
        status, error = "abandoned", "call cancelled"
        raise
    except Exception as e:  # the record says why the call died
        status, error = "failed", f"{type(e).__name__}: {e}"
        log.exception("call failed")
    finally:
        if recording is not None:
            recording.close()
        await tickets.aclose()
        await recorder.flush()
        if conversation.state.get("outcome") is None and handle.end_reason != "transferred":
            await update_call(outcome="abandoned")
        try:
            await asyncio.to_thread(
                store.end_call, call_id, status=status, end_reason=handle.end_reason, error=error
            )
        except Exception:
            log.exception("could not close the call record")
        log.info(f"call {call_id} ended: {status}")
    return CallResult(call_id, status, recorder.turns, error)

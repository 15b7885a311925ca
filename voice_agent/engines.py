"""The models a process loads once, at start-up, and shares with every call.

Per-call objects (pipecat services, VAD state, the conversation context) are made by the call
runner from these; nothing here holds per-call state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from voice_agent.dialogue_acts import DialogueActClassifier
from voice_agent.flows.prompts import ACKNOWLEDGEMENTS, system_prompt
from voice_agent.knowledge.caller_terms import CallerTerms, CallerTermsError
from voice_agent.knowledge.retriever import HybridRetriever
from voice_agent.knowledge.store import KnowledgeError, KnowledgeStore
from voice_agent.llm.service import LlamaEngine
from voice_agent.models.store import resolve
from voice_agent.settings import Settings
from voice_agent.speech.stt import WhisperEngine
from voice_agent.speech.tts import PiperEngine
from voice_agent.speech.vocabulary import build_vocabulary
from voice_agent.triage.service import Triager
from voice_agent.triage.taxonomy import Taxonomy, load_taxonomy


class SharedSmartTurn(LocalSmartTurnAnalyzerV3):
    """The smart-turn v3 analyzer over one ONNX session shared by all calls (ORT is thread-safe).

    The analyzer's per-call state (buffered audio, speech flags) lives in each instance; only the
    inference session is shared, instead of loading the model again for every call.
    """

    _session_cache: ort.InferenceSession | None = None

    def __init__(self, **kwargs) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False
        if SharedSmartTurn._session_cache is None:
            SharedSmartTurn._session_cache = LocalSmartTurnAnalyzerV3()._session
        self._session = SharedSmartTurn._session_cache


@dataclass
class Engines:
    settings: Settings
    stt: WhisperEngine
    tts: PiperEngine
    llm: LlamaEngine | None  # None when the LLM is an OpenAI-compatible server
    model_names: dict[str, str] = field(default_factory=dict)
    load_secs: float = 0.0
    knowledge: HybridRetriever | None = None  # None: the runbooks could not be opened
    triage: Triager | None = None  # category + priority of a caller's problem
    acts: DialogueActClassifier | None = None  # what a caller's turn does (yes, a ticket, ...)

    @classmethod
    def load(cls, settings: Settings) -> Engines:
        """Resolve and load every model; raises ``ModelNotReadyError`` naming the fix."""
        started = time.perf_counter()
        stt_dir = resolve(settings.stt_model, "stt", settings.models_dir)
        tts_path = resolve(settings.tts_voice, "tts", settings.models_dir)
        llm_path: Path | None = None
        if settings.llm_backend == "local":
            llm_path = resolve(settings.llm_model, "llm", settings.models_dir)

        stt = WhisperEngine(
            stt_dir,
            device=settings.stt_device,
            compute_type=settings.stt_compute_type,
            cpu_threads=settings.stt_cpu_threads,
            language=settings.stt_language,
            beam_size=settings.stt_beam_size,
            window_padding_secs=settings.stt_window_padding_secs,
        )
        tts = PiperEngine(tts_path, use_cuda=settings.tts_use_cuda)
        tts.remember(ACKNOWLEDGEMENTS)
        llm = None
        if llm_path is not None:
            llm = LlamaEngine.from_settings(llm_path, settings)
            warm = llm.warm(system_prompt(settings.company_name))
            logger.info(f"system prompt evaluated and cached in {warm:.2f}s")
        SharedSmartTurn()  # load the turn model now, not on the first call
        knowledge = open_knowledge(settings)
        triage = Triager.load(settings, llm_engine=llm)
        stt.vocabulary = stt_vocabulary(settings, knowledge, triage.taxonomy)
        if stt.vocabulary:
            logger.info(f"speech-to-text vocabulary: {stt.vocabulary}")
        acts = DialogueActClassifier.load(cache_dir=settings.data_dir / "cache")
        names = {
            "stt": settings.stt_model,
            "tts": settings.tts_voice,
            "llm": settings.llm_model if llm else f"{settings.llm_base_url} {settings.llm_model}",
        }
        return cls(
            settings, stt, tts, llm, names, time.perf_counter() - started, knowledge, triage, acts
        )


def open_knowledge(settings: Settings) -> HybridRetriever | None:
    """Open the runbook index and bring it up to date with ``kb_paths`` (incremental).

    A knowledge base that cannot be opened does not stop the server: calls still run, and the
    caller hears that the agent can't look things up right now.
    """
    try:
        store = KnowledgeStore.from_settings(settings)
        paths = [p for p in settings.kb_paths if Path(p).exists()]
        if paths:
            report = store.ingest(paths)
            counts = ", ".join(f"{n} {what}" for what, n in report.counts().items())
            logger.info(
                f"runbooks: {store.article_count()} articles, {len(store)} passages ({counts})"
            )
            for skipped in report.skipped:
                logger.warning(
                    f"runbook skipped: {skipped.path}: {skipped.reason} {skipped.detail}"
                )
        return HybridRetriever(store, terms=caller_terms(settings))
    except KnowledgeError as e:
        logger.error(f"runbooks unavailable: {e}")
        return None


def caller_terms(settings: Settings) -> CallerTerms:
    """The runbook search's lexicon, with the company glossary; a glossary that cannot be read
    is reported and the packaged lexicon used alone (calls go on)."""
    try:
        return CallerTerms.load(settings.kb_glossary)
    except CallerTermsError as e:
        logger.error(f"kb_glossary ignored: {e}")
        return CallerTerms.load()


def stt_vocabulary(
    settings: Settings, knowledge: HybridRetriever | None, taxonomy: Taxonomy | None = None
) -> str:
    """The words Whisper is told to expect (``voice_agent.speech.vocabulary``), from this
    deployment's runbooks, taxonomy and ``stt_vocabulary_terms``; empty when ``stt_vocabulary`` is
    off."""
    if not settings.stt_vocabulary:
        return ""
    articles: dict[tuple[str, str], str] = {}
    if knowledge is not None:
        for chunk in knowledge.store.chunks():
            articles.setdefault((chunk.root, chunk.article_path), f"{chunk.title}. {chunk.tags}")
    taxonomy = taxonomy or load_taxonomy(settings.triage_taxonomy)
    return build_vocabulary(
        runbook_texts=articles.values(),
        taxonomy_texts=[c.gloss for c in taxonomy.categories],
        extra_terms=settings.stt_vocabulary_terms,
    )

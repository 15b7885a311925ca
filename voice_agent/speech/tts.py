"""Text-to-speech: one Piper voice per process, a pipecat TTS service per call.

Pipecat's TTS base class aggregates the LLM's streamed text into sentences and calls
:meth:`PiperTTSService.run_tts` once per sentence, so the first sentence is spoken while the
model is still writing the second. Synthesis runs in a worker thread; output is resampled with
soxr (pipecat's stream resampler) to the transport's rate.

Much of what the agent says is the same sentence on every call: the greeting, "I can help with
that.", "May I have your name first?", a runbook's steps. The engine keeps the audio of the
sentences it spoke last (``SENTENCE_CACHE_BYTES``, least recently used first out), shared by every
call, so a sentence said before plays without waiting for Piper (0.1-0.6 s on a 2-core CPU,
more while Whisper and the model run).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path

from cachetools import LRUCache
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.transforms import strip_markdown

from voice_agent.errors import SynthesisFailed
from voice_agent.speech.speakable import speakable_transform

SENTENCE_CACHE_BYTES = 32 * 1024 * 1024  # about 12 minutes of 22 kHz speech


class PiperEngine:
    """A Piper voice loaded once and shared by every call in the process."""

    def __init__(
        self,
        model_path: Path,
        *,
        use_cuda: bool = False,
        cache_bytes: int = SENTENCE_CACHE_BYTES,
    ) -> None:
        from piper import PiperVoice

        started = time.perf_counter()
        self.model_path = Path(model_path)
        self._voice = PiperVoice.load(str(self.model_path), use_cuda=use_cuda)
        self.sample_rate: int = self._voice.config.sample_rate
        self._lock = threading.Lock()
        self._remembered: dict[str, bytes] = {}
        # the sentences spoken last, bounded by their audio's bytes
        self._recent: LRUCache[str, bytes] = LRUCache(maxsize=cache_bytes, getsizeof=len)
        self._recent_lock = threading.Lock()
        self.load_secs = time.perf_counter() - started
        logger.info(f"piper voice loaded from {self.model_path} in {self.load_secs:.1f}s")

    def remember(self, phrases: Iterable[str]) -> None:
        """Synthesize fixed phrases once (e.g. the acknowledgement), so they cost nothing later."""
        for phrase in phrases:
            self._remembered[phrase] = self.synthesize(phrase)

    def synthesize(self, text: str) -> bytes:
        """Blocking: 16-bit mono PCM at :attr:`sample_rate` for ``text``."""
        if text in self._remembered:
            return self._remembered[text]
        with self._recent_lock:
            audio = self._recent.get(text)
        if audio is not None:
            return audio
        with self._lock:
            audio = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text))
        if len(audio) <= self._recent.maxsize:  # (bigger than the whole memory: not kept)
            with self._recent_lock:
                self._recent[text] = audio
        return audio

    async def synthesize_async(self, text: str) -> bytes:
        return await asyncio.to_thread(self.synthesize, text)


class PiperTTSService(TTSService):
    """Pipecat TTS over the shared :class:`PiperEngine`; markdown is stripped before speaking."""

    def __init__(self, engine: PiperEngine, **kwargs) -> None:
        kwargs.setdefault("text_transforms", [("*", strip_markdown), ("*", speakable_transform)])
        kwargs.setdefault(
            "settings", TTSSettings(model=None, voice=engine.model_path.stem, language=None)
        )
        # start/stop frames bracket each reply, so the transport knows at once when the bot
        # has finished speaking (instead of a 3 s silence fallback)
        super().__init__(push_start_frame=True, push_stop_frames=True, **kwargs)
        self._engine = engine

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        async def one_chunk():
            yield await self._engine.synthesize_async(text)

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(
                one_chunk(), in_sample_rate=self._engine.sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:
            logger.exception("piper synthesis failed")
            yield ErrorFrame(error=f"text-to-speech failed: {e}", exception=SynthesisFailed(str(e)))
        finally:
            await self.stop_ttfb_metrics()

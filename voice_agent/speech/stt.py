"""Speech-to-text: one faster-whisper model per process, a pipecat STT service per call.

The whole decode (``transcribe`` plus iterating its lazy segment generator) finishes inside a
worker thread, so a long utterance never blocks the event loop. Decoding is a beam search at
``temperature=0`` with the language fixed, over Whisper's whole 30 s window, or with
``window_padding_secs`` set (10 s measured best) over the caller's audio and that much after it
(under half the time; the whole window again when that reading heard nothing), and guarded
against Whisper's failure modes: segments that are probably not speech, repetition loops, and
runaway token counts.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    Frame,
    TranscriptionFrame,
    UserBackchannelFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService, STTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voice_agent.errors import RecognitionFailed
from voice_agent.speech.answer_grammar import (
    GRAMMARS,
    AnswerGrammars,
    Expected,
    shaped_prompt,
    sure_enough,
    surer,
)
from voice_agent.speech.audio import int16_bytes_to_float
from voice_agent.speech.auto_gain import noise_floor
from voice_agent.speech.backchannel import is_backchannel

STT_SAMPLE_RATE = 16000
_MAX_TOKENS_PER_WINDOW = 200  # a 30 s window of fast speech is ~150 tokens
_WORD_RE = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard, and how sure it was: ``avg_logprob`` is the mean log-probability of
    the kept tokens (about -0.2 on clear speech, below -0.6 when words were probably misheard),
    ``no_speech_prob`` the highest probability that a kept segment held no speech at all."""

    text: str
    audio_secs: float
    decode_secs: float
    dropped_segments: int = 0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    shaped: Expected | None = None  # the answer grammar the kept text was decoded under


@dataclass(frozen=True)
class _Decoded:
    text: str
    dropped: int
    avg_logprob: float | None
    no_speech_prob: float | None


ECHO_WORDS = 5  # this many words in a row from the prompt: Whisper wrote its prompt back


def echoes_prompt(text: str, prompt: str) -> bool:
    """Whether ``text`` repeats a run of ``ECHO_WORDS`` words of ``prompt`` (Whisper's failure
    mode on audio it cannot make out: "Lucy, spell your name for me, letter by letter.")."""
    heard = [_bare(w) for w in text.split()]
    told = [_bare(w) for w in prompt.split()]
    runs = {tuple(told[i : i + ECHO_WORDS]) for i in range(len(told) - ECHO_WORDS + 1)}
    return any(tuple(heard[i : i + ECHO_WORDS]) in runs for i in range(len(heard) - ECHO_WORDS + 1))


def _bare(word: str) -> str:
    """A word as compared, whatever its case and the punctuation Whisper put around it."""
    return word.lower().strip(".,!?;:\"'")


# one syllable looping inside a word ("Nonononononono..."); letters only: digits may repeat
_LOOP_IN_A_WORD = re.compile(r"([^\W\d_]{2,4}?)\1{5,}", re.IGNORECASE)


DIGIT_REPEATS = 7  # a digit read out alone may repeat: "I N C 0 0 0 0 0 0 1" has six zeros


def collapse_repetitions(text: str, max_repeats: int = 3) -> str:
    """Cut a Whisper repetition loop ("the the the ...", a looping phrase, or one syllable
    looping inside a word) down to its start; a single digit may repeat ``DIGIT_REPEATS``
    times."""
    text = _LOOP_IN_A_WORD.sub(lambda m: m.group(1), text)
    words = text.split()
    for n in range(1, 7):
        i = 0
        while i + n * (max_repeats + 1) <= len(words):
            gram = [_bare(w) for w in words[i : i + n]]
            repeats = 1
            j = i + n
            while j + n <= len(words) and [_bare(w) for w in words[j : j + n]] == gram:
                repeats += 1
                j += n
            limit = DIGIT_REPEATS if n == 1 and gram[0].isdigit() else max_repeats
            if repeats > limit:
                words = words[: i + n * limit] + words[j:]
            i += 1
    return " ".join(words)


FRAMES_PER_SEC = 100  # Whisper's log-mel frames: one every 10 ms
FULL_WINDOW_FRAMES = 3000  # the 30 s window Whisper was trained on


def window_frames(samples: int, padding_secs: float | None) -> int | None:
    """How many log-mel frames of the 30 s window to encode for ``samples`` of 16 kHz audio:
    the audio and ``padding_secs`` after it, rounded up to whole seconds; None (the whole window)
    when ``padding_secs`` is None or the audio fills the window anyway."""
    if padding_secs is None:
        return None
    secs = samples / STT_SAMPLE_RATE + padding_secs
    frames = int(np.ceil(secs)) * FRAMES_PER_SEC
    return frames if frames < FULL_WINDOW_FRAMES else None


class _WindowedWhisperModel(WhisperModel):
    """faster-whisper's model, encoding only the first ``window_frames`` of each 30 s window.

    faster-whisper pads every window to 30 s, and the encoder's cost grows faster than its
    length: on a 2-core CPU whisper-base encodes the full window in ~0.7 s and 10 s in ~0.1 s,
    while a phone turn lasts 2-8 s (whisper.cpp's ``audio_ctx`` does the same). Whisper was
    trained on full windows: over one that ends soon after the speech (2 s) it now and then
    reads the audio twice ("And then the train ID. And then the train ID.") or hears a name as
    no speech; with 10 s after the speech it reads the shared phone turns and scripted lines as
    well as over the whole window. A reading that heard nothing is decoded again over the whole
    window (``doubtful``)."""

    window_frames: int | None = None

    def encode(self, features: np.ndarray):  # noqa: ANN201 - ctranslate2.StorageView
        if self.window_frames is not None and features.shape[-1] > self.window_frames:
            features = features[..., : self.window_frames]
        return super().encode(features)


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
MIN_REPEATED_WORDS = 3
SAME_SENTENCE_RATIO = 0.8  # difflib's word-level similarity of a sentence and its repeat


def drop_repeated_sentences(text: str) -> str:
    """Cut sentences that repeat the ones just before them ("And then the train ID. And then
    the train ID."): Whisper's loop when the window ends soon after the speech (it decodes the
    audio again rather than end the text). Saying the same sentence twice in a row adds no
    meaning, so the repeat is dropped whether the caller or the decoder made it. A repeat needs
    ``MIN_REPEATED_WORDS`` words (two of them longer than a letter): spelled letters and digits
    ("B. I. L. L.", "0. 0.") and a single "No. No." are left as said."""
    sentences = _SENTENCE_END.split(text.strip())
    changed = True
    while changed:
        changed = False
        for k in range(1, len(sentences) // 2 + 1):
            last = [_bare(w) for s in sentences[-k:] for w in s.split()]
            if len(last) < MIN_REPEATED_WORDS or sum(len(w) > 1 for w in last) < 2:
                continue
            before = [_bare(w) for s in sentences[-2 * k : -k] for w in s.split()]
            similar = difflib.SequenceMatcher(a=before, b=last, autojunk=False).ratio()
            if similar >= SAME_SENTENCE_RATIO:
                sentences = sentences[:-k]
                changed = True
                break
    return " ".join(sentences)


def doubtful(text: str, dropped: int = 0) -> bool:
    """Whether a short-window reading needs the whole window: it has no words, or lost a segment
    to the no-speech and compression guards (a 2 s padding once heard "It's Karen Walsh." as no
    speech).

    Nothing else is re-decoded. With 10 s of padding, every reading of the 68 real phone turns
    and the 211 scripted lines decoded both ways (``bench stt``, then each rule applied to the
    pairs): re-decoding the unsure ones (mean log-prob under -0.7) or those that say a run of
    words twice ("Time, time, time" for "5 5 5") cost a second decode on 60 of the scripted lines
    and made strict WER worse on both sets (scripted lines 43.5 % against 42.1 %, phone turns
    25.3 % against 24.8 %): the whole window reads those lines the same or worse. A sentence
    said twice in a row is dropped from every reading (``drop_repeated_sentences``)."""
    return not _WORD_RE.search(text) or dropped > 0


class WhisperEngine:
    """A faster-whisper model loaded once and shared by every call in the process."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        language: str = "en",
        beam_size: int = 1,
        vocabulary: str = "",
        window_padding_secs: float | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.language = language
        self.beam_size = beam_size
        # seconds encoded after the audio's end; None: Whisper's whole 30 s window
        self.window_padding_secs = window_padding_secs
        # words this deployment expects (runbook titles and tags, the taxonomy): Whisper is
        # told them as earlier text of the conversation, so "VPN" beats "maybe hand"
        self.vocabulary = vocabulary
        started = time.perf_counter()
        self._model = _WindowedWhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        # CTranslate2 runs one decode at a time per worker; queue callers explicitly so the
        # wait is visible and fair rather than contending inside the library.
        self._lock = threading.Lock()
        tokenizer = self._model.hf_tokenizer
        self._grammars = AnswerGrammars(
            lambda i: tokenizer.decode([i]), self._text_token_count(tokenizer)
        )
        self.load_secs = time.perf_counter() - started
        logger.info(f"whisper loaded from {self.model_dir} in {self.load_secs:.1f}s")

    @staticmethod
    def _text_token_count(tokenizer) -> int:
        """Text tokens come first in Whisper's vocabulary, up to end-of-text."""
        return tokenizer.token_to_id("<|endoftext|>")

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        heard_before: str = "",
        prompt: str | None = None,
        expecting: Expected = Expected.SPEECH,
    ) -> Transcript:
        """Blocking: decode float32 16 kHz mono audio to text. Call from a worker thread.

        ``heard_before`` is the transcript of the audio's opening (speech already pushed as
        text): Whisper is forced to start with it, and only what follows is returned. A
        fragment cut at a short pause decodes far better with its left context ("about them
        as dinosaurs" alone comes out as "about the mess diners or it's").

        ``prompt`` is the conversation so far as Whisper should read it (the agent's question
        the caller is answering); None: the deployment's ``vocabulary``.

        ``expecting``: the form of answer the agent asked for
        (``voice_agent.speech.answer_grammar``): the audio is first decoded under that form's
        grammar."""
        started = time.perf_counter()
        audio_secs = len(audio) / STT_SAMPLE_RATE
        if audio_secs < 0.1:
            return Transcript("", audio_secs, 0.0)
        told = (self.vocabulary if prompt is None else prompt) or None
        shaped = None
        if expecting is not Expected.SPEECH and not heard_before:
            shaped = self._decode_shaped(audio, told, expecting)
        if shaped is not None and sure_enough(shaped.avg_logprob):
            decoded = shaped
        else:
            decoded = self._decode_free(audio, heard_before, told)
            if shaped is not None and surer(shaped.avg_logprob, decoded.avg_logprob):
                decoded = shaped
        text = decoded.text
        if heard_before:
            text = _after_prefix(text, heard_before)
        text = drop_repeated_sentences(collapse_repetitions(text))
        if not _WORD_RE.search(text):
            text = ""
        return Transcript(
            text,
            audio_secs,
            time.perf_counter() - started,
            decoded.dropped,
            avg_logprob=decoded.avg_logprob if text else None,
            no_speech_prob=decoded.no_speech_prob if text else None,
            shaped=expecting if decoded is shaped and text else None,
        )

    def _decode_free(self, audio: np.ndarray, prefix: str, prompt: str | None) -> _Decoded:
        decoded = self._decode_short_first(audio, prefix, prompt)
        if prompt and echoes_prompt(decoded.text, prompt):
            # on audio it cannot make out, Whisper may write its prompt back ("Could you spell
            # it for me, letter by letter?" heard as the caller's answer): decode it unprompted
            logger.debug(f"STT echoed its prompt ({decoded.text!r}): decoding without it")
            decoded = self._decode(audio, prefix, None)
        return decoded

    def _decode_short_first(self, audio: np.ndarray, prefix: str, prompt: str | None) -> _Decoded:
        """The audio decoded over the short window (``window_padding_secs``), then over the whole
        30 s window when that reading is doubtful: it heard nothing or lost a segment. A
        decode forced to start with words already heard (``prefix``) reads the whole window at
        once: over the short one, forced, it was sure of the very fragment errors the left
        context is there to fix ("about the mess diner source" for "about them as dinosaurs")."""
        frames = window_frames(len(audio), self.window_padding_secs)
        if frames is None or prefix:
            return self._decode(audio, prefix, prompt)
        quick = self._decode(audio, prefix, prompt, frames=frames)
        if not doubtful(quick.text, quick.dropped):
            return quick
        logger.debug(f"STT short-window reading doubtful ({quick.text!r}): the whole window")
        return self._decode(audio, prefix, prompt)

    def _decode_shaped(
        self, audio: np.ndarray, prompt: str | None, expecting: Expected
    ) -> _Decoded | None:
        """The audio decoded under the answer grammar of ``expecting``; None when what came out
        does not have the form (the caller said something else)."""
        grammar = GRAMMARS[expecting]
        told = shaped_prompt(prompt, grammar)
        decoded = self._decode(
            audio, grammar.prefix, told, suppress=self._grammars.suppressed(expecting)
        )
        # the example is the grammar's to check (a ticket number's "I N C 0 0" is no echo)
        if not grammar.fits(decoded.text) or (prompt and echoes_prompt(decoded.text, prompt)):
            logger.debug(f"STT {expecting} reading does not fit: {decoded.text!r}")
            return None
        return decoded

    def _decode(
        self,
        audio: np.ndarray,
        prefix: str,
        prompt: str | None,
        suppress: list[int] | None = None,
        frames: int | None = None,
    ) -> _Decoded:
        """One decode; ``frames``: encode only that many of the window (None: all 30 s)."""
        with self._lock:
            self._model.window_frames = frames
            segments, _info = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                compression_ratio_threshold=2.4,
                no_speech_threshold=0.6,
                log_prob_threshold=-1.0,
                max_new_tokens=_MAX_TOKENS_PER_WINDOW,
                without_timestamps=True,
                vad_filter=False,
                prefix=prefix or None,
                initial_prompt=prompt,
                suppress_tokens=suppress if suppress is not None else [-1],
            )
            kept: list[str] = []
            dropped = 0
            logprob_sum = 0.0
            tokens = 0
            no_speech = None
            for seg in segments:  # the generator decodes lazily: consume it here, in the thread
                if seg.no_speech_prob > 0.6 and seg.avg_logprob < -0.7:
                    dropped += 1
                    continue
                if seg.compression_ratio > 2.4:
                    dropped += 1
                    continue
                kept.append(seg.text.strip())
                n = max(1, len(seg.tokens))
                logprob_sum += seg.avg_logprob * n
                tokens += n
                no_speech = max(no_speech or 0.0, seg.no_speech_prob)
        return _Decoded(
            " ".join(t for t in kept if t),
            dropped,
            round(logprob_sum / tokens, 3) if tokens else None,
            round(no_speech, 3) if no_speech is not None else None,
        )

    async def transcribe_async(
        self,
        audio: np.ndarray,
        *,
        heard_before: str = "",
        prompt: str | None = None,
        expecting: Expected = Expected.SPEECH,
    ) -> Transcript:
        return await asyncio.to_thread(
            self.transcribe, audio, heard_before=heard_before, prompt=prompt, expecting=expecting
        )


PROMPT_CHARS = 200  # the end of the agent's last reply: about the last two sentences


def last_agent_words(messages: list) -> str | None:
    """The agent's words since the caller last spoke, as the context holds them (pipecat keeps
    there what was played); None when the agent has said nothing since."""
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            return None
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            return message["content"]
    return None


def recognition_prompt(messages: list, vocabulary: str) -> str | None:
    """What Whisper is told before the caller's words: the agent's last reply, which the caller
    is answering; before the caller has said anything, the deployment's vocabulary.

    Measured offline on the dev scenario callers (espeak-ng voices through an 8 kHz line, beam
    5, 140 answers): WER 0.359 with no prompt, 0.345 with the vocabulary, 0.320 with the
    agent's question ("Would you like me to open a ticket?" makes "Yes, please open one" far
    more likely than "the F-clean open one"); openings decode best with the vocabulary."""
    said = last_agent_words(messages)
    user_turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    if not said or user_turns == 0:
        return vocabulary or None
    said = " ".join(said.split())
    if len(said) > PROMPT_CHARS:
        cut = said[-PROMPT_CHARS:]
        said = cut.split(" ", 1)[-1] if " " in cut else cut
    return said


def _after_prefix(text: str, prefix: str) -> str:
    """What Whisper wrote after the forced ``prefix`` (its output repeats the prefix).

    Whisper may rewrite the prefix's last word as it goes on ("open it to-" comes back as
    "open it to-get"): the prefix's end is found by aligning the words, not by counting them."""
    words, known = text.split(), prefix.split()
    bare_words, bare_known = [_bare(w) for w in words], [_bare(w) for w in known]
    if bare_words[: len(known)] == bare_known:
        return " ".join(words[len(known) :])
    matcher = difflib.SequenceMatcher(a=bare_known, b=bare_words, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    matched = sum(b.size for b in blocks)
    if not blocks or matched * 2 < len(known):
        return text  # a segment dropped by the guards took the prefix with it: keep what is left
    last = blocks[-1]
    end = last.b + last.size + (len(known) - last.a - last.size)  # words past the last match
    return " ".join(words[end:])


@dataclass(frozen=True)
class HeardTurn:
    """How a caller turn was heard: ``logprob``, the lowest mean token log-probability of its
    transcripts (None: nothing heard); ``shaped``, the answer grammar a transcript of it was
    decoded under (None: heard freely)."""

    logprob: float | None = None
    shaped: Expected | None = None


class TurnConfidence:
    """How sure Whisper was of what the caller said in this turn, from the transcripts pushed
    since the conversation last asked (``take``)."""

    def __init__(self) -> None:
        self._logprobs: list[float] = []
        self._shaped: Expected | None = None

    def add(self, transcript: Transcript) -> None:
        if transcript.avg_logprob is not None:
            self._logprobs.append(transcript.avg_logprob)
        self._shaped = self._shaped or transcript.shaped

    def take(self) -> HeardTurn:
        heard = HeardTurn(min(self._logprobs) if self._logprobs else None, self._shaped)
        self._logprobs.clear()
        self._shaped = None
        return heard


class WhisperSTTService(SegmentedSTTService):
    """Pipecat STT over the shared :class:`WhisperEngine`; one instance per call.

    Silero VAD cuts the caller's speech at every short pause. Whisper is far more accurate on a
    whole utterance than on fragments ("ask not" alone decodes as "Ask! Knock!"), so each pause
    starts a decode of *everything the caller said since the last transcript*, while they may
    still be talking. A decode that finishes while more speech is pending is thrown away (the next
    pause decodes the longer audio); one that finishes with nothing pending is pushed as the
    finalized transcript, and the turn detector answers at once. Audio is pushed in pieces only
    when a caller talks for over ``max_unpushed_secs`` without a long enough pause: Whisper
    drops words from long windows (28 s of read speech came back as 39 of its ~57 words), so a
    piece is kept well under that.

    A piece decoded after a transcript was already pushed (the caller went on after a pause
    that outlasted the decode) is decoded together with the pushed audio, Whisper forced to
    start with the pushed words, so the piece keeps its left context: for
    ``context_secs`` after a push, at most ``max_context_secs`` of audio.

    When a whole user turn decodes to nothing (noise, a cough, garbled audio), no transcript is
    pushed and ``on_empty_transcript`` decides what the caller hears.

    With ``backchannels``, speech that began while the agent was talking and decodes, while it
    still talks, to a backchannel ("mm-hm", "okay": :mod:`voice_agent.speech.backchannel`) or to
    nothing (a cough) is not a turn: a ``UserBackchannelFrame`` is pushed instead of a
    transcript (pipecat's frame for it: the agent keeps talking, the words stay out of the
    model's context), and nothing is said about the cough. Speech over the agent that did cut
    it off (it lasted long enough to take the turn) and decodes to a backchannel or to nothing
    is a false interruption: ``on_false_interruption`` is asked to resume the agent, and when it
    does, no transcript is pushed.
    """

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        on_empty_transcript=None,
        on_transcript: Callable[[Transcript], None] | None = None,
        prompt: Callable[[], str | None] | None = None,
        expecting: Callable[[], Expected] | None = None,
        noise_floor_dbfs: float | None = None,
        max_unpushed_secs: float = 10.0,
        context_secs: float = 3.0,
        max_context_secs: float = 8.0,
        backchannels: bool = False,
        on_false_interruption: Callable[[Transcript], Awaitable[bool]] | None = None,
        **kwargs,
    ) -> None:
        # The turn detector waits this long after speech for the final transcript before it
        # answers with the text it has: only when a last piece decodes to nothing. A finalized
        # transcript releases the turn at once, so the normal case never waits for this.
        kwargs.setdefault("ttfs_p99_latency", 3.0)
        kwargs.setdefault(
            "settings",
            STTSettings(model=engine.model_dir.name, language=engine.language or None),
        )
        super().__init__(sample_rate=STT_SAMPLE_RATE, **kwargs)
        self._engine = engine
        self._on_empty_transcript = on_empty_transcript
        self._on_transcript = on_transcript
        self._prompt = prompt
        self._expecting = expecting
        # the padding after a segment sounds like the line before it (the transport's floor)
        self._noise_dbfs = noise_floor_dbfs
        self._padding_rng = np.random.default_rng(1)
        self._max_unpushed_bytes = int(max_unpushed_secs * STT_SAMPLE_RATE) * 2
        self._unpushed = bytearray()  # caller audio not yet covered by a pushed transcript
        self._turn_has_text = False
        self._context_secs = context_secs
        self._max_context_bytes = int(max_context_secs * STT_SAMPLE_RATE) * 2
        self._context_pcm = b""  # the last pushed audio and its words, and when it was pushed
        self._context_text = ""
        self._context_at = 0.0
        self._piece_started_at = 0.0  # when the caller began the speech not yet decoded
        self._backchannels = backchannels
        self._bot_speaking = False
        self._piece_over_agent = False  # the speech not yet decoded began while the agent spoke
        self._cut_agent_off = False  # ...and took the turn while the agent still spoke
        self._on_false_interruption = on_false_interruption

    @property
    def wants_wav_segments(self) -> bool:
        return False

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def decoding(self) -> bool:
        """Caller audio is waiting for, or in, a decode (no transcript or empty result yet)."""
        return bool(self._unpushed) or self._more_speech_pending()

    def _more_speech_pending(self) -> bool:
        # pipecat 1.14's SegmentedSTTService state: the caller is mid-utterance, or a later
        # pause has already queued another decode.
        return self._user_speaking or not self._segment_queue.empty()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, UserStartedSpeakingFrame):
            self._turn_has_text = False
            over_agent = self._piece_over_agent and self._bot_speaking
            self._cut_agent_off = self._backchannels and over_agent
            self._piece_over_agent = False  # the caller has the turn: their words are a turn
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        await super().process_frame(frame, direction)

    async def _handle_user_started_speaking(self, frame) -> None:
        if not self._unpushed:
            self._piece_started_at = time.monotonic()
            self._piece_over_agent = self._bot_speaking
        await super()._handle_user_started_speaking(frame)

    def _heard_as_backchannel(self, text: str) -> bool:
        """Speech over the agent that, with the agent still talking, says nothing to act on."""
        return (
            self._backchannels
            and self._piece_over_agent
            and self._bot_speaking
            and (not text or is_backchannel(text))
        )

    async def _handle_user_stopped_speaking(self, frame) -> None:
        self._user_speaking = False
        self._unpushed.extend(self._audio_buffer)
        self._audio_buffer.clear()
        await self._segment_queue.put(b"decode")  # a token: run_stt decodes self._unpushed

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        if isinstance(frame, TranscriptionFrame):
            frame.finalized = not self._more_speech_pending()
            await STTService.push_frame(self, frame, direction)
            return
        await super().push_frame(frame, direction)

    def _trailing_silence(self) -> bytes:
        silence = super()._trailing_silence()
        if self._noise_dbfs is None or not silence:
            return silence
        noise = noise_floor(len(silence) // 2, self._noise_dbfs, self._padding_rng)
        return np.clip(noise, -32768, 32767).astype("<i2").tobytes()

    def _context(self) -> tuple[bytes, str]:
        gap = self._piece_started_at - self._context_at
        if not self._context_text or gap > self._context_secs:
            return b"", ""
        return self._context_pcm, self._context_text

    def _remember_context(self, piece: bytes, text: str) -> None:
        pcm, words = self._context()
        if len(pcm) + len(piece) > self._max_context_bytes:
            pcm, words = b"", ""
        self._context_pcm = pcm + piece
        self._context_text = f"{words} {text}".strip()
        self._context_at = time.monotonic()

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._more_speech_pending() and len(self._unpushed) < self._max_unpushed_bytes:
            return  # a later decode will cover this audio and more
        taken = len(self._unpushed)
        if taken == 0:
            return
        piece = bytes(self._unpushed)
        context_pcm, context_text = self._context()
        pcm = context_pcm + piece + self._trailing_silence()
        try:
            result = await self._engine.transcribe_async(
                int16_bytes_to_float(pcm),
                heard_before=context_text,
                prompt=self._prompt() if self._prompt is not None else None,
                expecting=self._expecting() if self._expecting is not None else Expected.SPEECH,
            )
        except Exception as e:  # a model failure must be heard as a fallback, not dead air
            logger.exception("whisper decode failed")
            del self._unpushed[:taken]
            yield ErrorFrame(
                error=f"speech-to-text failed: {e}", exception=RecognitionFailed(str(e))
            )
            return
        logger.debug(
            f"STT {result.audio_secs:.1f}s audio in {result.decode_secs:.2f}s: {result.text!r}"
        )
        if self._more_speech_pending() and len(self._unpushed) < self._max_unpushed_bytes:
            return  # the caller went on talking: this decode is already stale
        del self._unpushed[:taken]
        if self._heard_as_backchannel(result.text):
            logger.info(f"backchannel over the agent: {result.text or '(no words)'!r}")
            self._piece_over_agent = False
            if result.text:
                yield UserBackchannelFrame(result.text, self._user_id, time_now_iso8601())
            return
        cut_agent_off, self._cut_agent_off = self._cut_agent_off, False
        if (
            cut_agent_off
            and (not result.text or is_backchannel(result.text))
            and self._on_false_interruption is not None
            and await self._on_false_interruption(result)
        ):
            logger.info(f"false interruption: {result.text or '(no words)'!r}; the agent resumes")
            if result.text:
                yield UserBackchannelFrame(result.text, self._user_id, time_now_iso8601())
            return
        if not result.text:
            if not self._turn_has_text and self._on_empty_transcript is not None:
                await self._on_empty_transcript(result)
            return
        self._turn_has_text = True
        self._remember_context(piece, result.text)
        if self._on_transcript is not None:
            self._on_transcript(result)
        yield TranscriptionFrame(
            result.text,
            self._user_id,
            time_now_iso8601(),
            Language(self._engine.language) if self._engine.language else None,
            result=result,
        )

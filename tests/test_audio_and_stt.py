"""Audio decoding at the edge and the real faster-whisper engine on real speech."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    UserBackchannelFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from tests.conftest import CLEAN, TELEPHONY, gold_transcripts
from voice_agent.speech.answer_grammar import Expected
from voice_agent.speech.audio import AudioDecodeError, decode_audio_file, write_wav
from voice_agent.speech.auto_gain import AutoGainFilter
from voice_agent.speech.stt import (
    HeardTurn,
    Transcript,
    TurnConfidence,
    WhisperSTTService,
    _after_prefix,
    collapse_repetitions,
    doubtful,
    drop_repeated_sentences,
    echoes_prompt,
    recognition_prompt,
    window_frames,
)


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>")


def test_decode_resamples_any_format_to_16k_mono():
    audio = decode_audio_file(CLEAN / "jfk.flac")  # 44.1 kHz FLAC
    assert audio.sample_rate == 16000
    assert audio.samples.dtype == np.int16
    assert abs(audio.duration_secs - 11.0) < 0.1
    phone = decode_audio_file(next(TELEPHONY.glob("*.wav")))  # 8 kHz WAV
    assert phone.sample_rate == 16000 and phone.duration_secs > 0.5


def test_decode_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio_file(empty)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00not really audio" * 50)
    with pytest.raises(AudioDecodeError, match="garbage.wav"):
        decode_audio_file(garbage)
    with pytest.raises(AudioDecodeError, match="not found"):
        decode_audio_file(tmp_path / "missing.flac")
    header_only = write_wav(tmp_path / "header_only.wav", b"", 16000)
    with pytest.raises(AudioDecodeError, match="no samples"):
        decode_audio_file(header_only)


def test_repetition_loops_are_collapsed():
    assert collapse_repetitions("the the the the the the printer") == "the the the printer"
    looping = "I can't log in. " + "Thank you. " * 8
    assert collapse_repetitions(looping).count("Thank you.") == 3
    assert collapse_repetitions("my VPN is down") == "my VPN is down"
    # "None of the scanners ..." over an 8 kHz line, as Whisper wrote it
    heard = "Hi, it's Karin Walsh from the warehouse. Nonononononononononononononononononon"
    assert collapse_repetitions(heard) == "Hi, it's Karin Walsh from the warehouse. Non"
    for word in ("Mississippi", "bananas", "cocoa", "INC0000001", "000000000000", "hahaha"):
        assert collapse_repetitions(word) == word
    # a ticket number read out digit by digit is no loop; a digit looping past that is
    assert collapse_repetitions("I N C 0 0 0 0 0 0 1") == "I N C 0 0 0 0 0 0 1"
    assert collapse_repetitions("5, " * 12 + "5") == "5, " * 6 + "5,"


def test_a_sentence_repeated_right_after_itself_is_dropped():
    # what the short window made of real phone turns
    assert drop_repeated_sentences("And then the train ID. And then the train ID.") == (
        "And then the train ID."
    )
    looped = "Okay, that's perfect, okay. " * 3
    assert drop_repeated_sentences(looped) == "Okay, that's perfect, okay."
    two = "I want you to go to month for theatre. I want you go to month for theatre."
    assert drop_repeated_sentences(two) == "I want you to go to month for theatre."
    fee = "Okay, that's perfect. Can I get the entrance fee? Can I get the entrance fee?"
    assert drop_repeated_sentences(fee) == "Okay, that's perfect. Can I get the entrance fee?"
    # spelled letters, digits, a short "No. No." and different sentences are left as said
    for said in ("B. I. L. L.", "0. 0. 7.", "No. No.", "My VPN is down. It is down since Monday."):
        assert drop_repeated_sentences(said) == said


def test_the_short_window_covers_the_audio_and_its_padding():
    rate = 16000
    assert window_frames(3 * rate, None) is None  # the whole 30 s window
    assert window_frames(3 * rate, 2.0) == 500  # 3 s + 2 s, in 10 ms frames
    assert window_frames(int(3.2 * rate), 2.0) == 600  # rounded up to whole seconds
    assert window_frames(0, 0.0) == 0
    assert window_frames(28 * rate, 2.0) is None  # fills the window anyway


def test_a_short_window_reading_that_heard_nothing_is_decoded_again():
    assert not doubtful("My VPN won't connect.")
    assert not doubtful("Time, time, time, 0214")  # the whole window reads it the same
    assert doubtful("")  # nothing heard: the short window's way of missing a name
    assert doubtful("...")
    assert doubtful("It's Karen Walsh.", dropped=1)  # a segment lost to the guards


@pytest.mark.parametrize(
    ("decoded", "forced", "new_words"),
    [
        ("Many people don't think about birds", "Many people don't think", "about birds"),
        # Whisper finishes the forced last word its own way: the words after it are still new
        ("Can you open it to-get for me, please?", "Can you open it to-", "for me, please?"),
        ("Please open 8.0 ticket.", "Please just open 8.", "ticket."),
        # a guard dropped the segment that held the forced words: nothing of it to cut
        ("Take it for me.", "Please just open it.", "Take it for me."),
    ],
)
def test_the_words_after_the_forced_prefix_are_found_by_alignment(decoded, forced, new_words):
    assert _after_prefix(decoded, forced) == new_words


def test_whisper_on_the_real_clean_clips(small_engines):
    """Every clean clip decodes close to its gold transcript (tolerant WER)."""
    gold = gold_transcripts()
    scores = {}
    for path in sorted(CLEAN.iterdir()):
        audio = decode_audio_file(path).samples.astype(np.float32) / 32768
        result = small_engines.stt.transcribe(audio)
        scores[path.name] = wer(gold[f"clean/{path.name}"], result.text)
    assert len(scores) == 15
    assert scores["jfk.flac"] <= 0.1, scores
    assert max(scores.values()) <= 0.45, scores
    assert float(np.mean(list(scores.values()))) <= 0.15, scores


def test_whisper_encodes_only_the_audio_and_its_padding(small_engines, monkeypatch):
    """The 11 s JFK clip is encoded as 13 s of features (its padding: 2 s), not 30 s, and still
    decodes right; with the padding off, the whole window is encoded."""
    from faster_whisper import WhisperModel

    engine = small_engines.stt
    shapes: list[int] = []
    encode = WhisperModel.encode  # what the engine's model calls with the frames it keeps

    def recording(self, features):
        shapes.append(features.shape[-1])
        return encode(self, features)

    monkeypatch.setattr(WhisperModel, "encode", recording)
    audio = decode_audio_file(CLEAN / "jfk.flac").samples.astype(np.float32) / 32768
    monkeypatch.setattr(engine, "window_padding_secs", 2.0)
    short = engine.transcribe(audio)
    assert shapes[0] == 1300, shapes
    assert wer(gold_transcripts()["clean/jfk.flac"], short.text) <= 0.1, short.text
    shapes.clear()
    monkeypatch.setattr(engine, "window_padding_secs", None)
    engine.transcribe(audio)
    assert shapes == [3000]


def test_a_piece_after_a_pause_is_decoded_with_what_came_before(small_engines, monkeypatch):
    """Cut at the short pause after "think", the rest decodes badly alone; forced to start with
    the words already heard, over the whole audio, it comes out right and without them.

    Over the whole window: over the short one (10 s after the audio), told the vocabulary, this
    1.2 s fragment of a -50 dBFS clip reads "Many people don't exist." (README, "Decoding only
    the audio"); the left context is what is tested here."""
    monkeypatch.setattr(small_engines.stt, "window_padding_secs", None)
    samples = decode_audio_file(CLEAN / "fleurs_en_004.wav").samples.astype(np.float32)
    audio = samples * (0.3 / np.abs(samples).max())  # the clip peaks at -50 dBFS
    cut = 16000  # 1.0 s, in the pause after "Many people don't think"
    head = small_engines.stt.transcribe(np.concatenate([audio[:cut], np.zeros(3200, np.float32)]))
    assert head.text.lower().startswith("many people don't think")
    rest = "about them as dinosaurs because they have feathers and can fly"
    alone = small_engines.stt.transcribe(audio[cut:]).text
    with_context = small_engines.stt.transcribe(audio, heard_before=head.text).text
    assert wer(rest, with_context) <= 0.1 < wer(rest, alone), (with_context, alone)


def _speech_frames(audio: np.ndarray) -> list:
    pcm = (audio * 32767).astype(np.int16).tobytes()
    chunk = 640  # 20 ms at 16 kHz
    return [
        InputAudioRawFrame(audio=pcm[i : i + chunk], sample_rate=16000, num_channels=1)
        for i in range(0, len(pcm), chunk)
    ]


async def test_the_stt_service_gives_a_piece_after_a_pushed_one_its_left_context(
    small_engines, monkeypatch
):
    """The caller pauses after "think" long enough for that piece to be pushed, then goes on:
    the second transcript is decoded with the first piece's audio and words before it (over the
    whole window, as in the test above)."""
    monkeypatch.setattr(small_engines.stt, "window_padding_secs", None)
    samples = decode_audio_file(CLEAN / "fleurs_en_004.wav").samples.astype(np.float32)
    audio = samples * (0.3 / np.abs(samples).max())
    cut = 16000
    stt = WhisperSTTService(small_engines.stt)
    frames = [
        VADUserStartedSpeakingFrame(),
        *_speech_frames(audio[:cut]),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(sleep=2.0),  # the first piece is decoded and pushed
        VADUserStartedSpeakingFrame(),
        *_speech_frames(audio[cut:]),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(sleep=3.0),
    ]
    down, _ = await run_test(stt, frames_to_send=frames)
    texts = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert len(texts) == 2, texts
    assert texts[0].lower().startswith("many people don't think")
    rest = "about them as dinosaurs because they have feathers and can fly"
    assert wer(rest, texts[1]) <= 0.1, texts


def _okay_i_got_it() -> np.ndarray:
    """A real phone caller's "okay I got it" (SpokenWOZ, 8 kHz), at a phone line's level."""
    samples = decode_audio_file(TELEPHONY / "spokenwoz_SNG0072_user_turn06.wav").samples
    return samples.astype(np.float32) * (0.3 / np.abs(samples).max())


@pytest.mark.parametrize("over_the_agent", [True, False])
async def test_a_real_callers_okay_over_the_agent_is_a_backchannel(small_engines, over_the_agent):
    """A real phone caller's "okay I got it" (SpokenWOZ, 8 kHz). Said while the agent talks, the
    recogniser pushes a backchannel (the agent goes on); said to a silent agent, it is the
    caller's turn."""
    audio = _okay_i_got_it()
    stt = WhisperSTTService(small_engines.stt, backchannels=True)
    frames = [
        *([BotStartedSpeakingFrame()] if over_the_agent else []),
        VADUserStartedSpeakingFrame(),
        *_speech_frames(audio),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(sleep=3.0),
    ]
    down, _ = await run_test(stt, frames_to_send=frames)
    said = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    acknowledged = [f.text for f in down if isinstance(f, UserBackchannelFrame)]
    if over_the_agent:
        assert not said and len(acknowledged) == 1, (said, acknowledged)
        assert normalise(acknowledged[0]) == "okay i got it"
    else:
        assert not acknowledged and len(said) == 1 and normalise(said[0]) == "okay i got it"


@pytest.mark.parametrize("said", ["okay i got it", "nothing"])
@pytest.mark.parametrize("resumed", [True, False])
async def test_speech_that_cut_the_agent_off_for_nothing_asks_it_to_resume(
    small_engines, said, resumed
):
    """The caller's speech over the agent lasted long enough to take the turn (the aggregator's
    UserStartedSpeakingFrame while the agent still spoke), then decoded to a backchannel or to
    no words: the call is asked to resume the agent, and when it does no turn is pushed."""
    asked: list[str] = []

    async def resume(result) -> bool:
        asked.append(result.text)
        return resumed

    audio = _okay_i_got_it() if said != "nothing" else np.zeros(16000 * 2, dtype=np.float32)
    stt = WhisperSTTService(small_engines.stt, backchannels=True, on_false_interruption=resume)
    frames = [
        BotStartedSpeakingFrame(),
        VADUserStartedSpeakingFrame(),
        *_speech_frames(audio[:8000]),
        UserStartedSpeakingFrame(),  # the caller's turn began: the agent is cut off
        *_speech_frames(audio[8000:]),
        VADUserStoppedSpeakingFrame(),
        SleepFrame(sleep=3.0),
    ]
    down, _ = await run_test(stt, frames_to_send=frames)
    pushed = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert [normalise(t) or "nothing" for t in asked] == [said]
    if resumed or said == "nothing":
        assert not pushed
    else:  # nothing to resume: the words are the caller's turn as before
        assert [normalise(t) for t in pushed] == [said]


def test_silence_and_noise_decode_to_nothing(small_engines):
    silence = np.zeros(16000 * 2, dtype=np.float32)
    assert small_engines.stt.transcribe(silence).text == ""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(16000 * 2) * 0.05).astype(np.float32)
    assert len(small_engines.stt.transcribe(noise).text.split()) <= 2


def test_whisper_reads_the_callers_words_after_the_agents_question():
    """The recognition prompt is what the agent just said (its last reply, its end when long);
    before the caller's first answer, the deployment's vocabulary."""
    vocabulary = "A caller tells the IT helpdesk about VPN and Outlook."
    greeting = [{"role": "assistant", "content": "Hi, how can I help you today?"}]
    assert recognition_prompt(greeting, vocabulary) == vocabulary
    offer = "I don't have a guide for that one. Would you like me to open a ticket?"
    messages = [
        *greeting,
        {"role": "user", "content": "My keyboard is broken."},
        {"role": "assistant", "content": "A" * 300 + " " + offer},
    ]
    prompt = recognition_prompt(messages, vocabulary)
    assert prompt.endswith(offer) and len(prompt) <= 200
    # the caller is speaking again before the agent answered: nothing new to read it against
    assert recognition_prompt([*messages, {"role": "user", "content": "Hello?"}], "") is None


@pytest.mark.parametrize(
    "heard, echo",
    [  # what Whisper wrote for espeak-ng callers spelling their name over an 8 kHz line
        ("Can you spell your name for me, letter by letter, letter by letter?", True),
        ("Lucy, spell your name for me, letter by letter. See you more radio.", True),
        ("Hi, Moon. Hi, Moon. And log. C-H-L-R-K-E.", False),
        ("Yes, please open a ticket for me.", False),  # the caller's own words, not an echo
    ],
)
def test_a_transcript_that_writes_the_prompt_back_is_recognised(heard, echo):
    """On audio it cannot make out, Whisper may write its prompt back as the caller's words;
    such a transcript is decoded again without the prompt."""
    asked = "Thanks. Could you spell your name for me, letter by letter?"
    assert echoes_prompt(heard, asked) is echo
    assert not echoes_prompt(heard, "Would you like me to open a ticket?")


async def test_the_input_filter_lays_a_quiet_steady_noise_floor_under_digital_silence():
    """A phone line's silence is exact zeros; the caller's audio leaves the transport with a
    -60 dBFS floor under it (the same for the same audio), so the VAD and Whisper hear a line."""

    async def through(filter_, pcm: np.ndarray) -> np.ndarray:
        await filter_.start(16000)
        data = pcm.astype("<i2").tobytes()
        out = b"".join([await filter_.filter(data[i : i + 640]) for i in range(0, len(data), 640)])
        return np.frombuffer(out, dtype="<i2").astype(np.float64)

    silence = np.zeros(16000, dtype=np.int16)
    floor = await through(AutoGainFilter(), silence)
    rms_db = 20 * np.log10(np.sqrt(np.mean(floor**2)) / 32768)
    assert -61.5 < rms_db < -58.5
    assert np.array_equal(floor, await through(AutoGainFilter(), silence))
    assert not (await through(AutoGainFilter(noise_floor_dbfs=None), silence)).any()


def test_the_confidence_of_a_turn_is_its_least_sure_transcript():
    heard = TurnConfidence()
    assert heard.take() == HeardTurn(None, None)
    heard.add(Transcript("yes", 1.0, 0.1, avg_logprob=-0.2))
    heard.add(Transcript("it still crushes", 1.0, 0.1, avg_logprob=-0.9))
    heard.add(Transcript("", 1.0, 0.1))  # nothing heard: no confidence to count
    assert heard.take() == HeardTurn(-0.9, None) and heard.take() == HeardTurn(None, None)
    heard.add(
        Transcript("I N C 1 2 3 4", 1.0, 0.1, avg_logprob=-0.1, shaped=Expected.TICKET_NUMBER)
    )
    assert heard.take() == HeardTurn(-0.1, Expected.TICKET_NUMBER)

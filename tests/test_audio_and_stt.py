"""Audio decoding at the edge and the real faster-whisper engine on real speech."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest

from tests.conftest import CLEAN, TELEPHONY, gold_transcripts
from voice_agent.audio import AudioDecodeError, decode_audio_file, write_wav
from voice_agent.stt import collapse_repetitions


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


def test_silence_and_noise_decode_to_nothing(small_engines):
    silence = np.zeros(16000 * 2, dtype=np.float32)
    assert small_engines.stt.transcribe(silence).text == ""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(16000 * 2) * 0.05).astype(np.float32)
    assert len(small_engines.stt.transcribe(noise).text.split()) <= 2

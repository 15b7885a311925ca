"""Piper: the sentences the agent said before are spoken from memory, within a bound."""

from __future__ import annotations

from voice_agent.speech.tts import PiperEngine

SAID = "May I have your name first?"


def test_a_sentence_said_before_is_not_synthesized_again(small_engines):
    tts = PiperEngine(small_engines.tts.model_path)
    first = tts.synthesize(SAID)
    assert len(first) > tts.sample_rate  # over half a second of 16-bit audio
    assert tts.synthesize(SAID) is first
    assert tts.synthesize("Could you spell it for me?") is not first


def test_the_memory_lets_the_least_recently_said_sentences_go_first(small_engines):
    sizer = PiperEngine(small_engines.tts.model_path)
    one_sentence = len(sizer.synthesize(SAID))
    tts = PiperEngine(small_engines.tts.model_path, cache_bytes=int(one_sentence * 2.5))
    name = tts.synthesize(SAID)
    spell = tts.synthesize("Could you spell it?")
    assert tts.synthesize(SAID) is name  # said again: now the most recent
    tts.synthesize("Thanks, that's everything I need.")  # over the bound: the oldest goes
    assert tts.synthesize(SAID) is name
    assert tts.synthesize("Could you spell it?") is not spell


def test_audio_longer_than_the_whole_memory_is_spoken_and_not_kept(small_engines):
    tts = PiperEngine(small_engines.tts.model_path, cache_bytes=1000)
    first = tts.synthesize(SAID)
    assert len(first) > 1000
    assert tts.synthesize(SAID) is not first

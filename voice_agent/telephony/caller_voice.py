"""A simulated caller's voice: Debian's espeak-ng, heard through a phone line.

Scripted calls must not be spoken with the agent's own Piper voice: Whisper hears that voice
almost perfectly (5 % WER on the dev scenarios against 40 % with espeak-ng), which would flatter
the speech recogniser. espeak-ng has many English voices and variants (``en-us+f3``,
``en-gb-scotland``, ``en-029+m7`` ...; ``espeak-ng --voices=en`` and ``--voices=variant`` list
them), so scripted callers sound like several different people, none of them the agent.

What the caller says then goes through what a phone network does to speech: a 300-3400 Hz band
(the G.712 telephone channel), 8 kHz sampling and G.711 mu-law, exactly the bytes Twilio's Media
Streams deliver.

    voice = CallerVoice("en-gb-scotland")
    samples = voice.say("My work phone was stolen from my bag.")   # int16 at 8 kHz, phone band
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from functools import lru_cache

import numpy as np

from voice_agent.speech.audio import resample_int16
from voice_agent.telephony.twilio_dialer import SAMPLE_RATE, mulaw_decode, mulaw_encode

PHONE_BAND_HZ = (300.0, 3400.0)
ESPEAK_WORDS_PER_MINUTE = 175  # espeak-ng's own default
LEVEL_DBFS = -18.0  # callers' speech level on a phone line (peaks well below clipping)


class CallerVoiceError(RuntimeError):
    """espeak-ng is missing, or it refused the voice or the text."""


def espeak_binary() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise CallerVoiceError(
            "espeak-ng is not installed: `apt-get install espeak-ng` (./run.sh test installs it)"
        )
    return found


@lru_cache(maxsize=1)
def _phone_band() -> np.ndarray:
    from scipy import (
        signal,
    )  # 1.8 s to import: paid by the first simulated call, not every CLI start

    return signal.butter(6, PHONE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")


def phone_line(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Speech as a phone line carries it: 8 kHz, 300-3400 Hz, a phone level, mu-law coded.

    Returns int16 samples at 8 kHz (mu-law encoded and decoded, so exactly what the far end
    receives)."""
    at_8k = resample_int16(np.asarray(samples, dtype=np.int16), sample_rate, SAMPLE_RATE)
    from scipy import signal

    x = signal.sosfilt(_phone_band(), at_8k.astype(np.float64) / 32768.0)
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    if rms > 0:
        x *= 10 ** (LEVEL_DBFS / 20) / rms
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
    return mulaw_decode(mulaw_encode(pcm))


class CallerVoice:
    """One espeak-ng voice (``en-us+f3``: the en-us voice, female variant 3)."""

    def __init__(self, voice: str, *, words_per_minute: int = ESPEAK_WORDS_PER_MINUTE) -> None:
        if not voice or any(c.isspace() for c in voice) or voice.startswith("-"):
            raise CallerVoiceError(f"not an espeak-ng voice name: {voice!r}")
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._binary = espeak_binary()

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """The text spoken by this voice: (int16 samples, sample rate), before the phone line."""
        if not text.strip():
            raise CallerVoiceError("nothing to say")
        try:
            done = subprocess.run(
                [self._binary, "-v", self.voice, "-s", str(self.words_per_minute), "--stdout"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CallerVoiceError(f"espeak-ng failed: {e}") from e
        if done.returncode != 0 or len(done.stdout) < 100:
            why = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
            raise CallerVoiceError(f"espeak-ng could not speak with voice {self.voice!r}: {why}")
        with wave.open(io.BytesIO(done.stdout)) as wav:
            rate = wav.getframerate()
            # espeak-ng writes a streaming header whose frame count is unknown: read the bytes
            data = wav.readframes(wav.getnframes() or 1 << 30)
        return np.frombuffer(data, dtype="<i2").copy(), rate

    def say(self, text: str) -> np.ndarray:
        """The text as the agent hears it over the phone: int16 samples at 8 kHz."""
        samples, rate = self.synthesize(text)
        return phone_line(samples, rate)

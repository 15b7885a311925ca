"""Automatic gain for quiet callers, applied to caller audio as it enters any transport.

Phones and browsers deliver speech anywhere from full scale to -40 dBFS. Silero VAD and
pipecat's volume gate miss very quiet speech entirely (the caller then hears "are you still
there?"), so caller audio is lifted toward a target speech level before anything listens to it.
The gain only ever boosts (up to ``max_gain``) and follows the loudest recent audio: it rises
slowly through long quiet stretches and drops at once when the caller gets louder.
"""

from __future__ import annotations

import math

import numpy as np
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import FilterControlFrame


class AutoGainFilter(BaseAudioFilter):
    def __init__(
        self,
        *,
        target_rms: float = 3000.0,  # about -20 dBFS, typical level of close-talk speech
        max_gain: float = 30.0,  # at most +30 dB
        release_secs: float = 4.0,  # how slowly the level estimate decays in quiet stretches
        smoothing_secs: float = 0.2,
    ) -> None:
        self._target = target_rms
        self._max_gain = max_gain
        self._release = release_secs
        self._smoothing = smoothing_secs
        self._sample_rate = 16000
        self._level = 0.0
        self._gain = 1.0

    @property
    def gain(self) -> float:
        return self._gain

    async def start(self, sample_rate: int) -> None:
        self._sample_rate = sample_rate

    async def stop(self) -> None:
        pass

    async def process_frame(self, frame: FilterControlFrame) -> None:
        pass

    async def filter(self, audio: bytes) -> bytes:
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float32)
        if samples.size == 0:
            return audio
        dt = samples.size / self._sample_rate
        rms = float(np.sqrt(np.mean(samples * samples)))
        if rms >= self._level:
            self._level = rms
        else:
            self._level = max(rms, self._level * math.exp(-dt / self._release))
        if self._level <= 0:
            return audio  # digital silence: nothing to lift
        desired = min(max(self._target / self._level, 1.0), self._max_gain)
        if desired < self._gain:
            self._gain = desired  # get quieter at once: never clip a caller who got louder
        else:
            self._gain += (desired - self._gain) * min(1.0, dt / self._smoothing)
        if self._gain <= 1.001:
            return audio
        return np.clip(samples * self._gain, -32768, 32767).astype("<i2").tobytes()

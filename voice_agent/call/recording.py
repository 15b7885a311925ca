"""Call audio recording (off by default): the caller on the left channel, the agent on the right.

Recording is a company's decision and usually needs the caller's consent, so it is off unless
``record_calls`` is set, and then the greeting carries ``recording_notice``. Audio is appended to
``data_dir/recordings/<call id>.wav`` a second at a time, so a crash loses at most a second; the
supervisor console plays it back to signed-in users only.
"""

from __future__ import annotations

import wave
from pathlib import Path

from loguru import logger
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

SAMPLE_RATE = 16000


def recording_path(data_dir: Path, call_id: str) -> Path:
    return Path(data_dir) / "recordings" / f"{call_id}.wav"


class CallRecording:
    """Owns the WAV file of one call and the pipecat processor that feeds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav: wave.Wave_write | None = None
        self.processor = AudioBufferProcessor(
            sample_rate=SAMPLE_RATE,
            num_channels=2,
            buffer_size=SAMPLE_RATE * 2 * 2,  # a second of 16-bit stereo
            auto_start_recording=True,
        )
        self.processor.add_event_handler("on_audio_data", self._on_audio)

    async def _on_audio(self, _processor, audio: bytes, sample_rate: int, channels: int) -> None:
        try:
            if self._wav is None:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._wav = wave.open(str(self.path), "wb")
                self._wav.setnchannels(channels)
                self._wav.setsampwidth(2)
                self._wav.setframerate(sample_rate)
            self._wav.writeframes(audio)
        except OSError as e:  # a full disk must not end the call
            logger.error(f"call recording stopped: {e}")

    def close(self) -> None:
        if self._wav is not None:
            try:
                self._wav.close()
            except OSError as e:
                logger.error(f"call recording could not be closed: {e}")
            self._wav = None

"""Audio at the edges: decode any file to 16-bit mono PCM, resample with soxr, write WAV.

Everything inside the pipeline is 16-bit little-endian mono PCM; this module is the one place
where other formats and sample rates are converted.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from voice_agent.errors import ErrorCode, VoiceAgentError


class AudioDecodeError(VoiceAgentError, ValueError):
    """A file that cannot be turned into speech audio (unreadable, empty, not audio)."""

    code = ErrorCode.AUDIO_UNREADABLE


@dataclass(frozen=True)
class PcmAudio:
    samples: np.ndarray  # int16, mono
    sample_rate: int

    @property
    def duration_secs(self) -> float:
        return len(self.samples) / self.sample_rate

    def to_bytes(self) -> bytes:
        return self.samples.astype("<i2", copy=False).tobytes()


def resample_int16(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.int16, copy=False)
    out = soxr.resample(samples.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
    return float_to_int16(out)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def int16_bytes_to_float(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0


def decode_audio_file(path: Path | str, sample_rate: int = 16000) -> PcmAudio:
    """Decode any format PyAV/ffmpeg reads, downmix to mono and resample to ``sample_rate``."""
    import av  # imported here: PyAV is heavy and only the edges need it

    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"audio file is empty: {path}")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"no audio stream in {path}")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate or None)
            src_rate = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    src_rate = out.sample_rate
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioDecodeError:
        raise
    except Exception as e:  # PyAV raises many error types for bad input
        raise AudioDecodeError(f"cannot decode audio file {path}: {e}") from e
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise AudioDecodeError(f"audio file has no samples: {path}")
    mono = np.concatenate(chunks).astype(np.float32)
    if src_rate != sample_rate:
        mono = soxr.resample(mono, src_rate, sample_rate, quality="HQ")
    return PcmAudio(float_to_int16(mono), sample_rate)


def write_wav(path: Path | str, pcm: bytes, sample_rate: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return path

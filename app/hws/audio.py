"""Incoming audio: validation, decoding and resampling to 16 kHz mono float32.

Whisper and webrtcvad both want 16 kHz mono; everything downstream of this
module sees only that. Resampling is streaming (soxr keeps filter state across
chunks), so chunk boundaries leave no clicks and no samples are lost.
"""

from __future__ import annotations

import enum

import numpy as np
import soxr

TARGET_RATE = 16_000
MIN_RATE = 8_000
MAX_RATE = 48_000


class Encoding(enum.Enum):
    LINEAR16 = "LINEAR16"
    MULAW = "MULAW"


class AudioFormatError(ValueError):
    """The client's audio or its description cannot be used; the message says what to fix."""


def _mulaw_table() -> np.ndarray:
    # ITU-T G.711 mu-law expansion of all 256 codes to linear 16-bit values.
    codes = ~np.arange(256, dtype=np.uint8)
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent.astype(np.int32)
    linear = magnitude - 0x84
    return np.where(sign != 0, -linear, linear).astype(np.float32) / 32768.0


_MULAW_TO_FLOAT = _mulaw_table()


def check_format(sample_rate_hz: int, channels: int) -> None:
    """The audio formats a stream may declare; AudioFormatError says what to fix."""
    if not MIN_RATE <= sample_rate_hz <= MAX_RATE:
        raise AudioFormatError(f"sample_rate_hz must be between {MIN_RATE} and {MAX_RATE}, got {sample_rate_hz}")
    if channels not in (1, 2):
        raise AudioFormatError(f"audio_channel_count must be 1 or 2, got {channels}")


class AudioDecoder:
    """Turns one stream's chunks into 16 kHz mono float32, validating each chunk."""

    def __init__(self, encoding: Encoding, sample_rate_hz: int, channels: int = 1) -> None:
        check_format(sample_rate_hz, channels)
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self._bytes_per_frame = (2 if encoding is Encoding.LINEAR16 else 1) * channels
        self._resampler = (
            None
            if sample_rate_hz == TARGET_RATE
            else soxr.ResampleStream(sample_rate_hz, TARGET_RATE, 1, dtype="float32", quality="HQ")
        )
        self.input_frames = 0  # per-channel samples received, at the input rate

    @property
    def input_seconds(self) -> float:
        return self.input_frames / self.sample_rate_hz

    def decode(self, chunk: bytes) -> np.ndarray:
        """Decode one chunk; returns 16 kHz mono float32 (possibly empty while the resampler fills)."""
        if not chunk:
            raise AudioFormatError("empty audio chunk: send at least one sample per message")
        if len(chunk) % self._bytes_per_frame:
            raise AudioFormatError(
                f"{self.encoding.value} audio with {self.channels} channel(s) needs a multiple of "
                f"{self._bytes_per_frame} bytes per chunk, got {len(chunk)}"
            )
        if self.encoding is Encoding.LINEAR16:
            samples = np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = _MULAW_TO_FLOAT[np.frombuffer(chunk, dtype=np.uint8)]
        if self.channels == 2:
            samples = samples.reshape(-1, 2).mean(axis=1, dtype=np.float32)
        self.input_frames += samples.shape[0]
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        """The resampler's tail at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """16 kHz float32 to the int16 bytes webrtcvad reads."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class RecentAudio:
    """The last `seconds` of a 16 kHz stream, addressed by stream sample position (a ring buffer)."""

    def __init__(self, seconds: float, start: int = 0) -> None:
        self._buffer = np.zeros(int(seconds * TARGET_RATE), dtype=np.float32)
        self.end = start  # stream position one past the newest sample

    def append(self, samples: np.ndarray) -> None:
        size = self._buffer.shape[0]
        kept = samples[-size:]
        first = (self.end + samples.shape[0] - kept.shape[0]) % size
        head = min(kept.shape[0], size - first)
        self._buffer[first : first + head] = kept[:head]
        self._buffer[: kept.shape[0] - head] = kept[head:]
        self.end += samples.shape[0]

    def get(self, start: int, end: int) -> np.ndarray | None:
        """A copy of samples [start, end), or None when they are no longer (or not yet) held."""
        size = self._buffer.shape[0]
        if start < self.end - size or end > self.end or start > end:
            return None
        indices = np.arange(start, end) % size
        return self._buffer[indices]

"""The evaluation audio (EVAL_DIR): the clips' manifest, the real recordings' manifest, clips decoded to
float32 or LINEAR16, recordings joined with pauses into one stream."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

from tests.support.paths import EVAL_DIR, REAL_DIR

RATE = 16_000
PAUSE_MARGIN_S = 0.3  # a word centred this far into a pause between joined recordings was invented


@cache
def manifest() -> dict[str, str]:
    """The eval clips: file -> reference transcript."""
    with open(EVAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["reference"] for row in csv.DictReader(handle, delimiter="\t")}


@cache
def real_manifest(limit: int = 0) -> list[dict[str, str]]:
    """The recorded speech in real/ in manifest order (file, duration_s, kind, reference, ...);
    with `limit`, only the `limit` shortest recordings (for quick runs)."""
    with open(REAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if limit:
        shortest = {row["file"] for row in sorted(rows, key=lambda row: float(row["duration_s"]))[:limit]}
        rows = [row for row in rows if row["file"] in shortest]
    return rows


@cache
def clip_audio(name: str, rate: int = RATE) -> np.ndarray:
    """An eval clip (a name under EVAL_DIR, or any path) decoded by PyAV to mono float32 at `rate`."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(EVAL_DIR / name), sampling_rate=rate)


def real_audio(name: str) -> np.ndarray:
    """A recording of real/ as 16 kHz float32."""
    return clip_audio(str(REAL_DIR / name))


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples to LINEAR16 bytes (clipped to [-1, 1])."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """LINEAR16 bytes to float32 samples."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


@cache
def clip_pcm16(name: str, rate: int = RATE) -> bytes:
    """An eval clip decoded by PyAV to mono LINEAR16 at `rate`."""
    return to_pcm16(clip_audio(name, rate))


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass(frozen=True)
class JoinedSpeech:
    """Recordings joined with pauses into one stream, the way a captioning session sounds."""

    audio: np.ndarray  # float32, 16 kHz
    spans: list[tuple[float, float]]  # each recording's start and end in the stream, seconds
    references: list[str]

    @property
    def reference(self) -> str:
        return " ".join(self.references)

    def spoken(self, time_s: float) -> bool:
        """Whether a time of the stream is in a recording (or within PAUSE_MARGIN_S of one)."""
        return any(start - PAUSE_MARGIN_S <= time_s <= end + PAUSE_MARGIN_S for start, end in self.spans)


def join_recordings(names: Iterable[str], pause_s: float = 1.5) -> JoinedSpeech:
    """Recordings of real/, each followed by `pause_s` of digital silence."""
    refs = {row["file"]: row["reference"] for row in real_manifest()}
    pause = np.zeros(round(pause_s * RATE), dtype=np.float32)
    parts, spans, references, position = [], [], [], 0
    for name in names:
        audio = real_audio(name)
        spans.append((position / RATE, (position + audio.shape[0]) / RATE))
        references.append(refs[name])
        parts += [audio, pause]
        position += audio.shape[0] + pause.shape[0]
    return JoinedSpeech(np.concatenate(parts), spans, references)

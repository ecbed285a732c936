"""Client library: audio sources and a streaming call to the Transcriber service.

Sources yield LINEAR16 chunks at a known rate: a file (any format PyAV
decodes, through faster-whisper's decoder, resampled to 16 kHz mono), raw PCM
from a binary stream such as stdin, or the microphone through SoX `rec`.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import grpc
import numpy as np

from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from app.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

DEFAULT_CHUNK_MS = 100


@dataclasses.dataclass(frozen=True)
class AudioSource:
    chunks: Iterable[bytes]
    sample_rate_hz: int
    encoding: int = pb.LINEAR16
    channels: int = 1


def _paced(chunks: Iterable[bytes], seconds_per_chunk: Iterable[float]) -> Iterator[bytes]:
    """Release chunks no faster than real time (a person speaking)."""
    start = time.monotonic()
    elapsed = 0.0
    for chunk, duration in zip(chunks, seconds_per_chunk, strict=False):
        delay = start + elapsed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield chunk
        elapsed += duration


def file_source(path: str | Path, realtime: bool = True, chunk_ms: int = DEFAULT_CHUNK_MS) -> AudioSource:
    """Any file PyAV decodes, as 16 kHz mono LINEAR16 chunks."""
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(path), sampling_rate=16_000)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    step = 16_000 * chunk_ms // 1000 * 2
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    if realtime:
        return AudioSource(_paced(chunks, (len(c) / 32_000 for c in chunks)), 16_000)
    return AudioSource(chunks, 16_000)


def raw_source(
    stream: BinaryIO,
    sample_rate_hz: int,
    encoding: int = pb.LINEAR16,
    channels: int = 1,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> AudioSource:
    """Raw samples from a byte stream (stdin, a pipe), read in whole-frame chunks."""
    frame_bytes = (2 if encoding != pb.MULAW else 1) * channels
    size = max(frame_bytes, sample_rate_hz * chunk_ms // 1000 * frame_bytes)

    def chunks() -> Iterator[bytes]:
        carry = b""
        while data := stream.read(size):
            data = carry + data
            whole = len(data) - len(data) % frame_bytes
            carry = data[whole:]
            if whole:
                yield data[:whole]

    return AudioSource(chunks(), sample_rate_hz, encoding, channels)


def microphone_source(
    sample_rate_hz: int = 16_000, chunk_ms: int = DEFAULT_CHUNK_MS
) -> tuple[AudioSource, subprocess.Popen[bytes]]:
    """The default microphone through SoX `rec` (install the `sox` package)."""
    if shutil.which("rec") is None:
        raise RuntimeError(
            "the microphone needs SoX's `rec` command: install sox (apt-get install sox, brew install sox)"
        )
    command = ["rec", "-q", "-r", str(sample_rate_hz), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    return raw_source(process.stdout, sample_rate_hz, chunk_ms=chunk_ms), process


def make_channel(address: str, tls: bool = False, ca_cert: str | None = None) -> grpc.Channel:
    options = [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    if not tls and ca_cert is None:
        return grpc.insecure_channel(address, options=options)
    root = Path(ca_cert).read_bytes() if ca_cert else None
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root), options=options)


def streaming_requests(source: AudioSource, config: pb.StreamingConfig) -> Iterator[pb.StreamingTranscribeRequest]:
    config.recognition.sample_rate_hz = source.sample_rate_hz
    config.recognition.encoding = source.encoding  # type: ignore[assignment]
    config.recognition.audio_channel_count = source.channels
    yield pb.StreamingTranscribeRequest(config=config)
    for chunk in source.chunks:
        yield pb.StreamingTranscribeRequest(audio=chunk)


def stream(
    channel: grpc.Channel,
    source: AudioSource,
    config: pb.StreamingConfig,
    timeout_s: float | None = None,
    metadata: list[tuple[str, str]] | None = None,
) -> Iterator[pb.StreamingTranscribeResponse]:
    """Stream the source; yields the server's responses as they arrive."""
    stub = pb_grpc.TranscriberStub(channel)
    yield from stub.StreamingTranscribe(streaming_requests(source, config), timeout=timeout_s, metadata=metadata)

"""Client library: audio sources and a streaming call to the Transcriber service.

Sources yield LINEAR16 chunks at a known rate: a file (any format PyAV
decodes, through faster-whisper's decoder, resampled to 16 kHz mono), raw PCM
from a binary stream such as stdin, or the microphone through SoX `rec`.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import grpc
import numpy as np

from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from app.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from app.tls import channel_credentials

DEFAULT_CHUNK_MS = 100


@dataclasses.dataclass(frozen=True)
class AudioSource:
    chunks: Iterable[bytes]
    sample_rate_hz: int
    encoding: int = pb.LINEAR16
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        return frame_bytes(self.encoding, self.channels)

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate_hz * self.frame_bytes


def frame_bytes(encoding: int, channels: int) -> int:
    """Bytes of one sample across all channels: 1 per channel for MULAW, 2 for LINEAR16."""
    return (1 if encoding == pb.MULAW else 2) * channels


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
    frame = frame_bytes(encoding, channels)
    size = max(frame, sample_rate_hz * chunk_ms // 1000 * frame)

    def chunks() -> Iterator[bytes]:
        carry = b""
        while data := stream.read(size):
            data = carry + data
            whole = len(data) - len(data) % frame
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
    return grpc.secure_channel(address, channel_credentials(ca_cert), options=options)


RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _pushback_s(exc: grpc.RpcError) -> float:
    """The server's retry hint (gRPC's grpc-retry-pushback-ms trailer), 0 when it gave none."""
    trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailers or ():
        if key == "grpc-retry-pushback-ms" and str(value).isdigit():
            return int(value) / 1000
    return 0.0


class _SentAudio:
    """The audio sent since the last final offset: what a resumed stream must send again."""

    def __init__(self, bytes_per_second: int, frame_bytes: int) -> None:
        self.bytes_per_second = bytes_per_second
        self.frame_bytes = frame_bytes
        self.offset_s = 0.0  # stream time of kept[0]
        self.kept = bytearray()
        self.lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self.lock:
            self.kept.extend(chunk)

    def finalised(self, final_offset_s: float) -> None:
        with self.lock:
            drop = int((final_offset_s - self.offset_s) * self.bytes_per_second)
            drop -= drop % self.frame_bytes
            if drop > 0:
                del self.kept[:drop]
                self.offset_s += drop / self.bytes_per_second

    def snapshot(self) -> tuple[float, bytes]:
        with self.lock:
            return self.offset_s, bytes(self.kept)


def stream_resumable(
    channel_factory: Callable[[int], grpc.Channel],
    source: AudioSource,
    config: pb.StreamingConfig,
    attempts: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float | None = None,
    metadata: list[tuple[str, str]] | None = None,
    on_retry: Callable[[grpc.RpcError, int, float], None] | None = None,
) -> Iterator[pb.StreamingTranscribeResponse]:
    """Stream the source, resuming after a dropped connection or a draining server.

    The client keeps the audio after the last `final_offset_s` the server
    reported; on UNAVAILABLE or RESOURCE_EXHAUSTED it reconnects (attempt n on
    `channel_factory(n)`, e.g. the next of several addresses) after an
    exponential backoff, and sends that audio again with `audio_offset_s`, so
    no audio and no transcript is lost and nothing is transcribed twice.
    """
    sent = _SentAudio(source.bytes_per_second, source.frame_bytes)
    chunks = iter(source.chunks)
    step = max(source.frame_bytes, source.bytes_per_second // 10 // source.frame_bytes * source.frame_bytes)
    config.recognition.sample_rate_hz = source.sample_rate_hz
    config.recognition.encoding = source.encoding  # type: ignore[assignment]
    config.recognition.audio_channel_count = source.channels

    source_lock = threading.Lock()  # one reader of the source at a time, across attempts

    def requests(live: threading.Event) -> Iterator[pb.StreamingTranscribeRequest]:
        # gRPC reads each attempt's requests on its own thread, which may still be inside the source
        # when the attempt fails; the snapshot under the lock includes whatever that read returned.
        with source_lock:
            offset_s, replay = sent.snapshot()
        resumed = pb.StreamingConfig()
        resumed.CopyFrom(config)
        resumed.audio_offset_s = offset_s
        yield pb.StreamingTranscribeRequest(config=resumed)
        for start in range(0, len(replay), step):
            yield pb.StreamingTranscribeRequest(audio=replay[start : start + step])
        while True:
            with source_lock:
                chunk = next(chunks, None) if live.is_set() else None
                if chunk is None:
                    return
                sent.add(chunk)
            yield pb.StreamingTranscribeRequest(audio=chunk)

    for attempt in range(attempts + 1):
        live = threading.Event()
        live.set()
        channel = channel_factory(attempt)
        try:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
                requests(live), timeout=timeout_s, metadata=metadata
            )
            for response in call:
                sent.finalised(response.final_offset_s)
                yield response
            return
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or attempt == attempts:
                raise
            delay = max(backoff_s * 2**attempt, _pushback_s(exc))
            if on_retry is not None:
                on_retry(exc, attempt + 1, delay)
            time.sleep(delay)
        finally:
            live.clear()
            channel.close()

"""Audio sources: what a stream sends, as LINEAR16 chunks at a known rate.

A file (any format PyAV decodes, decoded block by block and resampled to 16 kHz mono through
PyAV's public API, so memory stays flat however long the file), raw PCM from a binary stream
such as stdin, or the microphone through SoX `rec`. `Feed` reads a source on its own thread, so
a stream can be stopped at once even while the source blocks. A source may also yield a
`StreamingConfig` between its chunks: `stream_resumable` sends it as a settings update at that
point of the audio.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from hws.client.errors import ClientError
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

DEFAULT_CHUNK_MS = 100


class SourceError(ClientError, ValueError):
    """An input that cannot be streamed (not audio, no audio stream, no `rec`); the message says why."""


# What a source yields: audio, or new settings for the stream from that point of the audio on.
Chunk = bytes | pb.StreamingConfig


@dataclasses.dataclass(frozen=True)
class AudioSource:
    chunks: Iterable[Chunk]
    sample_rate_hz: int
    encoding: int = pb.LINEAR16
    channels: int = 1
    duration_s: float | None = None  # when the container says

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
    """Any file PyAV decodes, as 16 kHz mono LINEAR16 chunks, decoded as they are sent.

    Raises SourceError when the file cannot be opened as audio; an error later in the file is
    raised from the chunks' iterator.
    """
    import av

    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path} as audio: {getattr(exc, 'strerror', None) or exc}") from None
    if not container.streams.audio:
        container.close()
        raise SourceError(f"{path} has no audio stream")
    duration_s = container.duration / av.time_base if container.duration else None
    step = 16_000 * chunk_ms // 1000 * 2
    chunks = _decoded(container, step)
    if realtime:
        chunks = _paced(chunks, itertools.repeat(chunk_ms / 1000))
    return AudioSource(chunks, 16_000, duration_s=duration_s)


def _decoded(container: Any, step: int) -> Iterator[bytes]:
    """16 kHz mono s16 in chunks of `step` bytes; frames FFmpeg cannot decode are skipped, as players do."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
    pending = bytearray()
    with container:
        for frame in itertools.chain(_valid_frames(container.decode(audio=0)), [None]):  # None: flush
            for resampled in resampler.resample(frame):
                pending += resampled.to_ndarray().astype("<i2", copy=False).tobytes()
                while len(pending) >= step:
                    yield bytes(pending[:step])
                    del pending[:step]
    if pending:
        yield bytes(pending)


def _valid_frames(frames: Iterator[Any]) -> Iterator[Any]:
    import av

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def raw_source(
    stream: IO[bytes],
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


@dataclasses.dataclass(frozen=True)
class Recorder:
    """SoX `rec` recording the microphone; its stderr is kept in a file for `failure`."""

    process: subprocess.Popen[bytes]
    errors: IO[bytes]

    def stop(self) -> None:
        self.process.terminate()

    def failure(self) -> str | None:
        """Why `rec` failed (the last line it wrote), or None when it did not fail."""
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None
        if code in (0, -signal.SIGTERM):  # done, or stopped by the client
            return None
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"rec exited with status {code}"


def check_recorder() -> None:
    if shutil.which("rec") is None:
        raise SourceError("--mic needs SoX's rec command: install sox (apt-get install sox, brew install sox)")


def microphone_source(sample_rate_hz: int = 16_000, chunk_ms: int = DEFAULT_CHUNK_MS) -> tuple[AudioSource, Recorder]:
    """The default microphone through SoX `rec` (install the `sox` package).

    `rec` runs in its own session, so a Ctrl-C on the terminal reaches only the client, which stops it.
    """
    check_recorder()
    command = ["rec", "-q", "-r", str(sample_rate_hz), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-"]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the recorder)
    # Unbuffered: a read blocked in the source's thread holds no buffer lock that exiting would wait for.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, bufsize=0, start_new_session=True)
    assert process.stdout is not None
    return raw_source(process.stdout, sample_rate_hz, chunk_ms=chunk_ms), Recorder(process, errors)


class Feed:
    """A source read on its own thread into a short queue, so that the stream can stop at once.

    Iterating it yields the source's chunks until the source ends, `stop()` is called (even while
    the source blocks, as a stalled pipe does), or reading the source fails; the error is then
    kept in `error` for the caller instead of surfacing inside gRPC's request thread.
    """

    def __init__(self, chunks: Iterable[Chunk], depth: int = 10) -> None:
        self._queue: queue.Queue[Chunk | None] = queue.Queue(depth)
        self._stopped = threading.Event()
        self.error: Exception | None = None
        self.audio_bytes = 0  # read from the source so far: none at the end means the input was empty
        threading.Thread(target=self._read, args=(chunks,), name="hws-source", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _put(self, item: Chunk | None) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read(self, chunks: Iterable[Chunk]) -> None:
        try:
            for chunk in chunks:
                self._put(chunk)
                if self._stopped.is_set():
                    return
        except Exception as exc:  # anything the source raises ends the stream; the caller reports it
            self.error = exc
        finally:
            self._put(None)

    def __iter__(self) -> Iterator[Chunk]:
        while not self._stopped.is_set():
            try:
                chunk = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if chunk is None:
                return
            if isinstance(chunk, bytes):
                self.audio_bytes += len(chunk)
            yield chunk

"""The streaming call that resumes: `stream_resumable` keeps the audio not yet final and sends it again.

A stream ended by the server with a retryable status (its age limit, a drain, overload, a proxy's
reset) continues on a new call from the last final_offset_s, with the settings in force there; the
caller sees one stream of results, each utterance once.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from hws.client.sources import AudioSource
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

DEFAULT_BACKOFF_S = 0.5  # the first wait after a connection that made no progress (its ceiling)
DEFAULT_MAX_BACKOFF_S = 10.0  # the most the backoff's ceiling grows to


RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)


def is_renewal(exc: grpc.RpcError) -> bool:
    """Whether the server ended the stream at its age limit (`--max-stream-age-s`): routine, not a failure.

    The status is UNAVAILABLE like a drain's, so that any client resumes; only its message tells them apart.
    """
    return exc.code() == grpc.StatusCode.UNAVAILABLE and "maximum age" in (exc.details() or "")


def _pushback_s(exc: grpc.RpcError) -> float:
    """The server's retry hint (gRPC's grpc-retry-pushback-ms trailer), 0 when it gave none."""
    # A call's error is also its grpc.Call; typed as an object, since the stubs' two classes cannot be combined.
    call: object = exc
    trailers = call.trailing_metadata() if isinstance(call, grpc.Call) else None
    for key, value in trailers or ():
        if key == "grpc-retry-pushback-ms" and str(value).isdigit():
            return int(value) / 1000
    return 0.0


def resume_delay(
    failures: int,
    backoff_s: float = DEFAULT_BACKOFF_S,
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
    pushback_s: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before reconnecting after `failures` connections in a row that made no progress.

    With none (the last connection moved the final offset on), the server's pushback plus up to
    `backoff_s` at random: a drain ends every stream of a server at once, and its clients should not
    all land on the next server in the same instant. Otherwise a capped exponential backoff with
    "equal jitter": the ceiling is `backoff_s` doubled for each failure after the first, at most
    `max_backoff_s`; the wait is half the ceiling, or the server's pushback where that is longer (it
    is a floor), plus a random part of up to the other half. Clients that failed together (a server
    drained under them, a load balancer with no server yet) so spread out instead of reconnecting at
    the same instant, every time.
    """
    if failures <= 0:
        return pushback_s + (rng or random).uniform(0.0, backoff_s)
    ceiling = min(max_backoff_s, backoff_s * 2 ** min(failures - 1, 64))
    return max(pushback_s, ceiling / 2) + (rng or random).uniform(0.0, ceiling / 2)


@dataclasses.dataclass(eq=False)
class _Update:
    """A settings update sent on the stream, where it sits in the audio, and the server's answer to it."""

    config: pb.StreamingConfig
    position: int  # bytes of audio sent before it, from the start of the logical stream
    outcome: int = pb.ConfigUpdate.OUTCOME_UNSPECIFIED  # until acknowledged


class _SentAudio:
    """What a resumed stream must send again: the audio after the last final offset, and the settings.

    The settings in force where that audio starts go in the new stream's first config; the updates sent
    within it are sent again at their place in it, so that every utterance is transcribed under the
    settings it had on the first connection.
    """

    def __init__(self, bytes_per_second: int, frame_bytes: int, config: pb.StreamingConfig) -> None:
        self.bytes_per_second = bytes_per_second
        self.frame_bytes = frame_bytes
        self.offset_s = 0.0  # stream time of kept[0]
        self.dropped = 0  # bytes sent before kept[0]
        self.kept = bytearray()
        self.config = config  # the settings in force at kept[0]
        self.updates: list[_Update] = []  # not yet folded into `config`, in the order sent
        self.lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self.lock:
            self.kept.extend(chunk)

    def update(self, config: pb.StreamingConfig) -> _Update:
        with self.lock:
            update = _Update(config, self.dropped + len(self.kept))
            self.updates.append(update)
            return update

    def acknowledged(self, update: _Update, outcome: int) -> bool:
        """Record the server's answer; False when the update already had this one (it was sent again)."""
        with self.lock:
            new = update.outcome != outcome
            update.outcome = outcome
            return new

    def finalised(self, final_offset_s: float) -> None:
        with self.lock:
            drop = int((final_offset_s - self.offset_s) * self.bytes_per_second)
            drop -= drop % self.frame_bytes
            if drop > 0:
                del self.kept[:drop]
                self.offset_s += drop / self.bytes_per_second
                self.dropped += drop
            # The server answers an update before any response whose final offset passes it, so updates
            # behind the final offset have their answer: the applied ones are now the settings in force.
            while self.updates and self.updates[0].position <= self.dropped and self.updates[0].outcome:
                update = self.updates.pop(0)
                if update.outcome == pb.ConfigUpdate.APPLIED:
                    self.config = update.config

    def snapshot(self) -> tuple[float, bytes, pb.StreamingConfig, list[tuple[int, _Update]]]:
        """Stream time and bytes of the kept audio, the settings at its start, and the updates to send
        again with their place in it (refused ones are left out: they changed nothing)."""
        with self.lock:
            again = [
                (max(0, update.position - self.dropped), update)
                for update in self.updates
                if update.outcome != pb.ConfigUpdate.REFUSED
            ]
            return self.offset_s, bytes(self.kept), self.config, again


def _settings(config: pb.StreamingConfig, source: AudioSource) -> pb.StreamingConfig:
    """A config as the stream sends it: the source's audio format filled in, no resume offset."""
    settings = pb.StreamingConfig()
    settings.CopyFrom(config)
    settings.recognition.sample_rate_hz = source.sample_rate_hz
    settings.recognition.encoding = source.encoding  # type: ignore[assignment]
    settings.recognition.audio_channel_count = source.channels
    settings.audio_offset_s = 0.0
    return settings


def stream_resumable(
    channel_factory: Callable[[int], grpc.Channel],
    source: AudioSource,
    config: pb.StreamingConfig,
    attempts: int = 5,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: float | None = None,
    metadata: list[tuple[str, str]] | None = None,
    on_retry: Callable[[grpc.RpcError, int, float], None] | None = None,
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
    rng: random.Random | None = None,
) -> Iterator[pb.StreamingTranscribeResponse]:
    """Stream the source, resuming after a dropped connection, a draining server or the stream age limit.

    A `StreamingConfig` among the source's chunks is sent as a settings update at that point of the
    audio (the server applies it from the next utterance on and answers with a `config_update`
    response, which is yielded like the others); the source's audio format is filled in for it.

    The client keeps the audio after the last `final_offset_s` the server
    reported; on UNAVAILABLE, RESOURCE_EXHAUSTED or CANCELLED it reconnects (connection n on
    `channel_factory(n)`, e.g. the next of several addresses, or the same load
    balancer, which picks a healthy server) and sends that audio again with
    `audio_offset_s`, so no audio and no transcript is lost and nothing is
    transcribed twice. A connection that moved `final_offset_s` on is followed
    at once (or after the server's `grpc-retry-pushback-ms`); failures in a row
    back off exponentially from `backoff_s`, capped at `max_backoff_s`, with
    jitter and never sooner than the server's pushback (`resume_delay`; `rng`
    draws the jitter, the `random` module's by default), and after `attempts`
    of them the error is raised (0: never reconnect). So a long stream that a
    server ends at its maximum age every few minutes goes on for as long as the
    audio does.

    A resumed stream keeps the settings: its first config is the one in force where the audio sent
    again starts (the latest update the server applied before it), and updates sent within that audio
    are sent again at their place; the answer to an update is yielded once, not again when it is resent.
    """
    sent = _SentAudio(source.bytes_per_second, source.frame_bytes, _settings(config, source))
    chunks = iter(source.chunks)
    step = max(source.frame_bytes, source.bytes_per_second // 10 // source.frame_bytes * source.frame_bytes)

    source_lock = threading.Lock()  # one reader of the source at a time, across attempts

    def audio(data: bytes) -> Iterator[pb.StreamingTranscribeRequest]:
        for start in range(0, len(data), step):
            yield pb.StreamingTranscribeRequest(audio=data[start : start + step])

    def requests(live: threading.Event, updates_sent: list[_Update]) -> Iterator[pb.StreamingTranscribeRequest]:
        # gRPC reads each attempt's requests on its own thread, which may still be inside the source
        # when the attempt fails; the snapshot under the lock includes whatever that read returned.
        with source_lock:
            offset_s, replay, settings, again = sent.snapshot()
        resumed = pb.StreamingConfig()
        resumed.CopyFrom(settings)
        resumed.audio_offset_s = offset_s
        yield pb.StreamingTranscribeRequest(config=resumed)
        done = 0
        for position, update in again:
            yield from audio(replay[done:position])
            done = max(done, position)
            updates_sent.append(update)
            yield pb.StreamingTranscribeRequest(config=update.config)
        yield from audio(replay[done:])
        while True:
            with source_lock:
                chunk = next(chunks, None) if live.is_set() else None
                if chunk is None:
                    return
                if isinstance(chunk, pb.StreamingConfig):
                    update = sent.update(_settings(chunk, source))
                    updates_sent.append(update)  # before it is sent: its answer cannot come first
                    request = pb.StreamingTranscribeRequest(config=update.config)
                else:
                    sent.add(chunk)
                    request = pb.StreamingTranscribeRequest(audio=chunk)
            yield request

    failures = 0  # connections in a row that ended without moving the final offset on
    for connection in itertools.count():
        live = threading.Event()
        live.set()
        channel = channel_factory(connection)
        start_offset_s = sent.offset_s
        updates_sent: list[_Update] = []  # on this connection, in order: the server answers each once, in order
        answered = 0
        try:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
                requests(live, updates_sent), timeout=timeout_s, metadata=metadata
            )
            for response in call:
                fresh = True
                if response.WhichOneof("response") == "config_update" and answered < len(updates_sent):
                    fresh = sent.acknowledged(updates_sent[answered], response.config_update.outcome)
                    answered += 1
                sent.finalised(response.final_offset_s)
                if fresh:
                    yield response
            return
        except grpc.RpcError as exc:
            failures = 0 if sent.offset_s > start_offset_s else failures + 1
            if exc.code() not in RETRYABLE or attempts == 0 or failures > attempts:
                raise
            delay = resume_delay(failures, backoff_s, max_backoff_s, _pushback_s(exc), rng)
            if on_retry is not None:
                on_retry(exc, connection + 1, delay)
            time.sleep(delay)
        finally:
            live.clear()
            channel.close()

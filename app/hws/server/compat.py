"""The original AudioTranscriberService and HealthCheckService, as a thin adapter.

Existing clients of the original hosted Whisper streaming service work
unchanged: raw 16 kHz mono LINEAR16 in `audio_data`, one `transcription` per
utterance out, finals only. Underneath it is the same session and engine as
the main interface, with its default VAD settings. `start_time` and
`end_time` keep the original's meaning: wall-clock Unix seconds of when the
utterance's speech arrived and of when its result was sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from hws.gen.compat import audio_transcriber_pb2 as compat_pb
from hws.gen.compat import audio_transcriber_pb2_grpc as compat_grpc
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.server.readiness import ServingState
from hws.server.rpc import first_request, parsed, rpc_scope
from hws.server.sessions import SessionFactory, run_session
from hws.stream.intake import Arrivals
from hws.stream.outputs import KEEP_ALIVE, KeepAlive, Result

SAMPLE_RATE = 16_000
ORIGINAL_OK_STATUS = 12  # what the original Check always answered


class ArrivalClock:
    """The wall-clock time at which each stretch of the stream's audio arrived (the session's Arrivals)."""

    def __init__(self) -> None:
        self._arrivals = Arrivals()
        self._samples = 0

    def record(self, samples: int) -> None:
        self._samples += samples
        self._arrivals.add(self._samples, time.time())

    def wall_time(self, stream_s: float) -> float:
        return self._arrivals.at(round(stream_s * SAMPLE_RATE))

    def forget_before(self, stream_s: float) -> None:
        """Drop what no later result can ask for (it starts at or after `stream_s`), so memory stays flat."""
        self._arrivals.forget(round(stream_s * SAMPLE_RATE))


async def _pcm_chunks(
    first: compat_pb.AudioRequest, requests: AsyncIterator[compat_pb.AudioRequest], clock: ArrivalClock
) -> AsyncIterator[bytes | KeepAlive]:
    """Whole samples from a byte stream: the original protocol has no framing, so a sample may span messages.

    A message with no whole sample (an empty keep-alive) becomes a KeepAlive: the client is there, so it
    counts against the idle timeout, though not as audio (--min-audio-pace).
    """
    carry = b""
    request: compat_pb.AudioRequest | None = first
    while request is not None:
        data = carry + request.audio_data
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        if whole:
            clock.record(whole // 2)
            yield data[:whole]
        else:
            yield KEEP_ALIVE
        request = await anext(requests, None)


class AudioTranscriberCompat(compat_grpc.AudioTranscriberServiceServicer):
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def TranscribeAudio(
        self, request_iterator: AsyncIterator[compat_pb.AudioRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[compat_pb.TranscriptionResponse]:
        async with rpc_scope(context) as stream_id:
            self._sessions.state.check_ready()
            requests = parsed(request_iterator)
            first = await first_request(requests, self._sessions.settings.config_timeout_s, "audio")
            if first is None:
                return  # the call ended before its first message: there is nothing to transcribe
            config = pb.RecognitionConfig(sample_rate_hz=SAMPLE_RATE)
            # No age limit, unlike the main interface: the original protocol has no resume offset, so a
            # stream ended at an age would lose its client's place. A stream still cannot hold its slot for
            # ever: the idle timeout and --min-audio-pace end one that sends nothing or trickles.
            with self._sessions.open(stream_id, config, peer=context.peer()) as session:
                clock = ArrivalClock()
                chunks = _pcm_chunks(first, requests, clock)
                idle_timeout_s = self._sessions.settings.stream_idle_timeout_s
                async for output in run_session(session, chunks, idle_timeout_s, self._sessions.state.drain):
                    if isinstance(output, Result) and output.is_final and output.text:
                        yield compat_pb.TranscriptionResponse(
                            transcription=output.text, start_time=clock.wall_time(output.start_s), end_time=time.time()
                        )
                    clock.forget_before(output.final_offset_s)


class HealthCheckCompat(compat_grpc.HealthCheckServiceServicer):
    """The original health check, made truthful: OK (12) only while the server really serves."""

    def __init__(self, state: ServingState) -> None:
        self._state = state

    async def Check(
        self, request: compat_pb.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> compat_pb.HealthCheckResponse:
        reason = self._state.not_ready_reason
        if reason is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason)
        return compat_pb.HealthCheckResponse(status_code=ORIGINAL_OK_STATUS)


def add_compat_services(server: grpc.aio.Server, sessions: SessionFactory) -> list[str]:
    """Register both services; returns their full names for reflection."""
    compat_grpc.add_AudioTranscriberServiceServicer_to_server(AudioTranscriberCompat(sessions), server)
    compat_grpc.add_HealthCheckServiceServicer_to_server(HealthCheckCompat(sessions.state), server)
    services = compat_pb.DESCRIPTOR.services_by_name
    return [services["AudioTranscriberService"].full_name, services["HealthCheckService"].full_name]

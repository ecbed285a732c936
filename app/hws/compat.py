"""The original AudioTranscriberService and HealthCheckService, as a thin adapter.

Existing clients of the original hosted Whisper streaming service work
unchanged: raw 16 kHz mono LINEAR16 in `audio_data`, one `transcription` per
utterance out, finals only. Underneath it is the same session and engine as
the main interface, with its default VAD settings. `start_time` and
`end_time` keep the original's meaning: wall-clock Unix seconds of when the
utterance's speech arrived and of when its result was sent.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator

import grpc

from hws.config import Settings
from hws.engine import Engine
from hws.gen.compat import audio_transcriber_pb2 as compat_pb
from hws.gen.compat import audio_transcriber_pb2_grpc as compat_grpc
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.service import ServingState, parsed, rpc_scope, run_session, stream_params
from hws.session import Result, Session

SAMPLE_RATE = 16_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
ORIGINAL_OK_STATUS = 12  # what the original Check always answered


class _ArrivalClock:
    """Maps stream time to the wall-clock time at which that audio arrived."""

    def __init__(self) -> None:
        self._ends: list[float] = []  # stream seconds at the end of each chunk
        self._arrivals: list[float] = []  # wall-clock seconds the chunk arrived
        self._bytes = 0

    def record(self, size: int) -> None:
        self._bytes += size
        self._ends.append(self._bytes / BYTES_PER_SECOND)
        self._arrivals.append(time.time())

    def wall_time(self, stream_s: float) -> float:
        index = min(bisect.bisect_left(self._ends, stream_s), len(self._arrivals) - 1)
        return self._arrivals[index] if index >= 0 else time.time()

    def forget_before(self, stream_s: float) -> None:
        """Drop what no later result can ask for (it starts at or after `stream_s`), so memory stays flat."""
        index = bisect.bisect_left(self._ends, stream_s)
        if index > 1 and index * 2 > len(self._ends):  # in batches: deleting from a list's front moves the rest
            del self._ends[: index - 1]
            del self._arrivals[: index - 1]

    def __len__(self) -> int:
        return len(self._ends)


async def _pcm_chunks(requests: AsyncIterator[compat_pb.AudioRequest], clock: _ArrivalClock) -> AsyncIterator[bytes]:
    """Whole samples from a byte stream: the original protocol has no framing, so a sample may span messages."""
    carry = b""
    async for request in requests:
        data = carry + request.audio_data
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        if whole:
            clock.record(whole)
            yield data[:whole]


class AudioTranscriberCompat(compat_grpc.AudioTranscriberServiceServicer):
    def __init__(self, settings: Settings, engine: Engine, state: ServingState) -> None:
        self._settings = settings
        self._engine = engine
        self._state = state

    async def TranscribeAudio(
        self, request_iterator: AsyncIterator[compat_pb.AudioRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[compat_pb.TranscriptionResponse]:
        async with rpc_scope(context) as stream_id:
            with self._state.stream_slot():
                config = pb.RecognitionConfig(sample_rate_hz=SAMPLE_RATE)
                params = stream_params(config, self._settings, self._engine, interim=False, events=False)
                session = Session(stream_id, params, self._engine, self._settings.partial_interval_ms)
                clock = _ArrivalClock()
                chunks = _pcm_chunks(parsed(request_iterator), clock)
                async for output in run_session(
                    session, chunks, self._settings.stream_idle_timeout_s, self._state.drain
                ):
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


def add_compat_services(server: grpc.aio.Server, settings: Settings, engine: Engine, state: ServingState) -> list[str]:
    """Register both services; returns their full names for reflection."""
    compat_grpc.add_AudioTranscriberServiceServicer_to_server(AudioTranscriberCompat(settings, engine, state), server)
    compat_grpc.add_HealthCheckServiceServicer_to_server(HealthCheckCompat(state), server)
    services = compat_pb.DESCRIPTOR.services_by_name
    return [services["AudioTranscriberService"].full_name, services["HealthCheckService"].full_name]

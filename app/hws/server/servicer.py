"""The Transcriber servicer: the v1 streaming, unary and readiness calls, on top of sessions.

Knows nothing of Whisper: recognition happens in sessions and the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import structlog

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.server.convert import output_to_pb, result_to_pb
from hws.server.rpc import StreamRefused, first_request, parsed, rpc_scope
from hws.server.sessions import SessionFactory, run_session
from hws.stream.outputs import FailureCode, Reconfigure, Result, StreamFailure

log = structlog.get_logger("hws.service")


class TranscriberServicer(pb_grpc.TranscriberServicer):
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._settings = sessions.settings
        self._state = sessions.state

    async def StreamingTranscribe(
        self, request_iterator: AsyncIterator[pb.StreamingTranscribeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamingTranscribeResponse]:
        async with rpc_scope(context) as stream_id:
            self._state.check_ready()
            # A stream takes a slot only once its config is valid: streams that send nothing cannot lock
            # others out, and draining does not wait for them.
            requests = parsed(request_iterator)
            config = await self._first_config(requests)
            offset = config.audio_offset_s
            with self._sessions.open(
                stream_id,
                config.recognition,
                interim=config.interim_results,
                events=config.speech_events,
                offset_s=offset,
                resumable=True,
                peer=context.peer(),
            ) as session:
                params = session.params
                log.info(
                    "stream_started",
                    rate=params.sample_rate_hz,
                    encoding=params.encoding.value,
                    interim=params.interim_results,
                    audio_offset_s=offset,
                )

                def update(later: pb.StreamingConfig) -> Reconfigure:
                    return self._sessions.update(later, session.params, offset)

                try:
                    async for output in run_session(
                        session,
                        _stream_input(requests, update),
                        self._settings.stream_idle_timeout_s,
                        self._state.drain,
                    ):
                        yield output_to_pb(output)
                finally:
                    log.info("stream_ended", audio_s=round(session.audio_seconds, 2))

    async def _first_config(self, requests: AsyncIterator[pb.StreamingTranscribeRequest]) -> pb.StreamingConfig:
        first = await first_request(requests, self._settings.config_timeout_s, "config")
        if first is None:
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT, "the stream ended before its config: send a StreamingConfig first"
            )
        if first.WhichOneof("request") != "config":
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT,
                "the first message must carry config (StreamingConfig); audio comes after it",
            )
        return first.config

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        async with rpc_scope(context) as stream_id:
            with self._sessions.open(stream_id, request.config, peer=context.peer(), streaming=False) as session:
                outputs = run_session(
                    session, _once(request.audio), self._settings.stream_idle_timeout_s, asyncio.Event()
                )
                results = [result_to_pb(output) async for output in outputs if isinstance(output, Result)]
                return pb.TranscribeResponse(results=results, duration_s=session.audio_seconds)
        raise AssertionError("unreachable: rpc_scope aborts on every failure")

    async def Ready(self, request: pb.ReadyRequest, context: grpc.aio.ServicerContext) -> pb.ReadyResponse:
        reason = self._state.not_ready_reason
        info = self._sessions.engine.info
        if reason is not None or info is None:  # info is set before the state says the model is ready
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason or "the model is still loading")
        assert info is not None
        return pb.ReadyResponse(model=info.name, device=info.device)


async def _stream_input(
    requests: AsyncIterator[pb.StreamingTranscribeRequest], update: Callable[[pb.StreamingConfig], Reconfigure]
) -> AsyncIterator[bytes | Reconfigure]:
    """What follows the first config, in order: audio, and config updates already validated."""
    async for request in requests:
        kind = request.WhichOneof("request")
        if kind == "config":
            yield update(request.config)
            continue
        if kind is None:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, "a request carried neither config nor audio")
        yield request.audio


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data

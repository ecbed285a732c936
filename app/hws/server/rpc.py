"""How an RPC ends: a stream id on every log line, failures turned into gRPC statuses with a retry hint.

Shared by every servicer (v1 and compat): a StreamFailure raised anywhere in a call becomes its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError

from hws.server import parsing
from hws.stream.outputs import FailureCode, StreamFailure

log = structlog.get_logger("hws.service")

STATUS_FOR_FAILURE = {
    FailureCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    FailureCode.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailureCode.IDLE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    FailureCode.TOO_SLOW: grpc.StatusCode.DEADLINE_EXCEEDED,
    FailureCode.DRAINING: grpc.StatusCode.UNAVAILABLE,
    FailureCode.MAX_AGE: grpc.StatusCode.UNAVAILABLE,  # resumable, like a drain: "go on elsewhere"
    FailureCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    FailureCode.INTERNAL: grpc.StatusCode.INTERNAL,
}
# gRPC's standard server pushback trailer: how long a client should wait before retrying.
PUSHBACK_KEY = "grpc-retry-pushback-ms"

_Request = TypeVar("_Request")


class StreamRefused(StreamFailure):
    """A StreamFailure before the stream started (no config, or one refused): logged as stream_refused."""


@contextlib.asynccontextmanager
async def rpc_scope(context: grpc.aio.ServicerContext) -> AsyncIterator[str]:
    """One RPC: a stream id on every log line, refusals and failures turned into statuses."""
    stream_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(stream_id=stream_id, peer=context.peer())
    try:
        yield stream_id
    except StreamFailure as exc:
        status = STATUS_FOR_FAILURE[exc.code]
        if isinstance(exc, StreamRefused):
            log.info("stream_refused", code=status.name, reason=exc.message)
        elif exc.code is FailureCode.MAX_AGE:  # routine: the client resumes on a new stream, nothing failed
            log.info("stream_renewed", reason=exc.message)
        else:
            log.info("stream_failed", code=exc.code.value, reason=exc.message)
        await _abort(context, status, exc.message, exc.retry_after_s)
    finally:
        structlog.contextvars.unbind_contextvars("stream_id", "peer")


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, retry_after_s: float | None
) -> None:
    if retry_after_s is not None:
        context.set_trailing_metadata(((PUSHBACK_KEY, str(round(retry_after_s * 1000))),))
    await context.abort(code, message)


async def parsed(requests: AsyncIterator[_Request]) -> AsyncIterator[_Request]:
    """The client's messages; one that protobuf cannot parse ends the stream with INVALID_ARGUMENT.

    The parse error comes from the request iterator (app/hws/server/parsing.py); unhandled, it would end the
    reader while the response side waits for it.
    """
    iterator = aiter(requests)
    while True:
        try:
            request = parsing.check(await anext(iterator))
        except StopAsyncIteration:
            return
        except DecodeError:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, parsing.MESSAGE) from None
        yield request


async def first_request(requests: AsyncIterator[_Request], timeout_s: float, awaited: str) -> _Request | None:
    """A call's first message, or None when the call ended before it; until it comes the call holds no slot.

    A call that sends nothing within `timeout_s` is refused: "no {awaited} received within ...".
    """
    try:
        return await asyncio.wait_for(anext(requests), timeout_s)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise StreamRefused(
            FailureCode.IDLE_TIMEOUT, f"no {awaited} received within {timeout_s:g} s of opening the stream"
        ) from None

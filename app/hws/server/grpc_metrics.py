"""A grpc.aio server interceptor that records go-grpc-prometheus metrics.

py-grpc-prometheus has no asyncio interceptor and counts a stream's messages
wrongly, so this one wraps each method handler: requests are counted as the
handler reads them, responses as it yields them, and the status code comes
from the context (abort or set_code), CANCELLED when the client went away, and
UNKNOWN for an exception that escaped the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from hws import metrics
from hws.server import parsing


def _split(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


# A grpc.aio behaviour: a coroutine (or async generator) function of the request(s) and grpc.aio's context.
# The stubs type RpcMethodHandler's behaviours as the synchronous server's (grpc.ServicerContext, Iterator).
_Behaviour = Callable[..., Any]

_BY_VALUE = {status.value[0]: status.name for status in grpc.StatusCode}


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return _BY_VALUE.get(code, "UNKNOWN")


class _Call:
    """Metrics for one RPC."""

    def __init__(self, grpc_type: str, service: str, method: str) -> None:
        self.labels = {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}
        self.started = time.perf_counter()
        self.recorded = False
        metrics.GRPC_STARTED.labels(**self.labels).inc()

    def received(self) -> None:
        metrics.GRPC_MSG_RECEIVED.labels(**self.labels).inc()

    def sent(self) -> None:
        metrics.GRPC_MSG_SENT.labels(**self.labels).inc()

    def done(self, code: str) -> None:
        """Record the status; only the first call counts."""
        if self.recorded:
            return
        self.recorded = True
        metrics.GRPC_HANDLED.labels(**self.labels, grpc_code=code).inc()
        metrics.GRPC_HANDLING_SECONDS.labels(**self.labels).observe(time.perf_counter() - self.started)

    @contextlib.contextmanager
    def recording(self, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """Record the RPC's status as the handler ends, however it ends."""
        try:
            yield
        except asyncio.CancelledError:
            self.done("CANCELLED")
            raise
        except grpc.aio.AbortError:
            self.done(_code_name(context))
            raise
        except Exception:
            # A write to a call the client already cancelled fails too: that is the client's cancel.
            self.done("CANCELLED" if context.cancelled() else "UNKNOWN")
            raise
        else:
            self.done(_code_name(context))
        finally:
            self.done("CANCELLED")  # closed early (GeneratorExit): the client went away

    async def finish(self, context: grpc.aio.ServicerContext, work: Awaitable[Any]) -> Any:
        with self.recording(context):
            return await work

    async def counted_requests(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            self.received()
            yield parsing.check(request)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = _split(handler_call_details.method)
        codec = {
            "request_deserializer": parsing.tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }

        if handler.unary_unary:
            inner_uu: _Behaviour = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                call = _Call("unary", service, method)
                call.received()
                if isinstance(request, parsing.Unparseable):
                    await call.finish(context, context.abort(grpc.StatusCode.INVALID_ARGUMENT, parsing.MESSAGE))
                response = await call.finish(context, inner_uu(request, context))
                call.sent()
                return response

            return grpc.unary_unary_rpc_method_handler(unary_unary, **codec)

        if handler.stream_unary:
            inner_su: _Behaviour = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                call = _Call("client_stream", service, method)
                response = await call.finish(context, inner_su(call.counted_requests(requests), context))
                call.sent()
                return response

            return grpc.stream_unary_rpc_method_handler(stream_unary, **codec)

        streaming_in = handler.stream_stream is not None
        inner_ss: _Behaviour | None = handler.stream_stream or handler.unary_stream
        assert inner_ss is not None  # neither unary_unary nor stream_unary: one of the streaming two
        grpc_type = "bidi_stream" if streaming_in else "server_stream"

        async def streaming(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(grpc_type, service, method)
            if streaming_in:
                request_or_iterator = call.counted_requests(request_or_iterator)
            else:
                call.received()
                if isinstance(request_or_iterator, parsing.Unparseable):
                    await call.finish(context, context.abort(grpc.StatusCode.INVALID_ARGUMENT, parsing.MESSAGE))
            produced = inner_ss(request_or_iterator, context)
            if inspect.isawaitable(produced):
                await call.finish(context, produced)
                return
            with call.recording(context):
                async for response in produced:
                    call.sent()
                    yield response

        factory = grpc.stream_stream_rpc_method_handler if streaming_in else grpc.unary_stream_rpc_method_handler
        return factory(streaming, **codec)

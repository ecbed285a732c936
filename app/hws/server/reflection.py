"""gRPC server reflection (grpc.reflection.v1alpha, what grpcurl `list` and `describe` use), bounded.

Reflection needs an API key where keys are set (app/hws/server/auth.py), but is open to anyone where none
are, so what one caller can make it hold must be small:

- a request (one message on a `ServerReflectionInfo` stream) over MAX_REQUEST_BYTES, counted as
  protobuf encodes it (host, the symbol or file name asked for, any unknown fields), ends the call
  with INVALID_ARGUMENT; the message gives the size and the limit, never the client's string (no
  real symbol or file name comes near it; every answer would carry the request back whole);
- a message protobuf cannot parse ends the call with INVALID_ARGUMENT, as on every other method
  (app/hws/server/parsing.py);
- at most MAX_CALLS_PER_CONNECTION open `ServerReflectionInfo` calls per connection and MAX_CALLS
  per server; more are RESOURCE_EXHAUSTED (app/hws/server/open_calls.py). Behind a load balancer that pools
  its connections to the server, a connection is the balancer's.

A call may send any number of requests: each is answered from the descriptors already in memory,
and the next is read only once the answer has been handed to the connection, which waits while the
client is not reading (HTTP/2 flow control). A client that sends requests and never reads the
answers stops being read once the flow-control windows are full (docs/interface.md gives the
measured figure), as on any other call; one that reads them costs what as many separate calls would.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

import grpc
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from hws.server import parsing
from hws.server.open_calls import OpenCalls

MAX_REQUEST_BYTES = 1024
MAX_CALLS = 100
MAX_CALLS_PER_CONNECTION = 10


class BoundedReflectionServicer(reflection.aio.ReflectionServicer):
    def __init__(self, service_names: Iterable[str]) -> None:
        super().__init__(service_names)
        self._calls = OpenCalls("reflection calls", MAX_CALLS_PER_CONNECTION, MAX_CALLS, "; try again later")

    # typeshed types the base's async generator as a coroutine returning an AsyncIterable (not what it is).
    async def ServerReflectionInfo(  # type: ignore[override]
        self,
        request_iterator: AsyncIterable[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async with self._calls.hold(context):
            responses = super().ServerReflectionInfo(_bounded(request_iterator, context), context)
            async for response in responses:  # type: ignore[attr-defined]  # (typeshed, as above)
                yield response


async def _bounded(
    requests: AsyncIterable[reflection_pb2.ServerReflectionRequest], context: grpc.aio.ServicerContext
) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
    iterator = aiter(requests)
    while True:
        try:
            request = await anext(iterator)
        except StopAsyncIteration:
            return
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, parsing.MESSAGE)
        size = request.ByteSize()
        if size > MAX_REQUEST_BYTES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a reflection request of {size} bytes; the limit is {MAX_REQUEST_BYTES}",
            )
        yield request


def add_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve bounded reflection for these services and for reflection itself."""
    servicer = BoundedReflectionServicer([*service_names, reflection.SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)

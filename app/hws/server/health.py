"""The standard grpc.health.v1 service, bounded: health is open to anyone (load balancers call it
without credentials), so what one caller can hold must be small.

- a `service` name longer than MAX_SERVICE_NAME is INVALID_ARGUMENT at once (no real service
  name is long; a 4 MB one was held in memory for as long as its Watch stayed open);
- at most MAX_WATCHES_PER_CONNECTION open `Watch` calls per connection and MAX_WATCHES per
  server; more are RESOURCE_EXHAUSTED (app/hws/server/open_calls.py).
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2

from hws.server.open_calls import OpenCalls

MAX_SERVICE_NAME = 200
MAX_WATCHES = 1000
MAX_WATCHES_PER_CONNECTION = 10


class BoundedHealthServicer(health.aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._watches = OpenCalls("health watches", MAX_WATCHES_PER_CONNECTION, MAX_WATCHES, "; use Check")

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        await _check_name(request, context)
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        await _check_name(request, context)
        async with self._watches.hold(context):
            await super().Watch(request, context)


async def _check_name(request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
    if len(request.service) > MAX_SERVICE_NAME:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"service name of {len(request.service)} characters; the limit is {MAX_SERVICE_NAME}",
        )

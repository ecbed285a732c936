"""The standard grpc.health.v1 service, bounded: health is open to anyone (load balancers call it
without credentials), so what one caller can hold must be small.

- a `service` name longer than MAX_SERVICE_NAME is INVALID_ARGUMENT at once (no real service
  name is long; a 4 MB one was held in memory for as long as its Watch stayed open);
- at most MAX_WATCHES_PER_CONNECTION open `Watch` calls per connection and MAX_WATCHES per
  server; more are RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import collections

import grpc
from grpc_health.v1 import health, health_pb2

MAX_SERVICE_NAME = 200
MAX_WATCHES = 1000
MAX_WATCHES_PER_CONNECTION = 10


class BoundedHealthServicer(health.aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._watches = 0
        self._watches_by_peer: collections.Counter[str] = collections.Counter()

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        await _check_name(request, context)
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        await _check_name(request, context)
        peer = context.peer()  # the client's address and port: one connection
        if self._watches >= MAX_WATCHES:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"the server has {MAX_WATCHES} open health watches; use Check"
            )
        if self._watches_by_peer[peer] >= MAX_WATCHES_PER_CONNECTION:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {MAX_WATCHES_PER_CONNECTION} open health watches per connection",
            )
        self._watches += 1
        self._watches_by_peer[peer] += 1
        try:
            await super().Watch(request, context)
        finally:
            self._watches -= 1
            self._watches_by_peer[peer] -= 1
            if not self._watches_by_peer[peer]:
                del self._watches_by_peer[peer]


async def _check_name(request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
    if len(request.service) > MAX_SERVICE_NAME:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"service name of {len(request.service)} characters; the limit is {MAX_SERVICE_NAME}",
        )

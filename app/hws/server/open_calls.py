"""How many calls one connection, and the whole server, may hold open on a service that is cheap to
call but could be held open without end (health `Watch`, reflection): more are RESOURCE_EXHAUSTED.

A connection is the peer gRPC reports (the client's address and port). Counts are released however
a call ends: normally, with an error, or cancelled by the client.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator

import grpc


class OpenCalls:
    def __init__(self, what: str, per_connection: int, total: int, when_full: str = "") -> None:
        """`what` names the calls in the messages ("health watches"); `when_full` is added to the
        message a call gets when the whole server is full ("; use Check")."""
        self.what = what
        self.per_connection = per_connection
        self.total = total
        self.when_full = when_full
        self._open = 0
        self._by_peer: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def hold(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """One open call for as long as the block runs; aborts the call if there is no room."""
        peer = context.peer()
        if self._open >= self.total:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"the server has {self.total} open {self.what}{self.when_full}"
            )
        if self._by_peer[peer] >= self.per_connection:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"at most {self.per_connection} open {self.what} per connection"
            )
        self._open += 1
        self._by_peer[peer] += 1
        try:
            yield
        finally:
            self._open -= 1
            self._by_peer[peer] -= 1
            if not self._by_peer[peer]:
                del self._by_peer[peer]


def peer_address(peer: str) -> str:
    """The client's address without its port ("ipv4:10.0.0.5:51234" -> "ipv4:10.0.0.5"): one per host."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rpartition(':')[0]}"
    return peer

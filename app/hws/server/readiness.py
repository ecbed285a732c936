"""The server's one readiness: model loaded or failed, stalled, draining, and the open streams' slots."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

from hws import metrics
from hws.server.rpc import StreamRefused
from hws.stream.outputs import FailureCode

STREAM_LIMIT_RETRY_S = 1.0


class ServingState:
    """The server's one readiness: whether streams are accepted now and why not, and how many are open.

    Shared by every servicer; health and hws_ready follow it through `on_change` (called with the new
    serving value each time it changes).
    """

    def __init__(self, max_streams: int, on_change: Callable[[bool], Awaitable[None]] | None = None) -> None:
        self.max_streams = max_streams
        self._on_change = on_change
        self._serving = False
        self.model_ready = False
        self.load_error: str | None = None  # why the last model load failed; it is retried
        self.stalled = False  # the engine's watchdog gave up on a decode
        self.drain = asyncio.Event()  # set on SIGTERM: open streams finish up, new ones are refused
        self.idle = asyncio.Event()  # set while no stream is open
        self.idle.set()
        self.active = 0

    @property
    def draining(self) -> bool:
        return self.drain.is_set()

    @property
    def not_ready_reason(self) -> str | None:
        if self.draining:
            return "the server is draining (shutting down); connect to another server"
        if not self.model_ready and self.load_error:
            return f"the model failed to load ({self.load_error}); retrying"
        if not self.model_ready:
            return "the model is still loading; retry shortly"
        if self.stalled:
            return "a decode is stuck and the server is recovering; connect to another server"
        return None

    async def model_loaded(self) -> None:
        self.model_ready, self.load_error = True, None
        await self._changed()

    async def model_failed(self, reason: str) -> None:
        self.load_error = reason
        await self._changed()

    async def set_stalled(self, stalled: bool) -> None:
        self.stalled = stalled
        await self._changed()

    async def start_draining(self) -> None:
        self.drain.set()
        await self._changed()

    async def _changed(self) -> None:
        serving = self.not_ready_reason is None
        if serving != self._serving:
            self._serving = serving
            if self._on_change is not None:
                await self._on_change(serving)

    def check_ready(self) -> None:
        """Raise StreamRefused(UNAVAILABLE) while streams are not accepted."""
        reason = self.not_ready_reason
        if reason is not None:
            raise StreamRefused(FailureCode.UNAVAILABLE, reason)

    @contextlib.contextmanager
    def stream_slot(self) -> Iterator[None]:
        """Admit one stream the caller found ready (`check_ready`), or raise StreamRefused; counts it while open."""
        if self.active >= self.max_streams:
            raise StreamRefused(
                FailureCode.OVERLOADED,
                f"the server is at its limit of {self.max_streams} concurrent streams; retry later or elsewhere",
                retry_after_s=STREAM_LIMIT_RETRY_S,
            )
        self.active += 1
        self.idle.clear()
        metrics.ACTIVE_STREAMS.set(self.active)
        try:
            yield
        finally:
            self.active -= 1
            metrics.ACTIVE_STREAMS.set(self.active)
            if not self.active:
                self.idle.set()

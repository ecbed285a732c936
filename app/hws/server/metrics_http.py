"""The Prometheus /metrics endpoint, on the event loop: a slow or idle connection costs no thread.

prometheus_client's own server gives every connection a thread and never times
out a read, so a few hundred half-sent requests held that many threads, and
about a thousand exhausted the process's file descriptors. Here every
connection is a coroutine with a deadline for its request, requests are small
and bounded, and the number of open connections is capped: a new connection
beyond the cap closes the oldest one still sending its request. A scrape is one
short GET answered at once, so a flood of slow connections cannot keep it out.
"""

from __future__ import annotations

import asyncio
import contextlib

import prometheus_client
import structlog

log = structlog.get_logger("hws.metrics")

READ_TIMEOUT_S = 5.0  # from connecting to the end of the request's head
MAX_REQUEST_BYTES = 8 * 1024
MAX_CONNECTIONS = 64


class MetricsServer:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._reading: dict[asyncio.StreamWriter, None] = {}  # connections still sending their request, oldest first

    async def start(self, host: str, port: int) -> None:
        """Listen; raises OSError when the address cannot be bound (never shared: no SO_REUSEPORT)."""
        self._server = await asyncio.start_server(
            self._serve, host or None, port, reuse_port=False, limit=MAX_REQUEST_BYTES
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._reading) >= MAX_CONNECTIONS:
            oldest = next(iter(self._reading))
            del self._reading[oldest]
            oldest.transport.abort()  # its read fails at once
        self._reading[writer] = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            self._reading.pop(writer, None)
            writer.write(_response(head))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # slow, oversized, evicted or gone: the connection is closed below
        finally:
            self._reading.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _response(head: bytes) -> bytes:
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return _plain(405, "Method Not Allowed", "only GET\n")
    if path != "/metrics":
        return _plain(404, "Not Found", "metrics are at /metrics\n")
    body = prometheus_client.generate_latest()
    headers = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {prometheus_client.CONTENT_TYPE_LATEST}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return headers + (b"" if method == "HEAD" else body)


def _plain(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode() + body

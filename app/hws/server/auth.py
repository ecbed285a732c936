"""API-key authentication for the gRPC server: a grpc.aio server interceptor and its key sources.

Clients send a key in call metadata, either `authorization: Bearer <key>` or
`x-api-key: <key>`. Keys come from, in order:

1. `--api-keys-file` / HWS_API_KEYS_FILE: a file with one key per line; blank
   lines and lines starting with `#` are ignored.
2. HWS_API_KEYS: keys separated by commas. This is for ECS, where a task
   definition's `secrets` puts a Secrets Manager value into an environment
   variable. It is read only when no key file is set.

Neither set: no authentication. A source that is set but holds no key is a
startup error, never an open server: an empty secret must not turn
authentication off.

Exempt, because load balancers and container health checks send no
credentials: grpc.health.v1 Check and Watch, Transcriber/Ready and the
compatibility HealthCheckService/Check. They tell such a caller no more than a
load balancer needs, serving or not: Ready answers a caller without a valid key
with its model and device left empty (a valid key gets them). Reflection is not
exempt (turn it off with --reflection false if it must not be served at all).

Refusals are logged for abuse monitoring, but a flood must not flood the log:
the first REFUSALS_LOGGED_IN_FULL of each REFUSAL_LOG_INTERVAL_S are logged one
line each (`unauthenticated`), the rest are counted and summed up in one line
(`unauthenticated_suppressed`: count, interval_s, the calls per peer address) at
the end of that interval and when the server stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
import structlog

from hws.server.open_calls import peer_address

ENV_KEYS = "HWS_API_KEYS"
EXEMPT_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/hws.transcriber.v1.Transcriber/Ready",
        "/HealthCheckService/Check",
    }
)
# Exempt, but what they answer a caller without a valid key is emptied: serving or not is all it learns.
REDACTED_WITHOUT_KEY = frozenset({"/hws.transcriber.v1.Transcriber/Ready"})
REFUSALS_LOGGED_IN_FULL = 10  # per interval; the rest are counted in one summary line
REFUSAL_LOG_INTERVAL_S = 60.0
MAX_SUMMARY_PEERS = 20  # peer addresses named in a summary; the others are counted under "other"
# The same message for a missing and a wrong key: a caller learns nothing about which keys exist.
UNAUTHENTICATED_MESSAGE = "missing or invalid API key; send 'authorization: Bearer <key>'"

log = structlog.get_logger("hws.auth")


def _check_key(key: str, where: str) -> str:
    # gRPC metadata values are printable ASCII; a key outside that could never be sent, so refuse it at startup.
    if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        raise ValueError(f"{where}: an API key must be printable ASCII without spaces")
    return key


def load_api_keys(path: str) -> list[str]:
    """Keys from a file, one per line; raises ValueError if the file holds none (or cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read API key file {path}: {exc}") from None
    keys = [
        _check_key(line.strip(), f"{path} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not keys:
        raise ValueError(f"API key file {path} holds no keys (one per line; blank lines and # comments are ignored)")
    return keys


def parse_env_keys(value: str) -> list[str]:
    """Keys from HWS_API_KEYS (comma-separated); raises ValueError if it holds none."""
    keys = [_check_key(part.strip(), ENV_KEYS) for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError(f"{ENV_KEYS} is set but holds no keys; unset it to run without authentication")
    return keys


def api_keys(api_keys_file: str, environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The configured keys (file first, then HWS_API_KEYS), or None when authentication is off."""
    environ = os.environ if environ is None else environ
    if api_keys_file:
        return load_api_keys(api_keys_file)
    if ENV_KEYS in environ:
        return parse_env_keys(environ[ENV_KEYS])
    return None


def _digest(key: str | bytes) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from leaking the length of the keys.
    return hashlib.sha256(key.encode("utf-8", "replace") if isinstance(key, str) else key).digest()


def _presented_keys(metadata: Iterable[tuple[str, str | bytes]]) -> list[str | bytes]:
    presented: list[str | bytes] = []
    for name, value in metadata:
        if name == "x-api-key":
            presented.append(value.strip())
        elif name == "authorization":
            scheme, _, token = value.strip().partition(" ") if isinstance(value, str) else ("", "", "")
            if scheme.lower() == "bearer":
                presented.append(token.strip())
    return presented


class RefusalLog:
    """The refusals' log lines, bounded: `logged_in_full` lines per interval, then one summary with the count.

    An interval starts at a refusal after the previous one ended. Called on the event loop only (every
    refusal is), so it needs no lock; the summary is scheduled on that loop, and `flush` writes it early.
    """

    def __init__(
        self,
        logged_in_full: int = REFUSALS_LOGGED_IN_FULL,
        interval_s: float = REFUSAL_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logged_in_full, self.interval_s, self._clock = logged_in_full, interval_s, clock
        self._ends_at: float | None = None
        self._logged = 0
        self._suppressed: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def refused(self, method: str, peer: str, key_sent: bool) -> None:
        now = self._clock()
        if self._ends_at is None or now >= self._ends_at:
            self.flush()
            self._ends_at, self._logged = now + self.interval_s, 0
        if self._logged < self.logged_in_full:
            self._logged += 1
            # Logged for abuse monitoring; never the key itself.
            log.info("unauthenticated", method=method, peer=peer, key_sent=key_sent)
            return
        address = peer_address(peer)
        if address not in self._suppressed and len(self._suppressed) >= MAX_SUMMARY_PEERS:
            address = "other"
        self._suppressed[address] += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, self._ends_at - now), self.flush)

    def flush(self) -> None:
        """Write the summary of the refusals not yet logged (if any), and end the interval."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ends_at = None
        if self._suppressed:
            log.info(
                "unauthenticated_suppressed",
                count=sum(self._suppressed.values()),
                interval_s=self.interval_s,
                peers=dict(self._suppressed.most_common()),
            )
            self._suppressed.clear()


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every non-exempt call without a valid key with UNAUTHENTICATED, for all four RPC kinds."""

    def __init__(self, keys: Iterable[str], refusals: RefusalLog | None = None) -> None:
        self._digests = [_digest(key) for key in keys]
        if not self._digests:
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self.refusals = refusals or RefusalLog()

    def authorized(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        ok = False
        for presented in _presented_keys(metadata or ()):
            digest = _digest(presented)
            # Every key is compared, with no early exit: the time taken does not depend on which key matched.
            for known in self._digests:
                ok |= hmac.compare_digest(digest, known)
        return ok

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        # An unknown method stays UNIMPLEMENTED: answering it would let callers mint metric labels at will.
        if handler is None or (method in EXEMPT_METHODS and method not in REDACTED_WITHOUT_KEY):
            return handler
        metadata = handler_call_details.invocation_metadata
        if self.authorized(metadata):
            return handler
        if method in REDACTED_WITHOUT_KEY:
            return _redacted(handler)
        return _refusal(handler, method, bool(_presented_keys(metadata or ())), self.refusals)


def _redacted(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A unary handler that answers as `handler` does (an error included), with every field of its reply empty."""
    # In grpc.aio the behaviour is a coroutine function, which typeshed's (synchronous) types do not know.
    behaviour: Any = handler.unary_unary
    assert behaviour is not None, "only unary calls are redacted"

    async def _answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
        reply = await behaviour(request, context)
        return type(reply)()

    return grpc.unary_unary_rpc_method_handler(
        _answer, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _refusal(
    handler: grpc.RpcMethodHandler, method: str, key_sent: bool, refusals: RefusalLog
) -> grpc.RpcMethodHandler:
    """A handler of the same kind that aborts at once.

    No request deserializer: an unauthenticated payload is never parsed (raw bytes reach _refuse, which
    ignores them), and a garbage payload still gets UNAUTHENTICATED rather than a parse error. A
    coroutine function is a valid behaviour for every kind in grpc.aio (streaming ones use it as the
    reader/writer API).
    """

    async def _refuse(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        refusals.refused(method, context.peer(), key_sent)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

    serializer = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_refuse, response_serializer=serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_refuse, response_serializer=serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_refuse, response_serializer=serializer)
    return grpc.stream_stream_rpc_method_handler(_refuse, response_serializer=serializer)

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
compatibility HealthCheckService/Check. Reflection is not exempt (turn it off
with --reflection false if it must not be served at all).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
import structlog

ENV_KEYS = "HWS_API_KEYS"
EXEMPT_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/hws.transcriber.v1.Transcriber/Ready",
        "/HealthCheckService/Check",
    }
)
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


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every non-exempt call without a valid key with UNAUTHENTICATED, for all four RPC kinds."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]
        if not self._digests:
            raise ValueError("ApiKeyInterceptor needs at least one key")

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
        # An unknown method stays UNIMPLEMENTED: answering it would let callers mint metric labels at will.
        if handler is None or handler_call_details.method in EXEMPT_METHODS:
            return handler
        metadata = handler_call_details.invocation_metadata
        if self.authorized(metadata):
            return handler
        return _refusal(handler, handler_call_details.method, bool(_presented_keys(metadata or ())))


def _refusal(handler: grpc.RpcMethodHandler, method: str, key_sent: bool) -> grpc.RpcMethodHandler:
    """A handler of the same kind that aborts at once.

    No request deserializer: an unauthenticated payload is never parsed (raw bytes reach _refuse, which
    ignores them), and a garbage payload still gets UNAUTHENTICATED rather than a parse error. A
    coroutine function is a valid behaviour for every kind in grpc.aio (streaming ones use it as the
    reader/writer API).
    """

    async def _refuse(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        # Logged for abuse monitoring; never the key itself.
        log.info("unauthenticated", method=method, peer=context.peer(), key_sent=key_sent)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

    serializer = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_refuse, response_serializer=serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_refuse, response_serializer=serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_refuse, response_serializer=serializer)
    return grpc.stream_stream_rpc_method_handler(_refuse, response_serializer=serializer)

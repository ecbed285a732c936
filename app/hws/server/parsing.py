"""Requests that protobuf cannot parse: INVALID_ARGUMENT with a message, never gRPC's UNKNOWN.

grpc.aio parses a request before any handler runs; a parse error there becomes
UNKNOWN ("Unexpected <class 'google.protobuf.message.DecodeError'>"). The
server's interceptor gives every method a tolerant parser instead: a message
that does not parse arrives as `Unparseable`, a unary call answers it with
INVALID_ARGUMENT, and a request stream raises DecodeError at that message,
which `service.parsed` turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

MESSAGE = "a message could not be parsed as this method's request type"


@dataclasses.dataclass(frozen=True)
class Unparseable:
    error: str


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return Unparseable(str(exc))

    return parse


def check(request: Any) -> Any:
    """The request, or DecodeError where it did not parse."""
    if isinstance(request, Unparseable):
        raise DecodeError(request.error)
    return request

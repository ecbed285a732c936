"""What the Python client raises: one exception type, its message one line that says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type here: the sources import this module without loading gRPC
    import grpc


class ClientError(Exception):
    """Anything `hws.client.transcribe` cannot do; `str(exc)` is a one-line message."""


class ConnectError(ClientError):
    """No connection to the server: nothing listens there, a TLS or address mistake (the message names it)."""


class StreamError(ClientError):
    """The stream ended with an error status after resuming as far as it could; `code` is gRPC's status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

"""`transcribe`: the Python client's entry point, a file or source in, the server's responses out.

It checks the address and the connection before streaming, so that a mistake fails at once with one
line (`ConnectError`), and turns the stream's final gRPC error into a `StreamError`; in between it is
`stream_resumable`, which resumes at the server's stream age limit, a drain or a dropped connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc

from hws.client.channel import auth_metadata, make_channel
from hws.client.connect import API_NAMES, check_address, connect_error
from hws.client.errors import ConnectError, StreamError
from hws.client.resume import stream_resumable
from hws.client.sources import AudioSource, file_source
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb


def transcribe(
    audio: str | Path | AudioSource,
    address: str | Sequence[str] = "localhost:50051",
    config: pb.StreamingConfig | None = None,
    *,
    tls: bool = False,
    ca_cert: str | None = None,
    api_key: str | None = None,
    realtime: bool = False,
    resume_attempts: int = 5,
    timeout_s: float | None = None,
    connect_timeout_s: float = 10.0,
    on_retry: Callable[[grpc.RpcError, int, float], None] | None = None,
) -> Iterator[pb.StreamingTranscribeResponse]:
    """Stream `audio` to the server at `address` and yield its responses (results, events, settings answers).

    `audio` is a file PyAV decodes (sent as fast as the server takes it, or at real-time pace with
    `realtime=True`) or an `AudioSource` (`raw_source`, `microphone_source`, your own chunks). `address`
    is host[:port] (port 50051 when left out), or several to fail over to when the stream resumes.
    `config` holds the recognition settings (`StreamingConfig()` by default: finals only); the source's
    audio format is filled in. `tls`/`ca_cert` as `hws-client`'s --tls/--ca-cert, `api_key` sent as a
    bearer token. The stream resumes by itself after the server's age limit, a drain or a dropped
    connection (at most `resume_attempts` failures in a row; `on_retry(error, attempt, delay_s)` hears
    of each).

    Raises, before anything is sent: `SourceError` (not audio), `ConnectError` (an address or TLS
    mistake, or no server, said in one line, after at most `connect_timeout_s`); while iterating:
    `StreamError` (the error status the stream ended with; `.code` is gRPC's). All are `ClientError`.
    """
    addresses = [check_address(a, API_NAMES) for a in ([address] if isinstance(address, str) else address)]
    source = audio if isinstance(audio, AudioSource) else file_source(audio, realtime=realtime)
    reasons = []
    for candidate in addresses:
        reason = connect_error(candidate, tls, ca_cert, API_NAMES, connect_timeout_s)
        if reason is None:
            break
        reasons.append(reason)
    else:
        raise ConnectError("; ".join(reasons))
    responses = stream_resumable(
        lambda connection: make_channel(addresses[connection % len(addresses)], tls, ca_cert),
        source,
        config if config is not None else pb.StreamingConfig(),
        attempts=resume_attempts,
        timeout_s=timeout_s,
        metadata=auth_metadata(api_key) if api_key else None,
        on_retry=on_retry,
    )
    return raising_stream_errors(responses)


def raising_stream_errors(
    responses: Iterator[pb.StreamingTranscribeResponse],
) -> Iterator[pb.StreamingTranscribeResponse]:
    """The responses of `stream_resumable`, its gRPC error raised as a StreamError."""
    try:
        yield from responses
    except grpc.RpcError as exc:
        raise StreamError(exc.code(), exc.details() or "") from None

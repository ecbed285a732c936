"""The Python client: stream audio to the Transcriber service and read its results.

    from hws import client

    for response in client.transcribe("talk.flac", "localhost:50051"):
        if response.HasField("result") and response.result.is_final:
            print(response.result.text)

`transcribe` is the entry point (hws.client.api); `stream_resumable` the stream beneath it. The
request and result messages of hws.transcriber.v1 are re-exported here. Installable without the
model stack (`pip install hosted-whisper-streaming`: grpcio, protobuf, PyAV).

The names load on first use (PEP 562), so that importing `hws.client.cli` loads no gRPC before
the command has silenced gRPC's own log lines (`GRPC_VERBOSITY`, read when gRPC loads).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hws.client.api import raising_stream_errors, transcribe
    from hws.client.channel import DEFAULT_PORT, auth_metadata, make_channel, reachable, with_default_port
    from hws.client.connect import check_address, connect_error
    from hws.client.errors import ClientError, ConnectError, StreamError
    from hws.client.resume import RETRYABLE, is_renewal, resume_delay, stream_resumable
    from hws.client.sources import (
        DEFAULT_CHUNK_MS,
        AudioSource,
        Chunk,
        Feed,
        Recorder,
        SourceError,
        check_recorder,
        file_source,
        frame_bytes,
        microphone_source,
        raw_source,
    )
    from hws.gen.hws.transcriber.v1.transcriber_pb2 import (
        AudioEncoding,
        ConfigUpdate,
        RecognitionConfig,
        SpeechEvent,
        SpeechResult,
        StreamingConfig,
        StreamingTranscribeRequest,
        StreamingTranscribeResponse,
        WordInfo,
    )

# Where the names live, in the order they are looked up.
_MODULES = (
    "hws.client.api",
    "hws.client.channel",
    "hws.client.connect",
    "hws.client.errors",
    "hws.client.resume",
    "hws.client.sources",
    "hws.gen.hws.transcriber.v1.transcriber_pb2",
)

__all__ = [
    "DEFAULT_CHUNK_MS",
    "DEFAULT_PORT",
    "RETRYABLE",
    "AudioEncoding",
    "AudioSource",
    "Chunk",
    "ClientError",
    "ConfigUpdate",
    "ConnectError",
    "Feed",
    "RecognitionConfig",
    "Recorder",
    "SourceError",
    "SpeechEvent",
    "SpeechResult",
    "StreamError",
    "StreamingConfig",
    "StreamingTranscribeRequest",
    "StreamingTranscribeResponse",
    "WordInfo",
    "auth_metadata",
    "check_address",
    "check_recorder",
    "connect_error",
    "file_source",
    "frame_bytes",
    "is_renewal",
    "make_channel",
    "microphone_source",
    "raising_stream_errors",
    "raw_source",
    "reachable",
    "resume_delay",
    "stream_resumable",
    "transcribe",
    "with_default_port",
]


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'hws.client' has no attribute {name!r}")
    for module in map(importlib.import_module, _MODULES):
        if hasattr(module, name):
            globals()[name] = value = getattr(module, name)
            return value
    raise AttributeError(f"hws.client.{name} is listed but defined nowhere")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

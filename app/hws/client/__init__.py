"""The Python client: stream audio to the Transcriber service and read its results.

    from hws import client

    channel = client.make_channel("localhost:50051")
    source = client.file_source("talk.flac")
    for response in client.stream_resumable(lambda attempt: channel, source, client.StreamingConfig()):
        ...

Installable without the model stack (`pip install hosted-whisper-streaming`: grpcio, protobuf, PyAV);
the request and result messages of hws.transcriber.v1 are re-exported here.
"""

from hws.client.channel import DEFAULT_PORT, auth_metadata, make_channel, reachable, with_default_port
from hws.client.resume import RETRYABLE, resume_delay, stream_resumable
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

__all__ = [
    "DEFAULT_CHUNK_MS",
    "DEFAULT_PORT",
    "RETRYABLE",
    "AudioEncoding",
    "AudioSource",
    "Chunk",
    "ConfigUpdate",
    "Feed",
    "RecognitionConfig",
    "Recorder",
    "SourceError",
    "SpeechEvent",
    "SpeechResult",
    "StreamingConfig",
    "StreamingTranscribeRequest",
    "StreamingTranscribeResponse",
    "WordInfo",
    "auth_metadata",
    "check_recorder",
    "file_source",
    "frame_bytes",
    "make_channel",
    "microphone_source",
    "raw_source",
    "reachable",
    "resume_delay",
    "stream_resumable",
    "with_default_port",
]

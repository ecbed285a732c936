"""Streaming over real gRPC: configs, request streams, one stream run to its end, its finals; and the
utterances the server must finalise for some audio (its own segmenter, run here)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from tests.support.audio import RATE, chunked, clip_pcm16, from_pcm16

if TYPE_CHECKING:
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb


def streaming_config(rate: int = RATE, **recognition: object) -> pb.StreamingConfig:
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    interim = bool(recognition.pop("interim_results", False))
    events = bool(recognition.pop("speech_events", False))
    return pb.StreamingConfig(
        recognition=pb.RecognitionConfig(sample_rate_hz=rate, **recognition),  # type: ignore[arg-type]
        interim_results=interim,
        speech_events=events,
    )


def requests(
    config: pb.StreamingConfig | None, chunks: Iterable[bytes], pace_s: float = 0.0
) -> Iterator[pb.StreamingTranscribeRequest]:
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    if config is not None:
        yield pb.StreamingTranscribeRequest(config=config)
    for chunk in chunks:
        yield pb.StreamingTranscribeRequest(audio=chunk)
        if pace_s:
            time.sleep(pace_s)


def stream(
    address: str, request_iter: Iterable[pb.StreamingTranscribeRequest], timeout: float = 120.0
) -> list[pb.StreamingTranscribeResponse]:
    """Run one stream to its end; raises grpc.RpcError on a non-OK status."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        return list(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(request_iter), timeout=timeout))


def stream_clip(
    address: str, name: str, config: pb.StreamingConfig | None = None, chunk_ms: int = 100, pace: bool = False
) -> list[pb.StreamingTranscribeResponse]:
    config = config or streaming_config()
    pcm = clip_pcm16(name)
    return stream(address, requests(config, chunked(pcm, 32 * chunk_ms), chunk_ms / 1000 if pace else 0.0))


def finals(responses: Iterable[pb.StreamingTranscribeResponse]) -> list[pb.SpeechResult]:
    return [r.result for r in responses if r.WhichOneof("response") == "result" and r.result.is_final]


def final_text(responses: Iterable[pb.StreamingTranscribeResponse]) -> str:
    return " ".join(result.text for result in finals(responses))


def expected_utterances(pcm: bytes) -> list[str]:
    """The utterance ids the server must finalise for this audio: its own segmenter, run here."""
    from hws.audio import TARGET_RATE
    from hws.stream.vad import Segmenter, SpeechEnd, VadParams

    samples = from_pcm16(pcm)
    segmenter = Segmenter(VadParams())
    events = segmenter.feed(samples) + segmenter.finish()
    return [f"u{e.start * 1000 // TARGET_RATE}" for e in events if isinstance(e, SpeechEnd)]


# The labels of the streaming call's series in grpc_server_* (go-grpc-prometheus's).
STREAMING_CALL_LABELS = {
    "grpc_type": "bidi_stream",
    "grpc_service": "hws.transcriber.v1.Transcriber",
    "grpc_method": "StreamingTranscribe",
}

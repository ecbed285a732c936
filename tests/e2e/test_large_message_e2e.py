"""A message of minutes of audio is taken in off the event loop, a slice at a time, and reads as the same
audio streamed in small messages does (scripts/bench_large_message.py measures the health checks beside it)."""

from __future__ import annotations

import grpc

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.stream.session import LARGE_MESSAGE_BYTES
from tests.support import ServerProcess, chunked, clip_pcm16, g711


def _finals(address: str, messages: list[bytes]) -> list[tuple[str, float, float]]:
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=8000, encoding=pb.MULAW))
    requests = [
        pb.StreamingTranscribeRequest(config=config),
        *(pb.StreamingTranscribeRequest(audio=m) for m in messages),
    ]
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        responses = list(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(requests), timeout=120))
    return [(r.result.text, r.result.start_s, r.result.end_s) for r in responses if r.result.is_final]


def test_a_message_of_minutes_reads_as_the_same_audio_in_small_messages(live_server: ServerProcess) -> None:
    speech = g711.encode(clip_pcm16("jfk.flac", rate=8000))
    silence = b"\xff" * 8000 * 20  # MULAW's zero
    audio = (speech + silence) * 4  # 2 minutes, over 3x LARGE_MESSAGE_BYTES
    assert len(audio) > 3 * LARGE_MESSAGE_BYTES
    whole = _finals(live_server.address, [audio])
    assert whole == _finals(live_server.address, chunked(audio, 800))  # 100 ms messages
    assert len(whole) >= 4 and all("country" in text for text, _, _ in whole[1::2]), whole

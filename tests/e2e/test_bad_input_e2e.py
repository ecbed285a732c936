"""Every kind of bad input gets a specific status and a message that says what to fix; the server keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import (
    ServerProcess,
    chunked,
    clip_pcm16,
    final_text,
    finals,
    requests,
    stream,
    stream_clip,
    streaming_config,
)

AUDIO = pb.StreamingTranscribeRequest(audio=b"\x00\x00" * 1600)


def expect_status(
    address: str, request_iter: Iterator[pb.StreamingTranscribeRequest] | list, code: grpc.StatusCode, words: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stream(address, request_iter, timeout=30)
    assert info.value.code() == code, info.value.details()
    assert words in info.value.details(), info.value.details()


def test_audio_before_config(server: ServerProcess) -> None:
    expect_status(server.address, [AUDIO], grpc.StatusCode.INVALID_ARGUMENT, "first message must carry config")


def test_empty_stream(server: ServerProcess) -> None:
    expect_status(server.address, [], grpc.StatusCode.INVALID_ARGUMENT, "ended before its config")


def test_request_with_nothing_set(server: ServerProcess) -> None:
    reqs = [pb.StreamingTranscribeRequest(config=streaming_config()), pb.StreamingTranscribeRequest()]
    expect_status(server.address, reqs, grpc.StatusCode.INVALID_ARGUMENT, "neither config nor audio")


@pytest.mark.parametrize(
    ("recognition", "words"),
    [
        ({"encoding": 7}, "unknown audio encoding"),
        ({"sample_rate_hz": 4000}, "sample_rate_hz must be between 8000 and 48000"),
        ({"sample_rate_hz": 96000}, "sample_rate_hz must be between 8000 and 48000"),
        ({"sample_rate_hz": 0}, "sample_rate_hz must be between 8000 and 48000"),
        ({"audio_channel_count": 6}, "audio_channel_count must be 1 or 2"),
        ({"language": "fr"}, "English-only"),
        ({"language": "xx"}, "unknown language code"),
        ({"language": "\u212am"}, "unknown language code"),  # a Kelvin sign, which lower() made Khmer's "km"
        ({"vad_aggressiveness": 4}, "vad_aggressiveness must be 0-3"),
        ({"endpoint_silence_ms": 50}, "endpoint_silence_ms must be 100-5000"),
        ({"max_utterance_s": 45}, "max_utterance_s must be 1-30"),
        ({"initial_prompt": "x" * 1001}, "the limit is 1000"),
        ({"hotwords": ["w"] * 51}, "the limit is 50"),
        ({"hotwords": ["w" * 101]}, "longer than 100"),
    ],
)
def test_invalid_config(server: ServerProcess, recognition: dict, words: str) -> None:
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(**{"sample_rate_hz": 16000, **recognition}))
    expect_status(
        server.address, [pb.StreamingTranscribeRequest(config=config), AUDIO], grpc.StatusCode.INVALID_ARGUMENT, words
    )


def test_odd_byte_count_after_speech_delivers_finals_then_fails(server: ServerProcess) -> None:
    pcm = clip_pcm16("synth_weather.wav")
    received: list[pb.StreamingTranscribeResponse] = []

    def reqs() -> Iterator[pb.StreamingTranscribeRequest]:
        yield from requests(streaming_config(), chunked(pcm, 3200))
        yield pb.StreamingTranscribeRequest(audio=b"\x01\x02\x03")

    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

        for response in pb_grpc.TranscriberStub(channel).StreamingTranscribe(reqs(), timeout=60):
            received.append(response)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "multiple of 2 bytes" in info.value.details()
    assert finals(received) and "cloudy" in final_text(received).lower(), (
        "audio before the bad chunk is still transcribed"
    )


def test_empty_chunk(server: ServerProcess) -> None:
    reqs = [pb.StreamingTranscribeRequest(config=streaming_config()), pb.StreamingTranscribeRequest(audio=b"")]
    expect_status(server.address, reqs, grpc.StatusCode.INVALID_ARGUMENT, "empty audio chunk")


def test_oversized_message(server: ServerProcess) -> None:
    reqs = [
        pb.StreamingTranscribeRequest(config=streaming_config()),
        pb.StreamingTranscribeRequest(audio=b"\x00" * (5 * 1024 * 1024)),
    ]
    with pytest.raises(grpc.RpcError) as info:
        stream(server.address, reqs, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()


def _silent_after(
    prefix: list[pb.StreamingTranscribeRequest], release: threading.Event
) -> Iterator[pb.StreamingTranscribeRequest]:
    yield from prefix
    release.wait(30)


@pytest.mark.parametrize("send_config", [False, True])
def test_stream_that_sends_nothing_times_out(server: ServerProcess, send_config: bool) -> None:
    release = threading.Event()
    prefix = [pb.StreamingTranscribeRequest(config=streaming_config())] if send_config else []
    try:
        expected = "no message received for 3 s" if send_config else "no config received within 3 s"
        expect_status(server.address, _silent_after(prefix, release), grpc.StatusCode.DEADLINE_EXCEEDED, expected)
    finally:
        release.set()


def test_client_disconnect_mid_utterance_leaves_server_healthy(server: ServerProcess) -> None:
    pcm = clip_pcm16("synth_dialogue_clean.wav")
    with grpc.insecure_channel(server.address) as channel:
        from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
            requests(streaming_config(interim_results=True), chunked(pcm[: 32000 * 3], 3200), pace_s=0.1), timeout=60
        )
        time.sleep(2.0)  # mid-utterance: speech runs from 0 to 5.4 s
        call.cancel()
    # Everyone else is still served.
    assert "cloudy" in final_text(stream_clip(server.address, "synth_weather.wav")).lower()


def test_more_streams_than_the_limit(log_dir) -> None:
    limited = ServerProcess(args=["--max-streams", "2"]).start(log_dir)
    release = threading.Event()
    calls = []
    try:
        with grpc.insecure_channel(limited.address) as channel:
            from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

            stub = pb_grpc.TranscriberStub(channel)
            prefix = [pb.StreamingTranscribeRequest(config=streaming_config()), AUDIO]
            calls = [stub.StreamingTranscribe(_silent_after(prefix, release), timeout=30) for _ in range(2)]
            time.sleep(1.0)  # both admitted
            with pytest.raises(grpc.RpcError) as info:
                list(stub.StreamingTranscribe(iter(prefix), timeout=30))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit of 2 concurrent streams" in info.value.details()
            release.set()
            for call in calls:
                list(call)  # the admitted streams end normally
            assert "cloudy" in final_text(stream_clip(limited.address, "synth_weather.wav")).lower()
    finally:
        release.set()
        limited.stop()


# A message whose audio field claims 16 bytes and carries 3: protobuf cannot parse it.
MALFORMED = b"\x12\x10abc"
STREAMING = "/hws.transcriber.v1.Transcriber/StreamingTranscribe"


def _raw_stream(address: str, method: str, messages: list[bytes], release: threading.Event) -> grpc.RpcError:
    """Send pre-serialised messages, then hold the stream open (as a hostile client would) until the server ends it."""

    def held_open() -> Iterator[bytes]:
        yield from messages
        release.wait(30)

    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            list(call(held_open(), timeout=20))
    return info.value


@pytest.mark.parametrize(
    ("method", "first"),
    [
        (STREAMING, pb.StreamingTranscribeRequest(config=streaming_config())),
        ("/AudioTranscriberService/TranscribeAudio", None),
    ],
)
def test_unparseable_message_after_config_fails_at_once_and_frees_the_slot(
    log_dir, method: str, first: pb.StreamingTranscribeRequest | None
) -> None:
    # One slot: if the malformed stream kept it, the stream after it would be refused.
    limited = ServerProcess(args=["--max-streams", "1", "--stream-idle-timeout-s", "30"]).start(log_dir)
    release = threading.Event()
    try:
        messages = ([first.SerializeToString()] if first is not None else []) + [MALFORMED]
        started = time.monotonic()
        error = _raw_stream(limited.address, method, messages, release)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "could not be parsed" in error.details()
        assert time.monotonic() - started < 10, "the status comes at once, not after the idle timeout"
        assert "cloudy" in final_text(stream_clip(limited.address, "synth_weather.wav")).lower()
        assert "Task exception was never retrieved" not in limited.log()
    finally:
        release.set()
        limited.stop()


def test_unparseable_first_message_is_invalid_argument(server: ServerProcess) -> None:
    release = threading.Event()
    release.set()
    error = _raw_stream(server.address, STREAMING, [MALFORMED], release)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "could not be parsed" in error.details()


@pytest.mark.parametrize(
    "method",
    [
        "/hws.transcriber.v1.Transcriber/Transcribe",
        "/hws.transcriber.v1.Transcriber/Ready",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    ],
)
def test_an_unparseable_unary_request_is_invalid_argument(server: ServerProcess, method: str) -> None:
    with grpc.insecure_channel(server.address) as channel:
        if method.endswith("Watch"):
            call = channel.unary_stream(method, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as info:
                list(call(MALFORMED, timeout=20))
        else:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as info:
                call(MALFORMED, timeout=20)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "could not be parsed" in info.value.details()


def test_streams_that_send_no_config_hold_no_slot_and_no_drain(log_dir) -> None:
    limited = ServerProcess(args=["--max-streams", "1", "--config-timeout-s", "4", "--grace-period-s", "30"])
    limited.start(log_dir)
    assert limited.process is not None
    release = threading.Event()
    try:
        with grpc.insecure_channel(limited.address) as channel:
            from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

            stub = pb_grpc.TranscriberStub(channel)
            silent = [stub.StreamingTranscribe(_silent_after([], release), timeout=30) for _ in range(4)]
            time.sleep(0.5)
            # The one slot is free for a stream that sends its config.
            assert "cloudy" in final_text(stream_clip(limited.address, "synth_weather.wav")).lower()
            for call in silent:
                with pytest.raises(grpc.RpcError) as info:
                    list(call)
                assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "no config received within 4 s" in info.value.details()
            # SIGTERM does not wait out the grace period for a stream that never sent a config.
            waiting = stub.StreamingTranscribe(_silent_after([], release), timeout=60)
            time.sleep(0.5)
            started = time.monotonic()
            limited.process.terminate()
            limited.process.wait(timeout=25)
            assert time.monotonic() - started < 25
            with pytest.raises(grpc.RpcError):
                list(waiting)
    finally:
        release.set()
        limited.stop()


def test_a_long_client_string_is_not_echoed_whole(server: ServerProcess) -> None:
    config = streaming_config()
    config.recognition.language = "x" * 100_000
    expect_status(
        server.address, [pb.StreamingTranscribeRequest(config=config)], grpc.StatusCode.INVALID_ARGUMENT, "language"
    )
    with pytest.raises(grpc.RpcError) as info:
        stream(server.address, [pb.StreamingTranscribeRequest(config=config)], timeout=30)
    assert len(info.value.details()) < 300 and "(100000 characters)" in info.value.details()

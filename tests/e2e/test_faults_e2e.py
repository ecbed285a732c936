"""Faults inside the server fail only what they touch, and health tells the truth about them."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from tests.support import (
    ServerProcess,
    chunked,
    clip_pcm16,
    final_text,
    requests,
    stream,
    stream_clip,
    streaming_config,
)

FAULTY = streaming_config(initial_prompt="HWS-FAULT")  # the fault-injection marker


def test_a_decode_that_raises_fails_only_its_stream(log_dir: Path) -> None:
    server = ServerProcess(args=["--fault-injection", "raise"]).start(log_dir)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            healthy = pool.submit(stream_clip, server.address, "synth_dialogue_clean.wav")
            time.sleep(0.5)
            with pytest.raises(grpc.RpcError) as info:
                stream_clip(server.address, "synth_weather.wav", FAULTY)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "decoding failed" in info.value.details()
            assert len([r for r in healthy.result() if r.result.is_final]) == 6, "the other stream went on"
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
        assert "cloudy" in final_text(stream_clip(server.address, "synth_weather.wav")).lower()
    finally:
        server.stop()


def test_a_stuck_decode_trips_the_watchdog(log_dir: Path) -> None:
    server = ServerProcess(args=["--fault-injection", "hang:6", "--decode-timeout-s", "1.5"]).start(log_dir)
    try:
        with pytest.raises(grpc.RpcError) as info:
            stream_clip(server.address, "synth_weather.wav", FAULTY)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "ran longer than 1.5 s" in info.value.details()
        # Stuck: not ready for new work, and saying so.
        assert server.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as ready:
            pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=5)
        assert ready.value.code() == grpc.StatusCode.UNAVAILABLE and "stuck" in ready.value.details()
        # The decode returns: the engine recovers by itself.
        deadline = time.monotonic() + 15
        while server.health() != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.health() == health_pb2.HealthCheckResponse.SERVING
        assert "cloudy" in final_text(stream_clip(server.address, "synth_weather.wav")).lower()
        assert '"event": "decode_stalled"' in server.log() and '"event": "decode_recovered"' in server.log()
    finally:
        server.stop()


def test_a_model_that_cannot_load_keeps_health_not_serving_and_says_why(log_dir: Path) -> None:
    # A hub model with the hub out of reach: a failure that can heal, so the load is retried (asked to wait).
    server = ServerProcess(
        args=["--model", "Systran/faster-whisper-no-such-model", "--model-load-wait", "true"],
        env={"HF_HUB_OFFLINE": "1"},
    )
    server.start(log_dir, wait=False)
    try:
        deadline = time.monotonic() + 30
        while '"event": "model_load_failed"' not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert '"event": "model_load_failed"' in server.log()
        assert server.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            stream_clip(server.address, "synth_weather.wav")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details().startswith("the model failed to load (ModelUnavailable: ")
        assert info.value.details().endswith("); retrying")
        with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
            pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "failed to load" in info.value.details()
    finally:
        server.stop()


def test_a_stream_the_server_cannot_keep_up_with_is_told_with_a_retry_hint(log_dir: Path) -> None:
    # Every final decode of this stream takes 3 s; it sends six utterances as fast as it can.
    server = ServerProcess(args=["--fault-injection", "hang:3", "--backlog-timeout-s", "1"]).start(log_dir)
    try:
        pcm = clip_pcm16("synth_dialogue_clean.wav")
        with pytest.raises(grpc.RpcError) as info:
            stream(server.address, requests(FAULTY, chunked(pcm, 3200)), timeout=60)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "behind" in info.value.details()
        assert ("grpc-retry-pushback-ms", "1000") in tuple(info.value.trailing_metadata())
    finally:
        server.stop()


def test_stream_limit_refusal_carries_a_retry_hint(log_dir: Path) -> None:
    server = ServerProcess(args=["--max-streams", "1"]).start(log_dir)
    release = threading.Event()

    def held():
        yield pb.StreamingTranscribeRequest(config=streaming_config())
        release.wait(20)

    try:
        with grpc.insecure_channel(server.address) as channel:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(held(), timeout=30)
            time.sleep(0.5)
            with pytest.raises(grpc.RpcError) as info:
                stream(server.address, [pb.StreamingTranscribeRequest(config=streaming_config())])
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert ("grpc-retry-pushback-ms", "1000") in tuple(info.value.trailing_metadata())
            release.set()
            list(call)
    finally:
        release.set()
        server.stop()

"""SIGTERM: health goes NOT_SERVING, new streams are refused, open streams get their finals, the process exits."""

from __future__ import annotations

import threading
import time

import grpc
from grpc_health.v1 import health_pb2

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from tests.support import ServerProcess, chunked, clip_pcm16, requests, streaming_config


def test_sigterm_drains_open_streams(log_dir) -> None:
    server = ServerProcess(args=["--grace-period-s", "20"]).start(log_dir)
    pcm = clip_pcm16("synth_dialogue_clean.wav")
    outcomes: list[tuple[list[pb.SpeechResult], grpc.StatusCode | None, str]] = []
    lock = threading.Lock()

    def client() -> None:
        results: list[pb.SpeechResult] = []
        code, details = None, ""
        with grpc.insecure_channel(server.address) as channel:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
                requests(streaming_config(), chunked(pcm, 3200), pace_s=0.1), timeout=90
            )
            try:
                for response in call:
                    if response.WhichOneof("response") == "result" and response.result.is_final:
                        results.append(response.result)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details()
        with lock:
            outcomes.append((results, code, details))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(9.0)  # first utterance (0-5.4 s) done, second (6.4-12.8 s) in progress
    server.terminate()
    deadline = time.monotonic() + 5
    while server.health() not in (health_pb2.HealthCheckResponse.NOT_SERVING, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = server.health()
    assert status in (health_pb2.HealthCheckResponse.NOT_SERVING, None)
    for thread in threads:
        thread.join(60)
    assert server.process is not None
    assert server.process.wait(30) == 0, server.log()

    assert len(outcomes) == 3
    for results, code, details in outcomes:
        assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
        assert "shutting down" in details
        # The finished utterance and the one in progress at SIGTERM both got their finals.
        assert len(results) == 2, [r.text for r in results]
        assert "cloudy" in results[0].text.lower()
        assert results[1].start_s > results[0].end_s and results[1].text
    log = server.log()
    assert '"event": "draining"' in log and '"event": "stopped"' in log


def test_new_streams_refused_while_draining(log_dir) -> None:
    server = ServerProcess(args=["--grace-period-s", "10"]).start(log_dir)
    release = threading.Event()

    def held() -> object:
        yield pb.StreamingTranscribeRequest(config=streaming_config())
        yield pb.StreamingTranscribeRequest(audio=b"\x00\x00" * 1600)
        release.wait(20)

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranscriberStub(channel)
        open_call = stub.StreamingTranscribe(held(), timeout=30)
        time.sleep(1.0)
        server.terminate()
        time.sleep(0.5)
        try:
            list(stub.StreamingTranscribe(iter([pb.StreamingTranscribeRequest(config=streaming_config())]), timeout=10))
            raise AssertionError("a new stream was accepted while draining")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
        try:
            stub.Ready(pb.ReadyRequest(), timeout=5)
            raise AssertionError("Ready answered OK while draining")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        release.set()
        try:
            list(open_call)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
    assert server.process is not None and server.process.wait(30) == 0

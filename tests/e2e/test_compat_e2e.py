"""Clients of the original AudioTranscriberService work unchanged, through the same pipeline."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2

from tests.support import ServerProcess, chunked, clip_pcm16, final_text, manifest, stream_clip, wer

# A client generated from exactly the original .proto, as its users have it, not from our copy.
ORIGINAL_PROTO = """
syntax = "proto3";

service AudioTranscriberService {
  rpc TranscribeAudio (stream AudioRequest) returns (stream TranscriptionResponse) {}
}
service HealthCheckService {
  rpc Check (HealthCheckRequest) returns (HealthCheckResponse) {}
}
message AudioRequest { bytes audio_data = 1; }
message TranscriptionResponse { string transcription = 1; double start_time = 2; double end_time = 3; }
message HealthCheckRequest {}
message HealthCheckResponse { int32 status_code = 1; }
"""

CLIPS = [
    "synth_dialogue_clean.wav",
    "jfk.flac",
    "ls_1089-134686-0000.flac",
    "ls_2830-3980-0043.wav",
    "synth_support.wav",
]


class Original:
    """A client for exactly the original .proto: compiled by protoc, its messages in a private descriptor pool.

    The original protocol has no package, so its generated modules would clash in protobuf's default
    pool with the server's own copy once any test imported the server; the stubs are what grpc's
    generated code would build: the method paths with the messages' serializers.
    """

    def __init__(self, folder: Path) -> None:
        (folder / "original.proto").write_text(ORIGINAL_PROTO)
        descriptor_set = folder / "original.pb"
        command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{folder}", f"--descriptor_set_out={descriptor_set}"]
        subprocess.run([*command, "original.proto"], check=True)
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
        messages = message_factory.GetMessages(list(files), pool=descriptor_pool.DescriptorPool())
        self.AudioRequest = messages["AudioRequest"]
        self.TranscriptionResponse = messages["TranscriptionResponse"]
        self.HealthCheckRequest = messages["HealthCheckRequest"]
        self.HealthCheckResponse = messages["HealthCheckResponse"]

    def transcribe(self, channel: grpc.Channel) -> grpc.StreamStreamMultiCallable:
        return channel.stream_stream(
            "/AudioTranscriberService/TranscribeAudio",
            request_serializer=self.AudioRequest.SerializeToString,
            response_deserializer=self.TranscriptionResponse.FromString,
        )

    def check(self, channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
        return channel.unary_unary(
            "/HealthCheckService/Check",
            request_serializer=self.HealthCheckRequest.SerializeToString,
            response_deserializer=self.HealthCheckResponse.FromString,
        )


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    return Original(tmp_path_factory.mktemp("original"))


def original_stream(original: Original, address: str, pcm: bytes, size: int = 3200, pace_s: float = 0.0) -> list:
    def audio():
        for chunk in chunked(pcm, size):  # 100 ms messages, as the original client sends
            yield original.AudioRequest(audio_data=chunk)
            if pace_s:
                time.sleep(pace_s)

    with grpc.insecure_channel(address) as channel:
        return list(original.transcribe(channel)(audio(), timeout=120))


@pytest.mark.parametrize("clip", CLIPS)
def test_original_client_gets_the_main_interfaces_finals(server: ServerProcess, original: Original, clip: str) -> None:
    responses = original_stream(original, server.address, clip_pcm16(clip))
    assert responses and all(r.transcription for r in responses)
    assert " ".join(r.transcription for r in responses) == final_text(stream_clip(server.address, clip))


def test_short_utterances_are_not_dropped(server: ServerProcess, original: Original) -> None:
    # The original dropped utterances under 1 s and cut at the first non-speech frame.
    clip = "ls_1089-134691-0000.flac"  # "He could wait no longer"
    responses = original_stream(original, server.address, clip_pcm16(clip))
    assert wer(manifest()[clip], " ".join(r.transcription for r in responses)) <= 0.2


def test_odd_sized_messages_are_joined(server: ServerProcess, original: Original) -> None:
    responses = original_stream(original, server.address, clip_pcm16("jfk.flac"), size=3201)
    assert " ".join(r.transcription for r in responses) == final_text(stream_clip(server.address, "jfk.flac"))


def test_times_are_wall_clock_of_speech_start_and_sending(server: ServerProcess, original: Original) -> None:
    before = time.time()
    pcm = clip_pcm16("synth_dialogue_clean.wav")[: 32000 * 14]  # two utterances: 0-5.4 s and 6.4-12.8 s
    responses = original_stream(original, server.address, pcm, pace_s=0.1)
    after = time.time()
    assert len(responses) == 2
    first, second = responses
    assert before <= first.start_time < first.end_time <= second.end_time <= after
    assert 5.5 <= second.start_time - before <= 7.5  # its speech arrived 6.4 s into a real-time stream
    assert first.end_time - first.start_time >= 5.0  # a 5.4 s utterance is final only after it is spoken


def test_health_adapter_says_unavailable_while_the_model_cannot_load(original: Original, log_dir: Path) -> None:
    # A hub model with the hub out of reach: a failure that can heal, so the server runs and retries (asked to wait).
    server = ServerProcess(
        args=["--model", "Systran/faster-whisper-no-such-model", "--model-load-wait", "true"],
        env={"HF_HUB_OFFLINE": "1"},
    )
    server.start(log_dir, wait=False)
    try:
        deadline = time.monotonic() + 30
        details = ""
        with grpc.insecure_channel(server.address) as channel:
            check = original.check(channel)
            while time.monotonic() < deadline and "failed to load" not in details:
                try:
                    check(original.HealthCheckRequest(), timeout=2)
                    raise AssertionError("the original Check answered OK while the model could not load")
                except grpc.RpcError as exc:
                    details = exc.details() or "" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
                time.sleep(0.2)
        assert "failed to load" in details
        assert server.health() == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop()


def test_health_adapter_follows_serving_and_drain(original: Original, log_dir: Path) -> None:
    server = ServerProcess(args=["--grace-period-s", "10"]).start(log_dir)
    release = threading.Event()

    def held():
        yield original.AudioRequest(audio_data=b"\x00\x00" * 1600)
        release.wait(20)

    with grpc.insecure_channel(server.address) as channel:
        check = original.check(channel)
        assert check(original.HealthCheckRequest(), timeout=5).status_code == 12
        call = original.transcribe(channel)(held(), timeout=30)
        time.sleep(0.5)
        server.terminate()  # draining: the open stream keeps the server up for a moment
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as info:
            check(original.HealthCheckRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        release.set()
        with pytest.raises(grpc.RpcError):
            list(call)
    assert server.process is not None and server.process.wait(30) == 0


def test_compat_can_be_turned_off(original: Original, log_dir: Path) -> None:
    server = ServerProcess(args=["--compat", "false"]).start(log_dir)
    try:
        with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
            original.check(channel)(original.HealthCheckRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop()

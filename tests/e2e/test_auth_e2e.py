"""API keys: without a valid key every call but the health checks is UNAUTHENTICATED; with one, streams work.

The server under test is the real process started with --api-keys-file; a
second part runs the interceptor in-process on a toy service to cover all four
RPC kinds (the Transcriber service has no client-streaming method).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hws.client import auth_metadata
from hws.gen.compat import audio_transcriber_pb2 as compat_pb
from hws.gen.compat import audio_transcriber_pb2_grpc as compat_grpc
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.server.auth import (
    REFUSALS_LOGGED_IN_FULL,
    UNAUTHENTICATED_MESSAGE,
    ApiKeyInterceptor,
    api_keys,
    load_api_keys,
)
from tests.support import EVAL_DIR, ROOT, ServerProcess, chunked, clip_pcm16, final_text, requests, streaming_config

KEYS = [secrets.token_urlsafe(24), secrets.token_urlsafe(24)]
WRONG = secrets.token_urlsafe(24)
CLIP = "synth_weather.wav"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("auth")
    keys_file = folder / "keys.txt"
    keys_file.write_text(f"# production keys\n\n{KEYS[0]}\n  {KEYS[1]}  \n", encoding="utf-8")
    process = ServerProcess(args=["--api-keys-file", str(keys_file), "--stream-idle-timeout-s", "5"]).start(folder)
    yield process
    process.stop()


def _stream(address: str, metadata: list[tuple[str, str]] | None) -> list[pb.StreamingTranscribeResponse]:
    pcm = clip_pcm16(CLIP)
    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
            requests(streaming_config(), chunked(pcm, 3200)), timeout=120, metadata=metadata
        )
        return list(call)


def _refused(action: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        action()  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    details = info.value.details() or ""
    assert details == UNAUTHENTICATED_MESSAGE
    assert not any(key in details for key in [*KEYS, WRONG])
    return info.value


BAD_METADATA = {
    "none": None,
    "wrong bearer": [("authorization", f"Bearer {WRONG}")],
    "wrong x-api-key": [("x-api-key", WRONG)],
    "key without scheme": [("authorization", KEYS[0])],
    "other scheme": [("authorization", f"Basic {KEYS[0]}")],
    "empty bearer": [("authorization", "Bearer ")],
    "key prefix": [("x-api-key", KEYS[0][:-1])],
    "key plus suffix": [("x-api-key", KEYS[0] + "x")],
}


@pytest.mark.parametrize("metadata", BAD_METADATA.values(), ids=BAD_METADATA.keys())
def test_no_or_wrong_key_is_refused_everywhere(
    auth_server: ServerProcess, metadata: list[tuple[str, str]] | None
) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        stub = pb_grpc.TranscriberStub(channel)
        _refused(lambda: _stream(auth_server.address, metadata))
        request = pb.TranscribeRequest(config=pb.RecognitionConfig(sample_rate_hz=16000), audio=b"\0\0" * 1600)
        _refused(lambda: stub.Transcribe(request, timeout=30, metadata=metadata))
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        _refused(lambda: list(reflect.ServerReflectionInfo(iter([listing]), timeout=30, metadata=metadata)))
        compat = compat_grpc.AudioTranscriberServiceStub(channel)
        audio = iter([compat_pb.AudioRequest(audio_data=b"\0\0" * 1600)])
        _refused(lambda: list(compat.TranscribeAudio(audio, timeout=30, metadata=metadata)))


def test_unauthenticated_payload_is_not_parsed(auth_server: ServerProcess) -> None:
    """Garbage bytes without a key get UNAUTHENTICATED, not a parse error: the payload is never deserialised."""
    with grpc.insecure_channel(auth_server.address) as channel:
        raw = channel.unary_unary("/hws.transcriber.v1.Transcriber/Transcribe")
        _refused(lambda: raw(b"\xff\xff\xff\xff not a protobuf", timeout=30))


@pytest.mark.parametrize(
    "metadata",
    [
        auth_metadata(KEYS[0]),
        [("x-api-key", KEYS[1])],
        [("authorization", f"bearer   {KEYS[1]}")],  # the scheme is case-insensitive (RFC 7235)
        [("x-api-key", WRONG), ("authorization", f"Bearer {KEYS[0]}")],  # one valid key among others is enough
    ],
    ids=["bearer", "x-api-key", "lowercase-bearer", "wrong-and-right"],
)
def test_valid_key_transcribes(auth_server: ServerProcess, metadata: list[tuple[str, str]]) -> None:
    assert "cloudy" in final_text(_stream(auth_server.address, metadata)).lower()


def test_health_checks_need_no_key(auth_server: ServerProcess) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(iter(watch)).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        # Serving or not is all a caller without a key learns: Ready answers OK with the model and device
        # left empty; with a valid key it names them.
        ready = pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10)
        assert ready == pb.ReadyResponse()
        wrong = pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10, metadata=[("x-api-key", WRONG)])
        assert wrong == pb.ReadyResponse()
        keyed = pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10, metadata=auth_metadata(KEYS[0]))
        assert keyed.model == "tiny.en-embedded" and keyed.device == "cpu"
        compat = compat_grpc.HealthCheckServiceStub(channel).Check(compat_pb.HealthCheckRequest(), timeout=10)
        assert compat.status_code == 12


def test_refusals_are_counted_in_metrics(auth_server: ServerProcess) -> None:
    """The metrics interceptor is outside the auth one, so refused calls show up as grpc_code UNAUTHENTICATED."""
    with grpc.insecure_channel(auth_server.address) as channel:
        _refused(lambda: pb_grpc.TranscriberStub(channel).Transcribe(pb.TranscribeRequest(), timeout=10))
    refused = {
        labels: value
        for (name, labels), value in auth_server.metrics().items()
        if name == "grpc_server_handled_total" and dict(labels).get("grpc_code") == "UNAUTHENTICATED"
    }
    assert any(dict(labels)["grpc_method"] == "Transcribe" and value >= 1 for labels, value in refused.items()), refused


def test_refusals_are_logged_without_keys(auth_server: ServerProcess) -> None:
    with grpc.insecure_channel(auth_server.address) as channel:
        stub = pb_grpc.TranscriberStub(channel)
        _refused(lambda: stub.Transcribe(pb.TranscribeRequest(), timeout=10, metadata=[("x-api-key", WRONG)]))
    log = auth_server.log()
    assert '"event": "unauthenticated"' in log and '"key_sent": true' in log
    assert not any(key in log for key in [*KEYS, WRONG])


def test_refusal_log_is_bounded_and_summarised(tmp_path: Path) -> None:
    """A flood of calls without a key logs the first few refusals in full, then one summary line with the count
    (at the end of each minute, or when the server stops) instead of a line per call."""
    calls = 300
    flooded = ServerProcess(env={"HWS_API_KEYS": KEYS[0]}).start(tmp_path)
    try:
        with grpc.insecure_channel(flooded.address) as channel:
            stub = pb_grpc.TranscriberStub(channel)
            for number in range(calls):
                metadata = [("x-api-key", WRONG)] if number % 2 else None
                _refused(lambda md=metadata: stub.Transcribe(pb.TranscribeRequest(), timeout=10, metadata=md))
    finally:
        assert flooded.stop() == 0
    events = [json.loads(line) for line in flooded.log().splitlines()]
    full = [event for event in events if event["event"] == "unauthenticated"]
    summaries = [event for event in events if event["event"] == "unauthenticated_suppressed"]
    assert 1 <= len(full) <= REFUSALS_LOGGED_IN_FULL, len(full)
    assert 1 <= len(summaries) <= 3, summaries  # one a minute and one at the stop; the flood takes seconds
    assert len(full) + sum(summary["count"] for summary in summaries) == calls, summaries
    assert summaries[-1]["peers"] == {"ipv4:127.0.0.1": summaries[-1]["count"]}
    assert not any(key in flooded.log() for key in [*KEYS, WRONG])


def test_env_keys_and_fail_closed_startup(tmp_path: Path) -> None:
    """HWS_API_KEYS works when no file is set; a key source with no keys stops the server instead of opening it."""
    env_server = ServerProcess(env={"HWS_API_KEYS": f" {KEYS[1]} ,,{KEYS[0]}"}).start(tmp_path)
    try:
        with grpc.insecure_channel(env_server.address) as channel:
            stub = pb_grpc.TranscriberStub(channel)
            request = pb.TranscribeRequest(config=pb.RecognitionConfig(sample_rate_hz=16000), audio=b"\0\0" * 1600)
            _refused(lambda: stub.Transcribe(request, timeout=30))
            assert stub.Transcribe(request, timeout=30, metadata=auth_metadata(KEYS[0])).duration_s == 0.1
    finally:
        env_server.stop()

    empty = tmp_path / "empty.txt"
    empty.write_text("# no keys yet\n\n", encoding="utf-8")
    for process in (
        ServerProcess(args=["--api-keys-file", str(empty)]),
        ServerProcess(env={"HWS_API_KEYS": " , "}),
    ):
        process.start(tmp_path, wait=False)
        assert process.process is not None
        assert process.process.wait(60) != 0
        assert "holds no keys" in process.log()


# --- The interceptor on all four RPC kinds, in-process -----------------------------------------------------------


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def _server_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield request
    yield request


async def _client_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    return b"".join([r async for r in requests])


async def _bidi(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


TOY = grpc.method_handlers_generic_handler(
    "toy.Toy",
    {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    },
)


def test_all_four_rpc_kinds() -> None:
    asyncio.run(_all_four_rpc_kinds())


async def _all_four_rpc_kinds() -> None:
    server = grpc.aio.server(interceptors=[ApiKeyInterceptor(KEYS)])
    server.add_generic_rpc_handlers([TOY])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            calls = {
                "Unary": lambda md: channel.unary_unary("/toy.Toy/Unary")(b"hi", metadata=md, timeout=10),
                "ServerStream": lambda md: _collect(
                    channel.unary_stream("/toy.Toy/ServerStream")(b"hi", metadata=md, timeout=10)
                ),
                # A refused streaming call sends nothing: a message written while the refusal arrives
                # fails in the client ("Internal error from Core") before it can read the status.
                "ClientStream": lambda md: channel.stream_unary("/toy.Toy/ClientStream")(
                    iter([b"h", b"i"] if md == auth_metadata(KEYS[1]) else []), metadata=md, timeout=10
                ),
                "Bidi": lambda md: _collect(
                    channel.stream_stream("/toy.Toy/Bidi")(
                        iter([b"hi"] if md == auth_metadata(KEYS[1]) else []), metadata=md, timeout=10
                    )
                ),
            }
            for name, call in calls.items():
                for metadata in (None, [("x-api-key", WRONG)]):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await call(metadata)
                    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
                    assert info.value.details() == UNAUTHENTICATED_MESSAGE
                assert await call(auth_metadata(KEYS[1])), name
    finally:
        await server.stop(None)


async def _collect(call: grpc.aio.UnaryStreamCall | grpc.aio.StreamStreamCall) -> list[bytes]:
    return [message async for message in call]


# --- Key sources ------------------------------------------------------------------------------------------------


def test_key_sources(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# comment\n\n  alpha  \nbeta\n   # indented comment\n", encoding="utf-8")
    assert load_api_keys(str(path)) == ["alpha", "beta"]
    assert api_keys(str(path), {"HWS_API_KEYS": "ignored"}) == ["alpha", "beta"]  # the file wins
    assert api_keys("", {"HWS_API_KEYS": "a, b,,"}) == ["a", "b"]
    assert api_keys("", {}) is None
    path.write_text("\n# only comments\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no keys"):
        load_api_keys(str(path))
    with pytest.raises(ValueError, match="holds no keys"):
        api_keys("", {"HWS_API_KEYS": ""})
    path.write_text("has space\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1") as info:
        load_api_keys(str(path))
    assert "has space" not in str(info.value)  # a key never appears in an error message or a log
    with pytest.raises(ValueError, match="cannot read"):
        load_api_keys(str(tmp_path / "missing"))


def test_cli_sends_the_key(auth_server: ServerProcess) -> None:
    """hws-client --api-key KEY, or env HWS_API_KEY; without one it reports UNAUTHENTICATED and exits 1."""
    command = [sys.executable, "-m", "hws.client.cli", str(EVAL_DIR / CLIP), "--addr", auth_server.address, "--fast"]
    env = {k: v for k, v in os.environ.items() if k != "HWS_API_KEY"}
    for extra, extra_env in (([], {}), (["--api-key", KEYS[0]], {}), ([], {"HWS_API_KEY": KEYS[1]})):
        done = subprocess.run(
            [*command, *extra], cwd=ROOT, env={**env, **extra_env}, capture_output=True, text=True, timeout=180
        )
        if not extra and not extra_env:
            assert done.returncode == 1 and "UNAUTHENTICATED" in done.stderr, done.stderr
        else:
            assert done.returncode == 0, done.stderr
            assert "cloudy" in done.stdout.lower()

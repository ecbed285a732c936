"""Start-up on a port in use stops with one line and exit 2; metrics, health and reflection stand up to
hostile callers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from hws.server import reflection
from tests.support import ROOT, ServerProcess, free_port

SLOW_CONNECTIONS = 150  # past the endpoint's cap of 64 open requests


def start_expecting_failure(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hws.server", "--host", "127.0.0.1", "--log-format", "json", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_grpc_port_in_use_is_one_line_and_exit_2(live_server: ServerProcess) -> None:
    # gRPC sets SO_REUSEPORT by default, so a second server used to share the port silently.
    reply = start_expecting_failure("--port", str(live_server.port), "--metrics-port", str(free_port()))
    assert reply.returncode == 2, reply.stderr[-2000:]
    assert "Traceback" not in reply.stderr
    # The reason alone: no start-up log line before it, no line of gRPC's C core.
    assert reply.stderr.splitlines() == [
        f"hws-server: cannot listen for gRPC on 127.0.0.1:{live_server.port}: the port is in use, "
        "or the address is not this host's"
    ], reply.stderr


def test_numpys_blas_runs_on_the_calling_thread_alone(live_server: ServerProcess) -> None:
    """Decodes run one per core (one batch at a time on a GPU): BLAS threads of its own would only spin."""
    (starting,) = [json.loads(line) for line in live_server.log().splitlines() if '"event": "starting"' in line]
    assert starting["blas_threads"], "numpy's BLAS was not found in the server process"
    assert set(starting["blas_threads"].values()) == {1}


def test_a_metrics_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        reply = start_expecting_failure("--port", str(free_port()), "--metrics-port", str(port))
    assert reply.returncode == 2, reply.stderr[-2000:]
    assert "Traceback" not in reply.stderr
    (last,) = reply.stderr.splitlines()  # the reason alone
    assert last.startswith(f"hws-server: cannot serve metrics on 127.0.0.1:{port}: ") and "in use" in last, last


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_slow_metrics_connections_cost_no_thread_and_do_not_keep_a_scrape_out(live_server: ServerProcess) -> None:
    assert live_server.process is not None
    pid = live_server.process.pid
    before = threads(pid)
    slow = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            conn = socket.create_connection(("127.0.0.1", live_server.metrics_port), timeout=10)
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow.append(conn)
        assert threads(pid) <= before + 2
        assert "hws_active_streams" in live_server.metrics_text()
        # Every slow connection is closed by the server: evicted by newer ones, or at its 5 s deadline.
        deadline = time.monotonic() + 10
        for conn in slow:
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):  # evicted: the server aborted it
                assert conn.recv(1) == b""
    finally:
        for conn in slow:
            conn.close()
    assert threads(pid) <= before + 2
    # Requests other than GET /metrics get an answer, not a hang.
    with socket.create_connection(("127.0.0.1", live_server.metrics_port), timeout=5) as conn:
        conn.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection(("127.0.0.1", live_server.metrics_port), timeout=5) as conn:
        conn.sendall(b"GET /" + b"x" * 10_000 + b" HTTP/1.1\r\n\r\n")  # past the 8 KiB request limit
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(100) == b""


def test_health_is_bounded_for_callers_without_a_key(live_server: ServerProcess) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # channels in one process share connections otherwise
    with grpc.insecure_channel(live_server.address, own_connection) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="x" * 100_000), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "limit is 200" in info.value.details()
        watches = [stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30) for _ in range(10)]
        try:
            assert all(next(w).status == health_pb2.HealthCheckResponse.SERVING for w in watches)
            with pytest.raises(grpc.RpcError) as info:
                next(stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "10 open health watches per connection" in info.value.details()
            # Another connection may still watch.
            with grpc.insecure_channel(live_server.address, own_connection) as other:
                watch = health_pb2_grpc.HealthStub(other).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
                watch.cancel()
        finally:
            for watch in watches:
                watch.cancel()


def _held_requests(release: threading.Event) -> Iterator[reflection_pb2.ServerReflectionRequest]:
    """One `list services` request, then the request stream stays open until released."""
    yield reflection_pb2.ServerReflectionRequest(list_services="")
    release.wait()


def test_reflection_is_bounded_and_still_lists_and_describes(live_server: ServerProcess) -> None:
    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # channels in one process share connections otherwise
    release = threading.Event()
    held: list[grpc.Call] = []
    with grpc.insecure_channel(live_server.address, own_connection) as channel:
        try:
            # What grpcurl list and describe do, through the grpc_reflection client.
            database = ProtoReflectionDescriptorDatabase(channel)
            assert {"hws.transcriber.v1.Transcriber", "grpc.reflection.v1alpha.ServerReflection"} <= set(
                database.get_services()
            )
            service = descriptor_pool.DescriptorPool(database).FindServiceByName("hws.transcriber.v1.Transcriber")
            assert "StreamingTranscribe" in service.methods_by_name

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            listing = reflection_pb2.ServerReflectionRequest(list_services="")
            huge = reflection_pb2.ServerReflectionRequest(file_containing_symbol="x" * 100_000)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ServerReflectionInfo(iter([huge]), timeout=30))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"the limit is {reflection.MAX_REQUEST_BYTES}" in info.value.details()
            assert len(info.value.details()) < 100 and "xxx" not in info.value.details()
            raw = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
            with pytest.raises(grpc.RpcError) as info:
                list(raw(iter([b"\xff\xff\xff\xff not a protobuf"]), timeout=30))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "could not be parsed" in info.value.details()

            # The calls above ended (normally and with errors) and hold nothing: the whole quota is free.
            for _ in range(reflection.MAX_CALLS_PER_CONNECTION):
                call = stub.ServerReflectionInfo(_held_requests(release), timeout=60)
                assert next(call).list_services_response.service
                held.append(call)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ServerReflectionInfo(iter([listing]), timeout=30))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"{reflection.MAX_CALLS_PER_CONNECTION} open reflection calls per connection" in info.value.details()
            # Another connection may still reflect.
            with grpc.insecure_channel(live_server.address, own_connection) as other:
                assert ProtoReflectionDescriptorDatabase(other).get_services()

            # A cancelled call gives its slot back; the server learns of the cancel a moment later.
            held.pop().cancel()
            deadline = time.monotonic() + 30
            while True:
                try:
                    (reply,) = stub.ServerReflectionInfo(iter([listing]), timeout=30)
                    assert reply.list_services_response.service
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
                    assert time.monotonic() < deadline, "the cancelled call's slot was never freed"
        finally:
            release.set()
            for call in held:
                call.cancel()

"""TLS on the server itself: a client that trusts the CA transcribes; plaintext and untrusting clients cannot connect.

Certificates come from the openssl CLI (the venv has no `cryptography`): a
throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.tls import channel_credentials, server_credentials
from tests.support import EVAL_DIR, ROOT, ServerProcess, chunked, clip_pcm16, final_text, requests, streaming_config
from tests.support.pki import Pki, make_pki

CLIP = "synth_weather.wav"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "DNS:localhost,IP:127.0.0.1")


@dataclass
class TlsServerProcess(ServerProcess):
    """ServerProcess whose readiness probe speaks TLS (the base class probes in plaintext)."""

    ca: Path | None = None

    def health(self, timeout: float = 2.0) -> int | None:
        assert self.ca is not None
        try:
            with grpc.secure_channel(self.address, channel_credentials(str(self.ca))) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                return reply.status
        except grpc.RpcError:
            return None


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServerProcess]:
    process = TlsServerProcess(args=["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)], ca=pki.ca)
    process.start(tmp_path_factory.mktemp("tls"))
    yield process
    process.stop()


def _transcribe(channel: grpc.Channel) -> str:
    pcm = clip_pcm16(CLIP)
    stub = pb_grpc.TranscriberStub(channel)
    return final_text(stub.StreamingTranscribe(requests(streaming_config(), chunked(pcm, 3200)), timeout=120))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_client_trusting_the_ca_transcribes(tls_server: TlsServerProcess, pki: Pki, host: str) -> None:
    address = f"{host}:{tls_server.port}"
    with grpc.secure_channel(address, channel_credentials(str(pki.ca))) as channel:
        assert "cloudy" in _transcribe(channel).lower()


def test_plaintext_client_cannot_connect(tls_server: TlsServerProcess) -> None:
    with grpc.insecure_channel(tls_server.address) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("roots", "options"),
    [
        (None, []),  # system roots: the private CA is not among them
        ("ca", [("grpc.ssl_target_name_override", "evil.example")]),  # trusted CA, but not this name
    ],
    ids=["untrusted-ca", "wrong-name"],
)
def test_unverified_server_is_refused(tls_server: TlsServerProcess, pki: Pki, roots: str | None, options: list) -> None:
    credentials = channel_credentials(str(pki.ca) if roots else None)
    with (
        grpc.secure_channel(tls_server.address, credentials, options=options) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cli_over_tls(tls_server: TlsServerProcess, pki: Pki) -> None:
    command = [sys.executable, "-m", "hws.client.cli", str(EVAL_DIR / CLIP), "--addr", tls_server.address]
    command += ["--ca-cert", str(pki.ca), "--fast", "--timeout", "120"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "cloudy" in done.stdout.lower()


def test_server_refuses_unusable_tls_files(pki: Pki, tmp_path: Path) -> None:
    """Bad files stop the server at startup with a message that names them, not at the first handshake."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases = [
        (pki.cert, pki.other_key, "does not match"),
        (pki.cert, not_pem, "no PEM private key"),
        (not_pem, pki.key, "no PEM certificate"),
    ]
    for cert, key, words in cases:
        with pytest.raises(ValueError, match=words):
            server_credentials(str(cert), str(key))
        process = ServerProcess(args=["--tls-cert", str(cert), "--tls-key", str(key)]).start(tmp_path, wait=False)
        assert process.process is not None
        assert process.process.wait(60) != 0
        assert words in process.log() and str(key if "key" in words else cert) in process.log()
    with pytest.raises(ValueError, match="cannot read"):
        channel_credentials(str(tmp_path / "missing.pem"))

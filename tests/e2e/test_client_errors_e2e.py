"""Every TLS and address mistake a person makes with hws-client is one line naming its real cause and the
flag that fixes it: against a real TLS server (a certificate for `localhost` only, signed by a throwaway
CA) and a real plaintext one, with its metrics port; and the Python API says the same in its own names."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hws import client
from hws.tls import channel_credentials
from tests.support import EVAL_DIR, ServerProcess
from tests.support.pki import make_pki

JFK = str(EVAL_DIR / "jfk.flac")
HWS_CLIENT = str(Path(sys.executable).parent / "hws-client")


@dataclass
class TlsServer(ServerProcess):
    """A server with TLS; its readiness probe trusts the CA and dials `localhost`, the certificate's name."""

    ca: Path | None = None

    def health(self, timeout: float = 2.0) -> int | None:
        assert self.ca is not None
        try:
            with grpc.secure_channel(f"localhost:{self.port}", channel_credentials(str(self.ca))) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                return int(reply.status)
        except grpc.RpcError:
            return None


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    d = tmp_path_factory.mktemp("pki")
    pki = make_pki(d, "DNS:localhost")  # named localhost only: dialled as 127.0.0.1, the name does not match
    process = TlsServer(args=["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)], ca=pki.ca)
    process.start(d)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess().start(tmp_path_factory.mktemp("plain"))
    yield process
    process.stop()


def hws_client(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "GRPC_VERBOSITY"}
    return subprocess.run([HWS_CLIENT, JFK, "--fast", *args], capture_output=True, text=True, env=env, timeout=60)


# (case, arguments with {tls}, {plain}, {metrics} and {ca} filled in, exit status, the whole message)
CASES = [
    (
        "--tls against a plaintext server",
        ["--addr", "127.0.0.1:{plain}", "--tls"],
        1,
        "cannot connect to 127.0.0.1:{plain}: the server there does not use TLS: drop --tls",
    ),
    (
        "--ca-cert against a plaintext server",
        ["--addr", "127.0.0.1:{plain}", "--ca-cert", "{ca}"],
        1,
        "cannot connect to 127.0.0.1:{plain}: the server there does not use TLS: drop --tls and --ca-cert",
    ),
    (
        "a certificate this system does not trust, without --ca-cert",
        ["--addr", "localhost:{tls}", "--tls"],
        1,
        "cannot connect to localhost:{tls}: the server's certificate is not signed by a CA this system trusts "
        "(self-signed?): give its CA with --ca-cert FILE",
    ),
    (
        "plaintext against a TLS server",
        ["--addr", "localhost:{tls}"],
        1,
        "cannot connect to localhost:{tls}: the server there uses TLS: add --ca-cert FILE (its CA; implies TLS)",
    ),
    (
        "a host name the certificate does not hold",
        ["--addr", "127.0.0.1:{tls}", "--ca-cert", "{ca}"],
        1,
        "cannot connect to 127.0.0.1:{tls}: the server's certificate is not issued for 127.0.0.1: "
        "give --addr the host name the certificate names",
    ),
    (
        "the metrics port",
        ["--addr", "127.0.0.1:{metrics}"],
        1,
        "cannot connect to 127.0.0.1:{metrics}: an HTTP/1 server answers there, not gRPC (the metrics port?): "
        "give --addr the gRPC port (default 50051)",
    ),
    (
        "the metrics port with --tls",
        ["--addr", "127.0.0.1:{metrics}", "--tls"],
        1,
        "cannot connect to 127.0.0.1:{metrics}: an HTTP/1 server answers there, not gRPC (the metrics port?): "
        "give --addr the gRPC port (default 50051)",
    ),
    (
        "a port out of range",
        ["--addr", "127.0.0.1:99999"],
        2,
        "cannot connect to 127.0.0.1:99999: the port must be a number from 1 to 65535",
    ),
    (
        "an http:// URL",
        ["--addr", "http://127.0.0.1:{plain}"],
        2,
        "http://127.0.0.1:{plain} is a URL; --addr takes host:port: drop 'http://' (127.0.0.1:{plain})",
    ),
    (
        "an https:// URL",
        ["--addr", "https://localhost:{tls}/"],
        2,
        "https://localhost:{tls}/ is a URL; --addr takes host:port: drop 'https://' and add --tls (localhost:{tls})",
    ),
]


@pytest.mark.parametrize(("case", "args", "status", "message"), CASES, ids=[case[0] for case in CASES])
def test_each_tls_and_address_mistake_is_one_line_naming_its_cause(
    tls_server: TlsServer, plain_server: ServerProcess, case: str, args: list[str], status: int, message: str
) -> None:
    assert tls_server.ca is not None
    fill = {"tls": tls_server.port, "plain": plain_server.port, "metrics": plain_server.metrics_port}
    fill["ca"] = str(tls_server.ca)  # type: ignore[assignment]
    reply = hws_client(*(arg.format(**fill) for arg in args))
    # One line, this one: no "is the server running there?", no line of gRPC's own (its C core logs to stderr).
    assert (reply.returncode, reply.stderr) == (status, f"hws-client: {message.format(**fill)}\n")


def test_the_python_api_names_its_own_parameters(tls_server: TlsServer, plain_server: ServerProcess) -> None:
    with pytest.raises(client.ConnectError) as info:
        client.transcribe(JFK, f"127.0.0.1:{plain_server.port}", tls=True)
    assert (
        str(info.value)
        == f"cannot connect to 127.0.0.1:{plain_server.port}: the server there does not use TLS: drop tls=True"
    )
    with pytest.raises(client.ConnectError) as info:
        client.transcribe(JFK, f"localhost:{tls_server.port}")
    assert str(info.value).endswith("the server there uses TLS: add ca_cert=PATH (its CA; implies TLS)")
    # Given the CA, through the name the certificate holds, it transcribes.
    responses = client.transcribe(JFK, f"localhost:{tls_server.port}", ca_cert=str(tls_server.ca))
    finals = [r.result.text for r in responses if r.HasField("result") and r.result.is_final]
    assert "ask not what your country can do for you" in " ".join(finals)

"""hws-server started the way a person starts it: settings every model load would fail on stop it at
once with one line naming the flag and exit status 2, and so does a port in use (that one line alone on
stderr); its help reads as plain text."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import ctranslate2
import pytest

from tests.support import ROOT, free_port

NO_CUDA = ctranslate2.get_cuda_device_count() == 0


def start(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "hws.server",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--metrics-port",
        "0",
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/model"], "invalid setting model (--model / HWS_MODEL): no such folder /no/such/model"),
        (["--model", "tiny.en-embeded"], "invalid setting model (--model / HWS_MODEL): no such folder tiny.en-embeded"),
        (["--model", str(ROOT / "app")], "holds no model.bin: not a CTranslate2 model folder"),
        pytest.param(
            ["--device", "cuda"],
            "invalid setting device (--device / HWS_DEVICE): cuda, but CTranslate2 sees no CUDA device here",
            marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device"),
        ),
        pytest.param(
            ["--compute-type", "float16"],
            "invalid setting compute_type (--compute-type / HWS_COMPUTE_TYPE): float16 does not run on cpu here",
            marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device"),
        ),
        (["--reflection", "maybe"], "argument --reflection: not a boolean: 'maybe' (use true or false)"),
    ],
)
def test_a_setting_every_load_would_fail_on_stops_the_server_at_once(args: list[str], message: str) -> None:
    reply = start(*args)
    assert reply.returncode == 2, reply.stderr[-2000:]
    assert "Traceback" not in reply.stderr
    assert message in reply.stderr.strip().splitlines()[-1], reply.stderr
    assert len(reply.stderr.strip().splitlines()) <= 2  # argparse's short usage line, then the message


def test_help_is_plain_text() -> None:
    for command in ("hws.server", "hws.client.cli"):
        reply = subprocess.run([sys.executable, "-m", command, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert reply.returncode == 0
        assert "`" not in reply.stdout and "default )" not in reply.stdout, reply.stdout


def test_a_port_in_use_is_exactly_one_line_on_stderr() -> None:
    """The installed command, on a gRPC port and then a metrics port that a listening socket holds: stderr is
    the one line naming the address (no start-up log line, no gRPC C-core line), exit status 2."""
    binary = Path(sys.executable).parent / "hws-server"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, line in (
            (
                ["--port", str(port), "--metrics-port", str(free_port())],
                f"hws-server: cannot listen for gRPC on 127.0.0.1:{port}: the port is in use, "
                "or the address is not this host's",
            ),
            (
                ["--port", str(free_port()), "--metrics-port", str(port)],
                f"hws-server: cannot serve metrics on 127.0.0.1:{port}: ",
            ),
        ):
            reply = subprocess.run(
                [str(binary), "--host", "127.0.0.1", "--log-format", "json", *args],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=60,
            )
            assert reply.returncode == 2, reply.stderr[-2000:]
            lines = reply.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(line), reply.stderr
            assert reply.stdout == ""

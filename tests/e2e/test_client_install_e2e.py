"""The client installed alone, end to end: `pip install hosted-whisper-streaming` into an empty venv brings
grpcio, protobuf and PyAV and none of the model stack; there the server's commands say in one line to
install the extra `server`, and `hws-client` transcribes a recording (a FLAC, decoded by PyAV) from a real
server process.

The wheel is built offline from a copy of the sources (as tests/unit/test_packaging.py does); its
dependencies come from the package registry, pinned by constraints.txt, into a venv made here without the
system's site packages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import EVAL_DIR, ROOT, ServerProcess, manifest, wer
from tests.support.packaging import build_wheel

# Slow: a cold pip cache downloads about 60 MB of wheels, more than the suite's 300 s per test may allow.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIP = "jfk.flac"
CLIENT_STACK = {"grpcio", "protobuf", "av"}
MODEL_STACK = {"ctranslate2", "faster-whisper", "onnxruntime", "tokenizers", "huggingface-hub"}
HINT = "pip install 'hosted-whisper-streaming[server]'"
FINAL_LINE = re.compile(r"\[\s*\d+\.\d\d -\s*\d+\.\d\d\] (.*)")  # what hws-client prints off a terminal
# The venv's commands see only its own site-packages: neither the source tree nor the project's venv.
ENV = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}


def run(venv: Path, command: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One of the venv's commands, run from its folder, as a user who installed only the client runs it."""
    return subprocess.run(
        [str(venv / "bin" / command), *args], capture_output=True, text=True, cwd=venv, env=ENV, timeout=timeout
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server (the project's venv, embedded model), started without waiting: it loads during the install."""
    with ServerProcess().start(tmp_path_factory.mktemp("server"), wait=False) as process:
        yield process


@pytest.fixture(scope="module")
def venv(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with the client wheel installed in it, nothing else asked for."""
    folder = tmp_path_factory.mktemp("client-install")
    wheel = build_wheel(folder)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    try:
        reply = subprocess.run([*install, str(wheel)], capture_output=True, text=True, env=ENV, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("pip install of the client wheel took over 600 s: is the package registry reachable?")
    if reply.returncode != 0:
        pytest.fail(
            f"pip install of the client wheel into an empty venv failed (exit {reply.returncode}); its dependencies"
            f" come from the package registry, pinned by constraints.txt:\n{reply.stderr[-4000:]}"
        )
    return venv


def test_the_client_installs_without_the_model_stack(venv: Path) -> None:
    listed = run(venv, "python", "-m", "pip", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    installed = {re.sub(r"[-_.]+", "-", package["name"]).lower() for package in json.loads(listed.stdout)}
    assert installed >= CLIENT_STACK, sorted(installed)
    assert not installed & MODEL_STACK, sorted(installed)
    # What runs below is the installed wheel, not the source tree.
    where = run(venv, "python", "-c", "import hws.client; print(hws.client.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout


@pytest.mark.parametrize(
    ("command", "args"),
    [("hws-server", []), ("hws-healthcheck", []), ("python", ["-m", "hws.server"])],
    ids=["hws-server", "hws-healthcheck", "python -m hws.server"],
)
def test_the_server_commands_say_in_one_line_to_install_the_extra(venv: Path, command: str, args: list[str]) -> None:
    reply = run(venv, command, *args, timeout=60)
    assert reply.returncode == 2, reply.stderr
    assert reply.stdout == ""
    assert len(reply.stderr.splitlines()) == 1 and reply.stderr.rstrip().endswith(HINT), reply.stderr


def test_hws_client_transcribes_a_recording(venv: Path, server: ServerProcess) -> None:
    server.wait_serving()
    reply = run(venv, "hws-client", str(EVAL_DIR / CLIP), "--addr", server.address, "--fast")
    assert reply.returncode == 0, reply.stderr
    assert "Traceback" not in reply.stderr, reply.stderr
    lines = reply.stdout.splitlines()
    finals = [FINAL_LINE.fullmatch(line) for line in lines]
    assert lines and all(finals), reply.stdout  # one line per final, and nothing else
    transcript = " ".join(final.group(1) for final in finals if final)
    assert wer(manifest()[CLIP], transcript) <= 0.1, transcript

"""hws.client.transcribe, the Python API, as the README shows it: the README's example run as written
against a real server that renews streams at a short age limit, and its exceptions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from hws import client
from tests.support import EVAL_DIR, ROOT, ServerProcess, free_port, join_recordings, to_pcm16, wer

RECORDINGS = ["arctic_aew_a0001.wav", "arctic_aew_a0002.wav", "arctic_aew_a0003.wav", "arctic_axb_a0004.wav"]


@pytest.fixture(scope="module")
def aged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A stream older than 5 s ends at its next pause: the joined recordings at real-time pace are renewed.
    args = ["--max-stream-age-s", "5", "--max-stream-age-overrun-s", "5"]
    process = ServerProcess(args=args).start(tmp_path_factory.mktemp("api-server"))
    yield process
    process.stop()


def events(server: ServerProcess, name: str) -> list[dict]:
    return [e for e in map(json.loads, server.log().splitlines()) if e.get("event") == name]


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "no python block in README's Python API section"
    return block.group(1)


def test_the_readme_example_runs_as_written_and_resumes_across_the_age_limit(
    aged_server: ServerProcess, tmp_path: Path
) -> None:
    speech = join_recordings(RECORDINGS)
    path = tmp_path / "talk.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(to_pcm16(speech.audio))
    code = readme_example()
    assert code.count('"talk.flac"') == 1 and code.count('"localhost:50051"') == 1
    assert len(code.strip().splitlines()) <= 12
    program = code.replace('"talk.flac"', repr(str(path))).replace('"localhost:50051"', repr(aged_server.address))
    before = len(events(aged_server, "stream_renewed"))
    run = subprocess.run([sys.executable, "-"], input=program, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines and all(re.match(r"\[\s*\d+\.\d\d - \s*\d+\.\d\d\] ", line) for line in lines), lines
    text = " ".join(line.split("] ", 1)[1] for line in lines)
    assert wer(speech.reference, text) <= 0.15, text
    # It was renewed on the way (the age limit, resumed from final_offset_s), with nothing lost or said twice.
    assert len(events(aged_server, "stream_renewed")) > before
    assert not events(aged_server, "stream_failed")
    starts = [float(re.findall(r"\d+\.\d\d", line)[0]) for line in lines]
    assert starts == sorted(starts)


def test_a_wrong_address_fails_fast_with_one_message() -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(client.ConnectError) as info:
        client.transcribe(EVAL_DIR / "jfk.flac", f"127.0.0.1:{port}")
    assert time.monotonic() - start < 3.0
    assert str(info.value) == f"cannot connect to 127.0.0.1:{port}: is the server running there?"
    assert isinstance(info.value, client.ClientError)
    # An address mistake is found before dialling, and names the parameter.
    with pytest.raises(client.ConnectError, match=r"https://127\.0\.0\.1:1 is a URL; address takes host:port: drop"):
        client.transcribe(EVAL_DIR / "jfk.flac", "https://127.0.0.1:1")


def test_a_refused_setting_is_a_stream_error(aged_server: ServerProcess) -> None:
    config = client.StreamingConfig(recognition=client.RecognitionConfig(endpoint_silence_ms=50))
    responses = client.transcribe(EVAL_DIR / "jfk.flac", aged_server.address, config)
    with pytest.raises(client.StreamError) as info:
        list(responses)
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert str(info.value).startswith("INVALID_ARGUMENT: ") and "\n" not in str(info.value)
    assert "endpoint_silence_ms" in info.value.details

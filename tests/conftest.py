from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import EVAL_DIR, ServerProcess, stream_clip


def pytest_configure(config: pytest.Config) -> None:
    if not (EVAL_DIR / "manifest.tsv").is_file():
        raise pytest.UsageError(f"evaluation audio not found at {EVAL_DIR} (set HWS_EVAL_DIR)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server process on the embedded model, shared by the end-to-end tests."""
    args = ["--max-streams", "8", "--stream-idle-timeout-s", "3", "--config-timeout-s", "3"]
    process = ServerProcess(args=args).start(tmp_path_factory.mktemp("server"))
    yield process
    process.stop()
    # Whatever the suite threw at it, every line it logged is one JSON object (tracebacks included).
    lines = process.log().splitlines()
    assert lines and not [line for line in lines if not _is_json_object(line)], "non-JSON lines in the server log"


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.fixture(scope="session")
def live_server(server: ServerProcess) -> ServerProcess:
    """The shared server after one transcribed stream with partials, so labelled series exist in /metrics."""
    from tests.helpers import streaming_config

    stream_clip(
        server.address, "synth_weather.wav", streaming_config(interim_results=True, speech_events=True), pace=False
    )
    return server


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path

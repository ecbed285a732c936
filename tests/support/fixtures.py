"""The session fixtures of the suites that talk to the real server (tests/e2e, tests/infra).

Their conftests import `server` and `live_server` from here; tests/unit never sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.paths import eval_audio_missing
from tests.support.server import ServerProcess
from tests.support.streaming import stream_clip, streaming_config


def require_eval_audio() -> None:
    """Fail (never skip) where the evaluation audio is missing, saying where it was looked for."""
    missing = eval_audio_missing()
    if missing is not None:
        pytest.fail(missing, pytrace=False)


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
    require_eval_audio()
    stream_clip(
        server.address, "synth_weather.wav", streaming_config(interim_results=True, speech_events=True), pace=False
    )
    return server

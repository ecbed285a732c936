from __future__ import annotations

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
    process = ServerProcess(args=["--max-streams", "8", "--stream-idle-timeout-s", "3"]).start(
        tmp_path_factory.mktemp("server")
    )
    yield process
    process.stop()


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

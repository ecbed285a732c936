"""Fixtures of the end-to-end tests: the real server process, the real model, the evaluation audio.

Without the evaluation audio (HWS_EVAL_DIR, else ../shared/eval) a run that collects these tests stops
with a usage error that says where it looked: they are never skipped for want of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fixtures import live_server, server
from tests.support.paths import eval_audio_missing

__all__ = ["live_server", "log_dir", "server"]


def pytest_configure(config: pytest.Config) -> None:
    missing = eval_audio_missing()
    if missing is not None:
        raise pytest.UsageError(missing)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path

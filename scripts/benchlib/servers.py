"""The server under test: `python -m hws.server` with the benchmarks' flags, its log in a results folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.support import ROOT, ServerProcess

DEFAULT_RESULTS_DIR = ROOT / "bench-results"  # the scripts' default for the folder their results go to


def bench_server(args: Sequence[str], name: str, results_dir: Path) -> ServerProcess:
    """`python -m hws.server` started on free ports with extra flags; its log is results_dir/logs/<name>.log."""
    # One connection per measured stream: the real continuous stream runs past the stream age limit.
    server = ServerProcess(args=["--max-stream-age-s", "0", *args], log_path=results_dir / "logs" / f"{name}.log")
    return server.start()

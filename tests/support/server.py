"""The real server as a process: free ports, its log and the problems in it, the wait until it is SERVING,
its CPU time, its /metrics scraped and parsed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.paths import ROOT

# (name, labels) -> value of every sample in a /metrics scrape.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- the server process ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    """`python -m hws.server` on free ports, with extra flags; stopped with SIGTERM.

    Its log (stdout and stderr, JSON lines) goes to `log_path` when that is set, else to
    `server-<port>.log` in the folder given to `start`. As a context manager it is stopped on exit.
    """

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self, stdout: IO[bytes], stderr: IO[bytes] | int) -> None:
        """Start the process with its output on these files (no wait)."""
        command = [sys.executable, "-m", "hws.server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--metrics-port", str(self.metrics_port), "--log-format", "json", *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)

    def start(self, log_dir: Path | None = None, wait: bool = True) -> ServerProcess:
        if self.log_path is None:
            assert log_dir is not None, "a folder for the log, or a log_path"
            self.log_path = log_dir / f"server-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.spawn(log, subprocess.STDOUT)
        if wait:
            self.wait_serving()
        return self

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed by then
                self.stop(timeout=30.0)

    def health(self, timeout: float = 2.0) -> int | None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                # typeshed's HealthStub lacks the methods that its __init__ sets.
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)  # type: ignore[attr-defined]
                return int(reply.status)
        except grpc.RpcError:
            return None

    def wait_serving(self, timeout: float = 120.0) -> None:
        from grpc_health.v1 import health_pb2

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            if self.health() == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.2)
        raise TimeoutError(f"server not SERVING after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def log_problems(self, limit: int = 10) -> list[str]:
        """The first warning, error and critical lines of the log."""
        lines = [line for line in self.log().splitlines() if re.search(r'"level": ?"(warning|error|critical)"', line)]
        return lines[:limit]

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status; a process still there after `timeout` is killed (TimeoutExpired)."""
        assert self.process is not None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    # -- /metrics
    def metrics_text(self, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as reply:
            return reply.read().decode()

    def metrics(self) -> Samples:
        """Every sample of one scrape, parsed as Prometheus parses it."""
        from prometheus_client.parser import text_string_to_metric_families

        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.metrics_text())
            for sample in family.samples
        }

    def hws_series(self) -> dict[str, float]:
        """hws_* series as exposed (`name{labels}` -> value), histogram buckets and build info left out;
        nothing when the scrape fails."""
        try:
            text = self.metrics_text()
        except OSError:
            return {}
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hws_") and "_bucket{" not in line and not line.startswith("hws_build_info"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples


def metric_value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value in a scrape (0 when it is not there)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsDelta:
    """The change of every sample between two scrapes: `delta(name, **labels)`."""

    def __init__(self, before: Samples, after: Samples) -> None:
        self.before, self.after = before, after

    def __call__(self, name: str, **labels: str) -> float:
        return metric_value(self.after, name, **labels) - metric_value(self.before, name, **labels)

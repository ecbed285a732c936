"""A real Prometheus server (Debian package `prometheus`) for the tests, and PromQL helpers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def with_bool(expr: str) -> str:
    """An alert expression `X > 1.5` as `X > bool 1.5`: every series of X comes back (0 or 1)
    instead of only the firing ones, so an empty answer means X itself has no data.
    Only a comparison outside any brackets, braces and strings counts."""
    depth, quote, last = 0, "", None
    i = 0
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            for op in COMPARISONS:
                if expr.startswith(op, i) and not expr.startswith("=~", i) and not expr.startswith("!~", i):
                    last = (i, op)
                    i += len(op) - 1
                    break
        i += 1
    if last is None:
        return expr
    at, op = last
    rest = expr[at + len(op) :]
    return expr if rest.lstrip().startswith("bool") else f"{expr[:at]}{op} bool{rest}"


@dataclass
class Prometheus:
    """`prometheus` scraping one target every second, with the rule files given."""

    binary: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def find() -> Path | None:
        found = shutil.which("prometheus")
        return Path(found) if found else None

    def start(self, workdir: Path, job: str, target: str, rule_files: list[Path]) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        command = [
            str(self.binary),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with open(workdir / "prometheus.log", "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((workdir / "prometheus.log").read_text(errors="replace"))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("Prometheus not ready after 30 s")

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

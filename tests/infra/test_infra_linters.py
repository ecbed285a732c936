"""Static checkers: hadolint, checkov (offline), promtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(:?)(.*)")


def run(cmd: list[str | Path], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_hadolint_dockerfile_clean(hadolint_bin: Path) -> None:
    proc = run([hadolint_bin, "--no-color", "Dockerfile"])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_ignores_have_reasons() -> None:
    lines = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert i > 0 and lines[i - 1].lstrip().startswith("#"), f"line {i + 1}: explain the ignore above it"


def checkov(checkov_bin: Path, *target: str) -> dict[str, Any]:
    proc = run([checkov_bin, "--skip-download", "--quiet", "--compact", "--output", "json", *target])
    assert proc.stdout.strip(), proc.stderr
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert proc.returncode == 0, proc.stderr
    return {"passed": passed, "reports": reports}


def test_checkov_terraform(checkov_bin: Path) -> None:
    result = checkov(checkov_bin, "-d", "terraform", "--framework", "terraform")
    assert result["passed"] > 100, "checkov scanned suspiciously little"


def test_checkov_dockerfile(checkov_bin: Path) -> None:
    result = checkov(checkov_bin, "-f", "Dockerfile", "--framework", "dockerfile")
    assert result["passed"] > 10


def test_checkov_skips_are_inline_with_reasons() -> None:
    skips = []
    for path in sorted((REPO_ROOT / "terraform").rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                skips.append((path, number, match))
                assert match.group(2) == ":" and len(match.group(3).strip()) > 15, (
                    f"{path}:{number}: checkov skip without a reason"
                )
    assert skips, "expected the documented inline skips"
    assert not (REPO_ROOT / ".checkov.yml").exists() and not (REPO_ROOT / ".checkov.yaml").exists(), (
        "skips belong next to the resource, not in a global config"
    )


def test_promtool_check_rules(promtool_bin: Path) -> None:
    proc = run([promtool_bin, "check", "rules", "deploy/prometheus/alerts.yml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_promtool_check_config(promtool_bin: Path) -> None:
    proc = run([promtool_bin, "check", "config", "deploy/prometheus/prometheus.yml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""The project's wheel, built offline from a copy of the sources (the packaging and client-install tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def build_wheel(folder: Path) -> Path:
    source = folder / "src"
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    subprocess.run([*command, "--wheel-dir", str(folder / "dist"), str(source)], check=True, timeout=120)
    (wheel,) = (folder / "dist").glob("*.whl")
    return wheel

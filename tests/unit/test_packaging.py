"""What `pip install .` puts into site-packages: the import package `hws` and nothing else.

`app/` is only the source folder; a top-level `app` installed beside other programs' packages would
shadow theirs (or be shadowed). The wheel is built offline from a copy of the sources, with the
venv's own setuptools (no build isolation, no index), so the test needs no registry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import ROOT


def test_the_wheel_installs_only_hws(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    subprocess.run([*command, "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, timeout=120)
    (wheel,) = (tmp_path / "dist").glob("*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (dist_info,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"hws", dist_info}
    for module in ("server/main.py", "stream/session.py", "asr/whisper/backend.py", "client/__init__.py"):
        assert f"hws/{module}" in names, module
    assert "hws/gen/hws/transcriber/v1/transcriber_pb2.py" in names
    commands = [line for line in entry_points.splitlines() if "=" in line]
    assert commands and all(line.split("=")[1].strip().startswith("hws.") for line in commands), entry_points

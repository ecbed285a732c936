"""What `pip install .` puts into site-packages: the import package `hws` and nothing else.

`app/` is only the source folder; a top-level `app` installed beside other programs' packages would
shadow theirs (or be shadowed). The wheel is built offline from a copy of the sources, with the
venv's own setuptools (no build isolation, no index), so the test needs no registry.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.support.packaging import build_wheel


def test_the_wheel_installs_only_hws(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)

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

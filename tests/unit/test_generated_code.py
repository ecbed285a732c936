"""The committed protobuf code is what `make proto` generates from proto/ now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

PROTOS = ["proto/hws/transcriber/v1/transcriber.proto", "proto/compat/audio_transcriber.proto"]


def test_generated_code_is_current(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "grpc_tools.protoc", "-Ihws/gen=proto"]
    command += [f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", *PROTOS]
    subprocess.run(command, cwd=ROOT, check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated
    for relative in generated:
        fresh = (tmp_path / relative).read_text()
        assert (ROOT / "app" / relative).read_text() == fresh, f"app/{relative} is stale: run make proto"

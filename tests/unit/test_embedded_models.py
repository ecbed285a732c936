"""The join of base-embedded into the model cache, on the real installed parts (no server, no model load).

Each join writes 145 MB into a temporary cache, about a second on 2 cores.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hws.asr.whisper import embedded as embedded_models
from hws.asr.whisper.embedded import BASE, EmbeddedModelError, ensure_joined, mismatch
from tests.support import ROOT


def events(logs: list[dict]) -> list[str]:
    return [entry["event"] for entry in logs]


def test_first_use_joins_and_later_uses_verify(tmp_path: Path) -> None:
    with capture_logs() as logs:
        folder = ensure_joined(BASE, tmp_path)
    assert events(logs) == ["model_joined"]
    assert folder == tmp_path / BASE.folder_name
    assert mismatch(BASE, folder) is None
    assert sorted(p.name for p in folder.iterdir()) == sorted(BASE.sha256)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [BASE.folder_name], "no temporary folder left"
    joined_at = (folder / "model.bin").stat().st_mtime_ns

    with capture_logs() as logs:
        assert ensure_joined(BASE, tmp_path) == folder
    assert events(logs) == ["model_verified"]
    assert (folder / "model.bin").stat().st_mtime_ns == joined_at, "a good join is not redone"


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "missing file", "left over from a killed join"])
def test_a_damaged_join_is_detected_and_redone(tmp_path: Path, damage: str) -> None:
    folder = ensure_joined(BASE, tmp_path)
    model_bin = folder / "model.bin"
    if damage == "flipped byte":
        with open(model_bin, "r+b") as handle:
            handle.seek(100_000_000)
            byte = handle.read(1)
            handle.seek(100_000_000)
            handle.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "truncated":  # as a join killed midway would leave it, were it written in place
        with open(model_bin, "r+b") as handle:
            handle.truncate(72_608_766)
    elif damage == "missing file":
        (folder / "tokenizer.json").unlink()
    else:  # a join killed before its rename: the temporary folder stays beside an absent target
        folder.rename(tmp_path / f".{BASE.folder_name}.killed.partial")

    assert mismatch(BASE, folder) is not None
    with capture_logs() as logs:
        assert ensure_joined(BASE, tmp_path) == folder
    expected = ["model_joined"] if damage == "left over from a killed join" else ["model_rejoining", "model_joined"]
    assert events(logs) == expected, logs
    assert mismatch(BASE, folder) is None
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [BASE.folder_name], "temporary folders removed"


def test_parts_that_do_not_make_the_published_model_are_never_put_in_place(tmp_path: Path) -> None:
    swapped = dataclasses.replace(BASE, parts=BASE.parts[::-1])  # the right bytes in the wrong order
    with pytest.raises(EmbeddedModelError, match=r"do not make the published model \(model\.bin: sha256"):
        ensure_joined(swapped, tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()], "neither the bad join nor its temporary folder is left"


RACER = """
import json, sys
from pathlib import Path
from structlog.testing import capture_logs
from hws.asr.whisper.embedded import BASE, ensure_joined
with capture_logs() as logs:
    folder = ensure_joined(BASE, Path(sys.argv[1]))
print(json.dumps({"folder": str(folder), "events": [entry["event"] for entry in logs]}))
"""


def test_two_processes_starting_at_once_join_once(tmp_path: Path) -> None:
    # Both wait on the cache's lock, held here, so that they contend for it when it is released.
    lock = tmp_path / f".{BASE.folder_name}.lock"
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        racers = [
            subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        time.sleep(3.0)  # both have started and are blocked on the lock (imports take about a second)
        fcntl.flock(handle, fcntl.LOCK_UN)
    replies = [json.loads(racer.communicate(timeout=120)[0].strip().splitlines()[-1]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert {reply["folder"] for reply in replies} == {str(tmp_path / BASE.folder_name)}
    assert sorted(event for reply in replies for event in reply["events"]) == ["model_joined", "model_verified"]
    assert mismatch(BASE, tmp_path / BASE.folder_name) is None


def test_model_folder_of_the_embedded_models(tmp_path: Path) -> None:
    assert embedded_models.missing_packages("base-embedded") is None, "make install installs the extra 'base'"
    assert (embedded_models.model_folder("tiny.en-embedded", tmp_path) / "model.bin").is_file()
    assert not list(tmp_path.iterdir()), "tiny.en is loaded where its package put it"
    assert embedded_models.model_folder("base-embedded", tmp_path) == tmp_path / BASE.folder_name

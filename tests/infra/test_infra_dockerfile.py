"""Structure of the Dockerfile and .dockerignore (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")


def stages() -> list[str]:
    parts = re.split(r"(?m)^FROM ", DOCKERFILE)
    return ["FROM " + p for p in parts[1:]]


def test_multi_stage_on_pinned_cuda_cudnn9_runtime() -> None:
    froms = re.findall(r"(?m)^FROM (\S+)(?: AS (\S+))?", DOCKERFILE)
    assert len(froms) >= 2
    for image, _ in froms:
        assert ":" in image and not image.endswith(":latest"), image
    final_image = froms[-1][0]
    # CTranslate2 >= 4.5 needs CUDA 12 + cuDNN 9 ("cudnn" tags of CUDA 12 images carry cuDNN 9).
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.\d\d", final_image), final_image


def test_final_stage_has_no_compilers_and_runs_non_root() -> None:
    final = stages()[-1]
    assert "build-essential" not in final and "gcc" not in final
    users = re.findall(r"(?m)^USER (\S+)", final)
    assert users and users[-1] not in {"root", "0", "0:0"}


def test_runtime_settings() -> None:
    final = stages()[-1]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in final
    assert "LD_LIBRARY_PATH=" in final
    assert re.search(r"(?m)^EXPOSE 50051 8000$", final)
    assert re.search(r"(?ms)^HEALTHCHECK .*hws-healthcheck --addr", final)
    assert '["hws-server"]' in final


def test_install_and_model_bake() -> None:
    assert "pip install --no-cache-dir -c constraints.txt ." in DOCKERFILE
    assert re.search(r'(?m)^ARG MODEL=""$', DOCKERFILE)
    assert "from faster_whisper import download_model" in DOCKERFILE
    assert "/opt/models/" in DOCKERFILE
    # Empty MODEL keeps the embedded tiny.en; otherwise HWS_MODEL points at the baked folder.
    assert "HWS_MODEL=${MODEL:+/opt/models/}${MODEL:-tiny.en-embedded}" in DOCKERFILE


def test_dockerignore_excludes_local_state() -> None:
    entries = set((REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for needed in [".git", ".venv", ".venv-*", "**/__pycache__", "**/.pytest_cache", "**/*.tfstate", "**/.terraform"]:
        assert needed in entries, needed
    for copied in ["app", "proto", "constraints.txt", "pyproject.toml", "README.md"]:
        assert copied not in entries, f"{copied} is needed by the build"

"""Structure of the Dockerfile and .dockerignore (no Docker engine needed)."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
# Library names a shared object can carry for dlopen(): libcublas.so.12, libcudnn_ops.so.9, ...
CUDA_LIBRARY = re.compile(rb"lib(cublas|cublasLt|cudnn[a-z_]*|cudart|cuda|nccl|cufft|curand)\.so\.(\d+)")


def stages() -> list[str]:
    parts = re.split(r"(?m)^FROM ", DOCKERFILE)
    return ["FROM " + p for p in parts[1:]]


def base_images() -> list[str]:
    return [image for image, _ in re.findall(r"(?m)^FROM (\S+)(?: AS (\S+))?", DOCKERFILE)]


def ctranslate2_libraries() -> dict[str, set[int]]:
    """What the installed CTranslate2 library names for the dynamic loader: {"cublas": {12}, ...}."""
    site = Path(metadata.distribution("ctranslate2").locate_file(""))
    found = sorted(site.glob("ctranslate2.libs/libctranslate2-*.so*"))
    if not found:
        pytest.fail(f"no libctranslate2 shared object under {site} (python {sys.version.split()[0]})")
    names: dict[str, set[int]] = {}
    for library in found:
        for name, major in CUDA_LIBRARY.findall(library.read_bytes()):
            names.setdefault(name.decode(), set()).add(int(major))
    return names


def test_multi_stage_on_pinned_images() -> None:
    images = base_images()
    assert len(images) >= 2
    for image in images:
        assert ":" in image and not image.endswith(":latest"), image


def test_base_image_is_the_smallest_cuda_runtime_ctranslate2_needs() -> None:
    """The final image has the CUDA major of the cuBLAS CTranslate2 loads, and no cuDNN unless it loads one."""
    pinned = re.search(r"(?m)^ctranslate2==(\S+)$", (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8"))
    assert pinned and metadata.version("ctranslate2") == pinned.group(1), "check the pinned wheel, not another"
    libraries = ctranslate2_libraries()
    assert "cublas" in libraries and "cuda" in libraries, libraries
    (cuda_major,) = libraries["cublas"]
    final = base_images()[-1]
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-(cudnn\d*-)?(base|runtime|devel)-ubuntu\d\d\.\d\d", final)
    assert match, final
    assert int(match.group(1)) == cuda_major, f"{final}: CTranslate2 loads libcublas.so.{cuda_major}"
    cudnn = {name for name in libraries if name.startswith("cudnn")}
    if cudnn:
        assert match.group(2), f"CTranslate2 loads {sorted(cudnn)}: the image needs cuDNN"
    else:
        assert not match.group(2), f"{final} carries cuDNN, which CTranslate2 {pinned.group(1)} never loads"
    # "base" has only cudart; cuBLAS (which CTranslate2 does load) comes with "runtime". "devel" adds compilers.
    assert match.group(3) == "runtime", final


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

#!/usr/bin/env bash
# WhisperLive (PyPI whisper-live) in its own venv for scripts/bench_whisperlive.py, every package pinned.
#
# whisper-live 0.10.0 declares the dependencies of all its backends and extras (CUDA cuBLAS/cuDNN wheels,
# OpenVINO, optimum, openai-whisper, PyAudio, which needs PortAudio headers to build, ...). Its websocket
# server on the faster_whisper backend needs none of them, so it goes in with --no-deps and only that
# path's imports are installed. faster-whisper is 1.2.0 as whisper-live pins (our server runs 1.2.1).
# torch comes first, as the CPU build, so nothing pulls a CUDA one. pip then warns that whisper-live's
# declared requirements are unmet (and that it pins tokenizers 0.20.3): expected, the server path runs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-whisperlive}
PYTHON=${PYTHON:-python3}
CONSTRAINTS=scripts/bench-constraints-whisperlive.txt

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet -c "$CONSTRAINTS" torch
"$VENV/bin/pip" install --quiet -c "$CONSTRAINTS" --no-deps whisper-live
"$VENV/bin/pip" install --quiet -c "$CONSTRAINTS" \
  faster-whisper websockets fastapi uvicorn python-multipart onnxruntime requests numpy
"$VENV/bin/python" - <<'PY'
import torch
import whisper_live.server  # noqa: F401  (imports every module the faster_whisper server path needs)
from whisper_live.backend.faster_whisper_backend import ServeClientFasterWhisper  # noqa: F401

assert torch.version.cuda is None, f"expected the CPU build of torch, got CUDA {torch.version.cuda}"
print(f"WhisperLive ready (torch {torch.__version__})")
PY

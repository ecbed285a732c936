#!/usr/bin/env python3
"""Device check: how the server picks and leaves the GPU on a host where CUDA cannot run the model.

For a GPU host whose CUDA libraries are not the ones CTranslate2 was built for (the device machine
of this workplace has CUDA 13; CTranslate2 4.8.5 dlopens libcublas.so.12). A real model does not fit
what one call to that machine carries, so this builds a random tiny Whisper (transformers, on the
machine's image) with tiny.en's vocabulary, then runs the real server process twice:
- `--device cuda`: must stop at once, one line naming the flag, exit 2 (no retry heals a library);
- `--device auto`: must log `cuda_unusable`, fall back to the CPU and report SERVING.

Run there from the repository root with the wheels of the server's dependencies (and tiny.en's
tokenizer.json, vocabulary.txt and config.json) in .whl/, installed with --target /tmp/site and
PYTHONPATH=/tmp/site. PyAV is stubbed when it is missing: faster-whisper imports it for file
decoding, which the server never uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / ".whl"


def random_model(folder: Path) -> Path:
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=51864, num_mel_bins=80,
    )  # fmt: skip
    WhisperForConditionalGeneration(config).save_pretrained(folder / "hf")
    model = folder / "ct2"
    TransformersConverter(str(folder / "hf"), copy_files=[], load_as_float16=False).convert(str(model))
    for old in model.glob("vocabulary*"):
        old.unlink()
    for name in ("tokenizer.json", "vocabulary.txt", "config.json"):  # tiny.en's: the same vocabulary size
        shutil.copy(ASSETS / name, model / name)
    return model


def server(model: Path, device: str, stub: Path) -> subprocess.Popen[str]:
    paths = [str(stub), str(ROOT / "app"), os.environ.get("PYTHONPATH")]  # app/: the source folder of hws
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    command = [sys.executable, "-m", "hws.server", "--model", str(model), "--device", device]
    command += ["--port", "50971", "--metrics-port", "0", "--log-format", "json"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> int:
    folder = Path(tempfile.mkdtemp())
    model = random_model(folder)
    stub = folder / "stub"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(
        "import importlib.util, sys, types\n"
        "if importlib.util.find_spec('av') is None:\n    sys.modules['av'] = types.ModuleType('av')\n"
    )
    ok = True
    explicit = server(model, "cuda", stub)
    out, _ = explicit.communicate(timeout=120)
    print(f"--device cuda: exit {explicit.returncode}; last line: {out.strip().splitlines()[-1]}")
    ok &= explicit.returncode == 2
    auto = server(model, "auto", stub)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert auto.stdout is not None
    while time.monotonic() < deadline and not any('"serving"' in line for line in lines):
        line = auto.stdout.readline()
        if not line:
            break
        lines.append(line)
    auto.terminate()
    auto.wait(30)
    for line in lines:
        if any(event in line for event in ('"cuda_unusable"', '"model_loaded"', '"serving"')):
            print("--device auto:", line.strip()[:300])
    ok &= any('"cuda_unusable"' in line for line in lines) and any('"serving"' in line for line in lines)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

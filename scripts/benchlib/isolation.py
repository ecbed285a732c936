"""An honest real-time stream beside abusive clients on the same server (scripts/bench_isolation.py tells
the steps and the soak; scripts/bench.py --isolation runs the steps)."""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scripts.benchlib.servers import bench_server
from scripts.benchlib.stats import ratio
from scripts.benchlib.streams import DEFAULT_CLIPS, playlist, run_stream, stream_figures, warm_up
from tests.support import RATE, ServerProcess, expected_utterances, to_pcm16

ABUSE_SPEED = 50.0  # times real time
ABUSE_CHUNK_S = 1.0  # big messages, so that the abusers' own client costs this machine little CPU
ISOLATION_RATIO = 2.0  # the victim's final latency p95 beside abusers, at most this times alone
STEPS: list[list[str]] = [[], ["noise"], ["speech"], ["forced_cuts"], ["noise", "speech", "forced_cuts", "noise"]]


def abuse_audio(kind: str, seconds: float = 120.0) -> bytes:
    if kind == "noise":
        rng = np.random.default_rng(11)
        return to_pcm16(rng.standard_normal(int(seconds * RATE)) * 0.3)
    if kind == "speech":
        return playlist(DEFAULT_CLIPS[1:], 3, seconds)[0]
    assert kind == "forced_cuts"
    voices = [np.frombuffer(playlist(DEFAULT_CLIPS[1:], k, seconds)[0], "<i2").astype(np.float32) for k in (0, 4)]
    # Each voice with its pauses squeezed out (frames under -40 dBFS dropped), then the two mixed.
    squeezed = []
    for voice in voices:
        frames = voice[: voice.shape[0] // 320 * 320].reshape(-1, 320)
        squeezed.append(frames[np.sqrt((frames**2).mean(axis=1)) > 328].reshape(-1))
    length = min(v.shape[0] for v in squeezed)
    mixed = 0.5 * (squeezed[0][:length] + squeezed[1][:length])
    return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


async def abuser(address: str, kind: str, stop: asyncio.Event, outcome: dict[str, Any]) -> None:
    """Stream `kind` at ABUSE_SPEED until `stop`; reconnect after the server's retry hint when it ends the stream."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    audio = abuse_audio(kind)
    size = int(RATE * ABUSE_CHUNK_S) * 2
    chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
    config = pb.StreamingConfig(
        recognition=pb.RecognitionConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16), interim_results=True
    )
    while not stop.is_set():
        outcome["streams"] += 1
        retry_s = 1.0
        async with grpc.aio.insecure_channel(address) as channel:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(timeout=600)

            async def write(call: Any = call) -> None:
                await call.write(pb.StreamingTranscribeRequest(config=config))
                for chunk in chunks:
                    if stop.is_set():
                        break
                    await call.write(pb.StreamingTranscribeRequest(audio=chunk))
                    await asyncio.sleep(ABUSE_CHUNK_S / ABUSE_SPEED)
                await call.done_writing()

            async def read(call: Any = call) -> None:
                while (response := await call.read()) is not grpc.aio.EOF:
                    if response.WhichOneof("response") == "result" and response.result.is_final:
                        outcome["finals"] += 1

            try:
                await asyncio.gather(write(), read())
                outcome["ended"]["OK"] += 1
            except grpc.RpcError as exc:
                outcome["ended"][exc.code().name] += 1
                trailers = exc.trailing_metadata() if isinstance(exc, grpc.aio.AioRpcError) else None
                pushback = dict(trailers or ()).get("grpc-retry-pushback-ms")
                retry_s = int(pushback) / 1000 if pushback else retry_s
                call.cancel()
        if not stop.is_set():
            await asyncio.sleep(retry_s)


async def step(address: str, victim_audio: bytes, kinds: list[str]) -> dict[str, Any]:
    stop = asyncio.Event()
    outcomes: list[dict[str, Any]] = [
        {"kind": k, "streams": 0, "finals": 0, "ended": collections.Counter()} for k in kinds
    ]
    abusers = [asyncio.create_task(abuser(address, k, stop, o)) for k, o in zip(kinds, outcomes, strict=True)]
    await asyncio.sleep(2.0 if kinds else 0.0)  # the abusers are at it before the victim starts
    victim = await run_stream(address, victim_audio, interim=True)
    stop.set()
    await asyncio.gather(*abusers, return_exceptions=True)
    figures = stream_figures([victim])
    return {
        "abusers": [{**o, "ended": dict(o["ended"])} for o in outcomes],
        "victim_final_latency_s": figures["final_latency_s"],
        "victim_finals": figures["finals"],
        "victim_errors": figures["errors"],
        "victim_partial_gap_s": figures["partial_gap_s"],
    }


def isolation_phase(server_args: list[str], seconds: float, results_dir: Path) -> dict[str, Any]:
    """The victim alone, then beside each STEPS' abusers, on one server (its log in results_dir/logs)."""
    victim_audio = playlist(DEFAULT_CLIPS[1:], 1, seconds)[0]
    steps = []
    with bench_server(server_args, "isolation", results_dir) as server:
        warm_up(server)
        for kinds in STEPS:
            started = time.monotonic()
            result = asyncio.run(step(server.address, victim_audio, kinds))
            result["abuser_kinds"] = kinds
            steps.append(result)
            print(
                f"  isolation {'+'.join(kinds) or 'alone'}: victim final p95 "
                f"{result['victim_final_latency_s']['p95']} s, errors {result['victim_errors']}, "
                f"abusers {[a['ended'] for a in result['abusers']]} ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
            )
        problems = server.log_problems()
    alone = steps[0]["victim_final_latency_s"]["p95"]
    for s in steps[1:]:
        s["p95_ratio_to_alone"] = ratio(s["victim_final_latency_s"]["p95"], alone)
        s["isolated"] = (
            not s["victim_errors"]
            and s["p95_ratio_to_alone"] is not None
            and s["p95_ratio_to_alone"] <= ISOLATION_RATIO
        )
    return {"steps": steps, "victim_audio_s": len(victim_audio) / 2 / RATE, "server_log_problems": problems}


def process_sample(pid: int) -> dict[str, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "rss_mib": int(status["VmRSS"].split()[0]) // 1024,
        "threads": int(status["Threads"]),
        "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
    }


async def soak(server: ServerProcess, minutes: float) -> dict[str, Any]:
    stop = asyncio.Event()
    kinds = ["noise", "speech"]
    outcomes: list[dict[str, Any]] = [
        {"kind": k, "streams": 0, "finals": 0, "ended": collections.Counter()} for k in kinds
    ]
    abusers = [asyncio.create_task(abuser(server.address, k, stop, o)) for k, o in zip(kinds, outcomes, strict=True)]
    samples: list[dict[str, Any]] = []
    honest: list[dict[str, Any]] = []
    deadline = time.monotonic() + minutes * 60

    async def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append({"t_s": round(time.monotonic() - started), **process_sample(server.pid)})
            await asyncio.sleep(10)

    async def client(index: int) -> None:
        run = 0
        while time.monotonic() < deadline:
            audio = playlist(DEFAULT_CLIPS[1:], index * 7 + run, 90.0)[0]
            record = await run_stream(server.address, audio, interim=True)
            got = [f["utterance_id"] for f in record.finals]
            honest.append(
                {
                    "client": index,
                    "run": run,
                    "error": record.error,
                    "finals": len(got),
                    "all_finals": got == expected_utterances(audio),
                    "final_latency_p95_s": stream_figures([record])["final_latency_s"]["p95"],
                }
            )
            run += 1

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(client(i) for i in range(3)))
    stop.set()
    await asyncio.gather(*abusers, sampler, return_exceptions=True)
    return {
        "minutes": minutes,
        "honest_runs": honest,
        "honest_ok": all(h["error"] is None and h["all_finals"] for h in honest),
        "abusers": [{**o, "ended": dict(o["ended"])} for o in outcomes],
        "process": samples,
    }


def soak_phase(server_args: list[str], minutes: float, results_dir: Path) -> dict[str, Any]:
    """The soak (see scripts/bench_isolation.py) on one server (its log in results_dir/logs)."""
    with bench_server(server_args, "soak", results_dir) as server:
        warm_up(server)
        result = asyncio.run(soak(server, minutes))
        result["server_log_problems"] = server.log_problems()
    return result

#!/usr/bin/env python3
"""Isolation benchmark: an honest real-time stream beside abusive clients on the same server.

The victim streams eval clips at real-time pace with partials on (a captioning client), once
alone and then beside 1 and 4 abusers. Each abuser streams, as fast as 50x real time, one of:
- `noise`: loud white noise, which the VAD takes for speech: 25 s forced cuts that Whisper
  decodes slowly (temperature fallback through every temperature);
- `speech`: the eval clips with their pauses, 50x faster than they were spoken;
- `forced_cuts`: two clips mixed into continuous babble with no pause, so every utterance is cut
  at 25 s.
An abuser that the server ends (RESOURCE_EXHAUSTED, with its retry hint) reconnects after the hint,
as a careless client would, until the victim is done.

Reported per step: the victim's final latency p50 / p95 and its ratio to the victim alone (the
target is at most 2x), the victim's errors (it must get none while it keeps real time), and what
the abusers got (finals, and the statuses that ended their streams).

With --soak-minutes N, a soak instead: 3 honest real-time captioning streams, each restarting
with fresh audio as it ends, beside 2 abusers (noise and speech at 50x) for N minutes; reports
the server's RSS, open file descriptors and threads every 10 s, and checks that every honest
stream got exactly the finals its audio calls for (the server's own segmenter, run here).

Run: .venv/bin/python scripts/bench_isolation.py [--seconds 60] [--soak-minutes 10]
(the isolation steps also run from scripts/bench.py --isolation)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench import (  # noqa: E402
    DEFAULT_CLIPS,
    RESULTS_DIR,
    bench_server,
    playlist,
    ratio,
    run_stream,
    stream_figures,
    warm_up,
)
from tests.helpers import RATE, ServerProcess, from_pcm16, to_pcm16  # noqa: E402

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


def isolation_phase(server_args: list[str], seconds: float) -> dict[str, Any]:
    victim_audio = playlist(DEFAULT_CLIPS[1:], 1, seconds)[0]
    steps = []
    with bench_server(server_args, "isolation") as server:
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


def expected_utterances(pcm: bytes) -> list[str]:
    """The utterance ids the server must finalise for this audio: its own segmenter, run here."""
    from hws.audio import TARGET_RATE
    from hws.stream.vad import Segmenter, SpeechEnd, VadParams

    samples = from_pcm16(pcm)
    segmenter = Segmenter(VadParams())
    events = segmenter.feed(samples) + segmenter.finish()
    return [f"u{e.start * 1000 // TARGET_RATE}" for e in events if isinstance(e, SpeechEnd)]


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


def soak_phase(server_args: list[str], minutes: float) -> dict[str, Any]:
    with bench_server(server_args, "soak") as server:
        warm_up(server)
        result = asyncio.run(soak(server, minutes))
        result["server_log_problems"] = server.log_problems()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="the victim's audio per step")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="run the soak for this long instead")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "isolation.json")
    args = parser.parse_args()
    if args.soak_minutes:
        result = soak_phase([], args.soak_minutes)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.with_name("soak.json").write_text(json.dumps(result, indent=2))
        for h in result["honest_runs"]:
            print(
                f"honest client {h['client']} run {h['run']}: {h['finals']} finals, all: {h['all_finals']}, "
                f"p95 {h['final_latency_p95_s']} s, error {h['error']}"
            )
        first, last = result["process"][0], result["process"][-1]
        print(f"process first {first} last {last}; abusers ended {[a['ended'] for a in result['abusers']]}")
        print(f"every honest final delivered, no honest error: {result['honest_ok']}")
        return 0
    result = isolation_phase([], args.seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    for s in result["steps"]:
        print(
            f"{'+'.join(s['abuser_kinds']) or 'alone':42s} victim final p50/p95 "
            f"{s['victim_final_latency_s']['p50']} / {s['victim_final_latency_s']['p95']} s"
            f"  ratio {s.get('p95_ratio_to_alone', '-')}  victim errors {len(s['victim_errors'])}"
            f"  abusers ended {[a['ended'] for a in s['abusers']]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

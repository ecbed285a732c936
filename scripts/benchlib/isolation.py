"""An honest real-time stream beside abusive clients on the same server (scripts/bench_isolation.py tells
the steps and the soak; scripts/bench.py --isolation runs the steps)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from scripts.benchlib.servers import bench_server
from scripts.benchlib.stats import ratio
from scripts.benchlib.streams import DEFAULT_CLIPS, playlist, run_stream, stream_figures, warm_up
from tests.support import RATE, ServerProcess, expected_utterances, metric_value, to_pcm16

ABUSE_SPEED = 50.0  # times real time
ABUSE_CHUNK_S = 1.0  # big messages, so that the abusers' own client costs this machine little CPU
ISOLATION_RATIO = 2.0  # the victim's final latency p95 beside abusers, at most this times alone
CANCEL_SPEED = 20.0  # the cancelling abuser's speech, times real time
TRICKLE_EVERY_S = 0.5  # a trickling abuser sends 2 bytes of audio this often
FLOOD_SPEED = 10.0  # the config-flooding abuser's speech (100 ms messages, each followed by an update)
SOAK_KINDS = ["noise", "speech", "cancel", "trickle", "compat_trickle", "config_flood"]
SOAK_HONEST = 3  # honest real-time captioning clients in the soak
SOAK_SAMPLE_S = 10.0
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


async def count_finals(call: Any, outcome: dict[str, Any]) -> None:
    """Read a call's responses to its end, counting its finals in outcome["finals"]."""
    import grpc

    while (response := await call.read()) is not grpc.aio.EOF:
        if response.WhichOneof("response") == "result" and response.result.is_final:
            outcome["finals"] += 1


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

            try:
                await asyncio.gather(write(), count_finals(call, outcome))
                outcome["ended"]["OK"] += 1
            except grpc.RpcError as exc:
                outcome["ended"][exc.code().name] += 1
                trailers = exc.trailing_metadata() if isinstance(exc, grpc.aio.AioRpcError) else None
                pushback = dict(trailers or ()).get("grpc-retry-pushback-ms")
                retry_s = int(pushback) / 1000 if pushback else retry_s
                call.cancel()
        if not stop.is_set():
            await asyncio.sleep(retry_s)


def _retry_after(exc: Any, default_s: float) -> float:
    """The server's retry hint (grpc-retry-pushback-ms) on an ended call, else default_s."""
    import grpc

    trailers = exc.trailing_metadata() if isinstance(exc, grpc.aio.AioRpcError) else None
    pushback = dict(trailers or ()).get("grpc-retry-pushback-ms")
    return int(pushback) / 1000 if pushback else default_s


def _outcome(kind: str) -> dict[str, Any]:
    return {"kind": kind, "streams": 0, "finals": 0, "ended": collections.Counter()}


async def canceller(address: str, stop: asyncio.Event, outcome: dict[str, Any], seed: int = 5) -> None:
    """Speech at CANCEL_SPEED with partials and word timings, the call cancelled after a random 0.5-6 s and
    opened again at once, until `stop` (outcome["cancels"]; a stream the server ends first counts in "ended")."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    rng = random.Random(seed)
    audio = abuse_audio("speech")
    size = int(RATE * ABUSE_CHUNK_S) * 2
    chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
    config = pb.StreamingConfig(
        recognition=pb.RecognitionConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16, word_timestamps=True),
        interim_results=True,
    )
    outcome["cancels"] = 0
    while not stop.is_set():
        outcome["streams"] += 1
        start = rng.randrange(len(chunks))  # a different place in the speech each time
        retry_s = 0.0
        async with grpc.aio.insecure_channel(address) as channel:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(timeout=600)

            async def write(call: Any = call, start: int = start) -> None:
                await call.write(pb.StreamingTranscribeRequest(config=config))
                for chunk in chunks[start:] + chunks[:start]:
                    await call.write(pb.StreamingTranscribeRequest(audio=chunk))
                    await asyncio.sleep(ABUSE_CHUNK_S / CANCEL_SPEED)
                await call.done_writing()

            try:
                await asyncio.wait_for(asyncio.gather(write(), count_finals(call, outcome)), rng.uniform(0.5, 6.0))
                outcome["ended"]["OK"] += 1
            except asyncio.TimeoutError:  # wait_for has cancelled the writer and the reader
                call.cancel()
                outcome["cancels"] += 1
            except grpc.RpcError as exc:
                outcome["ended"][exc.code().name] += 1
                retry_s = _retry_after(exc, 1.0)
        if retry_s and not stop.is_set():
            await asyncio.sleep(retry_s)


async def trickler(address: str, stop: asyncio.Event, outcome: dict[str, Any], compat: bool = False) -> None:
    """A config (none on the compat service) and then 2 bytes of audio every TRICKLE_EVERY_S, for ever: the
    server ends it after --audio-pace-window-s; count the ends (outcome["real_time_messages"]: the ones whose
    message says "real time") and reconnect after 1 s, until `stop`."""
    import grpc

    from hws.gen.compat import audio_transcriber_pb2 as compat_pb
    from hws.gen.compat import audio_transcriber_pb2_grpc as compat_grpc
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16))
    outcome["real_time_messages"] = 0
    outcome["stream_s"] = []
    while not stop.is_set():
        outcome["streams"] += 1
        opened = time.monotonic()
        async with grpc.aio.insecure_channel(address) as channel:

            async def requests() -> AsyncIterator[Any]:
                if not compat:
                    yield pb.StreamingTranscribeRequest(config=config)
                while not stop.is_set():
                    yield (
                        compat_pb.AudioRequest(audio_data=b"\x00\x00")
                        if compat
                        else pb.StreamingTranscribeRequest(audio=b"\x00\x00")
                    )
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), TRICKLE_EVERY_S)

            if compat:
                call = compat_grpc.AudioTranscriberServiceStub(channel).TranscribeAudio(requests(), timeout=600)
            else:
                call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(requests(), timeout=600)
            try:
                async for response in call:
                    if compat or (response.WhichOneof("response") == "result" and response.result.is_final):
                        outcome["finals"] += 1
                outcome["ended"]["OK"] += 1
            except grpc.RpcError as exc:
                outcome["ended"][exc.code().name] += 1
                outcome["real_time_messages"] += "real time" in (exc.details() or "")
            outcome["stream_s"].append(round(time.monotonic() - opened, 1))
        if not stop.is_set():
            await asyncio.sleep(1.0)


async def config_flooder(address: str, stop: asyncio.Event, outcome: dict[str, Any]) -> None:
    """Speech in 100 ms messages at FLOOD_SPEED, each followed by a config update (the same config, interim
    results toggled), reading every answer, until `stop` (outcome["updates"] sent, outcome["answers"] by
    outcome, outcome["unanswered"]: updates of streams that ended OK without their answer)."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    audio = abuse_audio("speech")
    size = RATE // 10 * 2
    chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
    configs = [
        pb.StreamingConfig(
            recognition=pb.RecognitionConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16), interim_results=interim
        )
        for interim in (True, False)
    ]
    outcome.update(updates=0, answers=collections.Counter(), unanswered=0)
    while not stop.is_set():
        outcome["streams"] += 1
        retry_s = 1.0
        sent = [0]
        answered = [0]
        async with grpc.aio.insecure_channel(address) as channel:
            call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(timeout=600)

            async def write(call: Any = call, sent: list[int] = sent) -> None:
                await call.write(pb.StreamingTranscribeRequest(config=configs[0]))
                for i, chunk in enumerate(chunks):
                    if stop.is_set():
                        break
                    await call.write(pb.StreamingTranscribeRequest(audio=chunk))
                    await call.write(pb.StreamingTranscribeRequest(config=configs[(i + 1) % 2]))
                    sent[0] += 1
                    outcome["updates"] += 1
                    await asyncio.sleep(0.1 / FLOOD_SPEED)
                await call.done_writing()

            async def read(call: Any = call, answered: list[int] = answered) -> None:
                while (response := await call.read()) is not grpc.aio.EOF:
                    which = response.WhichOneof("response")
                    if which == "config_update":
                        answered[0] += 1
                        outcome["answers"][pb.ConfigUpdate.Outcome.Name(response.config_update.outcome)] += 1
                    elif which == "result" and response.result.is_final:
                        outcome["finals"] += 1

            try:
                await asyncio.gather(write(), read())
                outcome["ended"]["OK"] += 1
                outcome["unanswered"] += sent[0] - answered[0]
            except grpc.RpcError as exc:
                outcome["ended"][exc.code().name] += 1
                retry_s = _retry_after(exc, retry_s)
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


def soak_abuser(address: str, kind: str, stop: asyncio.Event, outcome: dict[str, Any]) -> Any:
    """The coroutine of one SOAK_KINDS abuser."""
    if kind == "cancel":
        return canceller(address, stop, outcome)
    if kind in ("trickle", "compat_trickle"):
        return trickler(address, stop, outcome, compat=kind == "compat_trickle")
    if kind == "config_flood":
        return config_flooder(address, stop, outcome)
    return abuser(address, kind, stop, outcome)


async def soak_sample(server: ServerProcess, started: float) -> dict[str, Any]:
    """The server process's RSS, threads and fds, and its open and scheduled streams from /metrics (None when
    the scrape fails)."""
    sample: dict[str, Any] = {"t_s": round(time.monotonic() - started), **process_sample(server.pid)}
    try:
        metrics = await asyncio.to_thread(server.metrics)
    except OSError:
        metrics = None
    for key, name in (("scheduler_streams", "hws_scheduler_streams"), ("active_streams", "hws_active_streams")):
        sample[key] = None if metrics is None else int(metric_value(metrics, name))
    return sample


SOAK_RSS_GROWTH = (0.10, 30)  # the late RSS may exceed the early one by 10 % or by 30 MiB, whichever is more
SOAK_COUNT_GROWTH = 5  # the late fds and threads may exceed the early maximum by this many


def flat_verdict(samples: list[dict[str, Any]], clients: int, warm_up_s: float) -> dict[str, Any]:
    """The samples after warm_up_s in thirds, the last against the first: RSS max within SOAK_RSS_GROWTH of
    the early max, fds and threads max within SOAK_COUNT_GROWTH of it; the scheduler's streams never above the
    concurrent clients; and none left open or scheduled once every client is done (the "after" sample)."""
    during = [x for x in samples if x.get("phase") != "after"]
    after = [x for x in samples if x.get("phase") == "after"]
    late_enough = [x for x in during if x["t_s"] >= warm_up_s]
    third = max(1, len(late_enough) // 3)
    early, late = late_enough[:third], late_enough[-third:]
    checks: dict[str, Any] = {"warm_up_s": warm_up_s, "samples_per_third": third, "clients": clients}
    ok = bool(early)
    if early:
        for key in ("rss_mib", "fds", "threads"):
            early_max, late_max = max(x[key] for x in early), max(x[key] for x in late)
            if key == "rss_mib":
                allowed = max(early_max * SOAK_RSS_GROWTH[0], SOAK_RSS_GROWTH[1])
                extra = {"early_median": statistics.median(x[key] for x in early)}
                extra["late_median"] = statistics.median(x[key] for x in late)
            else:
                allowed, extra = SOAK_COUNT_GROWTH, {}
            flat = late_max - early_max <= allowed
            checks[key] = {"early_max": early_max, "late_max": late_max, "allowed_growth": allowed, **extra}
            checks[key]["flat"] = flat
            ok = ok and flat
    scheduled = [x["scheduler_streams"] for x in during if x.get("scheduler_streams") is not None]
    checks["scheduler_streams"] = {"max": max(scheduled, default=None), "scrapes": len(scheduled)}
    checks["scheduler_streams"]["within_clients"] = bool(scheduled) and max(scheduled) <= clients
    ok = ok and checks["scheduler_streams"]["within_clients"]
    checks["drained"] = bool(after) and after[-1]["scheduler_streams"] == 0 and after[-1]["active_streams"] == 0
    ok = ok and checks["drained"]
    checks["flat"] = ok
    return checks


async def soak(server: ServerProcess, minutes: float) -> dict[str, Any]:
    stop = asyncio.Event()
    outcomes = [_outcome(k) for k in SOAK_KINDS]
    abusers = [
        asyncio.create_task(soak_abuser(server.address, k, stop, o)) for k, o in zip(SOAK_KINDS, outcomes, strict=True)
    ]
    samples: list[dict[str, Any]] = []
    honest: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + minutes * 60

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await soak_sample(server, started))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), SOAK_SAMPLE_S)

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
    await asyncio.gather(*(client(i) for i in range(SOAK_HONEST)))
    stop.set()
    ended = await asyncio.gather(*abusers, sampler, return_exceptions=True)
    crashed = [f"{k}: {e!r}" for k, e in zip([*SOAK_KINDS, "sampler"], ended, strict=True) if e is not None]
    # Every client is done: the server should hold no stream now (a cancelled one ends within a moment).
    for _ in range(10):
        await asyncio.sleep(1.0)
        last = await soak_sample(server, started)
        if last["scheduler_streams"] == 0 and last["active_streams"] == 0:
            break
    samples.append({**last, "phase": "after"})
    clients = SOAK_HONEST + len(SOAK_KINDS)
    return {
        "minutes": minutes,
        "wall_s": round(time.monotonic() - started),
        "honest_runs": honest,
        "honest_ok": bool(honest) and all(h["error"] is None and h["all_finals"] for h in honest),
        "abusers": [
            {**o, **{k: dict(v) for k, v in o.items() if isinstance(v, collections.Counter)}} for o in outcomes
        ],
        "client_crashes": crashed,
        "process": samples,
        "verdict": flat_verdict(samples, clients, warm_up_s=min(60.0, minutes * 60 / 5)),
    }


def soak_phase(server_args: list[str], minutes: float, results_dir: Path) -> dict[str, Any]:
    """The soak (see scripts/bench_isolation.py) on one server (its log in results_dir/logs)."""
    with bench_server(server_args, "soak", results_dir) as server:
        warm_up(server)
        result = asyncio.run(soak(server, minutes))
        problems = server.log_problems(limit=1_000_000)
    result["server_log_problem_count"] = len(problems)
    result["server_log_problem_kinds"] = dict(collections.Counter(_log_event(line) for line in problems))
    result["server_log_problems"] = problems[:50]
    return result


def _log_event(line: str) -> str:
    """A log line's level and message (its first 80 characters), to count the problems by kind."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:80]
    return f"{record.get('level')}: {str(record.get('message', record.get('event', '')))[:80]}"


def soak_summary(result: dict[str, Any]) -> list[str]:
    """A few lines on a soak's result."""
    honest = result["honest_runs"]
    during = [x for x in result["process"] if x.get("phase") != "after"]
    after = [x for x in result["process"] if x.get("phase") == "after"]
    verdict = result["verdict"]
    lines = [
        f"soak {result['minutes']} min ({result['wall_s']} s): honest streams {len(honest)}, ok "
        f"{sum(h['error'] is None and h['all_finals'] for h in honest)}, finals {sum(h['finals'] for h in honest)}, "
        f"every honest final delivered and no honest error: {result['honest_ok']}"
    ]
    for a in result["abusers"]:
        extra = {k: a[k] for k in ("cancels", "real_time_messages", "updates", "answers", "unanswered") if k in a}
        lines.append(f"  abuser {a['kind']}: streams {a['streams']}, finals {a['finals']}, ended {a['ended']} {extra}")
    for key in ("rss_mib", "fds", "threads"):
        values = [x[key] for x in during]
        lines.append(f"  {key}: {values[0]} -> {values[-1]}, max {max(values)}; {verdict.get(key)}")
    scheduled = [x["scheduler_streams"] for x in during]
    active = [x["active_streams"] for x in during]
    lines.append(
        f"  scheduler streams max {verdict['scheduler_streams']['max']} (clients {verdict['clients']}), last "
        f"{scheduled[-1]}; active streams max {max((a for a in active if a is not None), default=None)}; after "
        f"the clients: scheduler {after[-1]['scheduler_streams'] if after else None}, active "
        f"{after[-1]['active_streams'] if after else None}"
    )
    lines.append(
        f"  flat: {verdict['flat']}; client crashes {result['client_crashes']}; "
        f"server log problems {result['server_log_problem_count']} {result['server_log_problem_kinds']}"
    )
    return lines

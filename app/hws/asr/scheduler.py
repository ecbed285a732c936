"""The decode scheduler: the worker threads that run a recognizer Backend, and their queue.

Knows nothing of gRPC, nor of Whisper: the backend (hws.asr.whisper.backend on faster-whisper, a fake
in the unit tests) loads the model, encodes and decodes DecodeRequests (hws.asr.types). Streams
submit requests and get concurrent futures back; the queue's Job, future included, is the
scheduler's own. Scheduling rules:
- `workers` jobs run at once (one per core on a CPU, each on its own
  single-threaded CTranslate2 replica; one on a GPU, which batches instead);
- finals are never dropped; the final of the stream that used the least decode
  time lately runs first (a stream's own finals keep their order), and finals run
  before partials unless the partial's stream used clearly less (JobQueue.pick, hws.asr.queue): a
  stream sending faster than real time, or audio that is costly to decode, waits
  for its own work, not others for it;
- a backlogged stream (more than one final queued or running: its audio comes
  faster than it is decoded) runs on the workers left over after one for each open
  stream that keeps up, and always on at least one: a decode cannot be
  interrupted, so the worker a real-time stream's next final needs must not be
  taken by another stream's backlog (JobQueue._backlog_has_room);
- each stream has at most one queued partial: a newer one replaces it (the
  replaced future resolves to None), and a final from the stream removes it;
  queued partials run least recently served stream first, one per stream at a time;
- a partial resolves to None instead of running when its stream has gone, or
  when it waited longer than `partial_max_age_s` (under overload partials thin
  out while finals keep their place);
- finals get a wide encoder margin (`encoder_padding_s`), partials a cheap one;
- jobs waiting together, from any streams, whose encoder windows are equal share
  one batched encoder pass (see _encode); each job is then decoded on its own;
- a decode that runs past `decode_timeout_s` fails its streams and reports the
  engine stalled until it returns (see _watch).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from hws import metrics
from hws.asr.queue import Job, JobQueue
from hws.asr.types import (
    Backend,
    Context,
    DecodeOptions,
    DecodeRequest,
    DecodeResult,
    DecodeTimeout,
    DecodeTiming,
    EngineNotReady,
    JobKind,
    ModelInfo,
)
from hws.audio import TARGET_RATE

log = structlog.get_logger("hws.asr.scheduler")


@dataclasses.dataclass(frozen=True)
class SchedulerSettings:
    """What the scheduler reads of the server's settings: fields of the same names (Settings.pick)."""

    encoder_padding_s: float
    partial_encoder_padding_s: float
    batch_wait_ms: int
    partial_max_age_s: float
    decode_timeout_s: float


def _fail(job: Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


class Engine:
    """The workers: `workers` threads that take batches off the JobQueue and run them on the backend, and a watchdog."""

    def __init__(self, settings: SchedulerSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.info: ModelInfo | None = None
        self._queue = JobQueue(settings.batch_wait_ms, settings.partial_max_age_s)
        self._threads: list[threading.Thread] = []
        self.max_batch_size = 1
        self.workers = 1
        self._running: dict[int, tuple[float, list[Job]]] = {}  # worker -> its batch in progress, for the watchdog
        self._stalled: set[int] = set()  # workers whose decode ran past decode_timeout_s
        self.on_stall: Callable[[bool], None] = lambda stalled: None  # called from the watchdog thread

    # -- life cycle -------------------------------------------------------
    def load(self) -> ModelInfo:
        """Load the backend's model (blocking; call from a thread) and start the workers."""
        started = time.monotonic()
        info = self.backend.load()
        self.workers = self._queue.workers = self.backend.workers
        self.max_batch_size = self._queue.max_batch_size = self.backend.max_batch_size
        self.info = info
        elapsed = time.monotonic() - started
        metrics.MODEL_LOAD_SECONDS.set(elapsed)
        log.info(
            "model_loaded",
            model=info.name,
            device=info.device,
            compute_type=info.compute_type,
            max_batch_size=self.max_batch_size,
            seconds=round(elapsed, 3),
        )
        self._threads = [
            threading.Thread(target=self._run, name=f"hws-engine-{i}", daemon=True) for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        threading.Thread(target=self._watch, name="hws-watchdog", daemon=True).start()
        return self.info

    @property
    def language_codes(self) -> frozenset[str]:
        """Every language code the backend has (the loaded model may know fewer: info.languages)."""
        return self.backend.language_codes

    def prompt(self, initial_prompt: str, hotwords: Sequence[str]) -> str | None:
        """The text that conditions a stream's every decode (the backend's rule for hot words)."""
        return self.backend.prompt(initial_prompt, hotwords)

    @property
    def stalled(self) -> bool:
        return bool(self._stalled)

    def stop(self) -> None:
        for job in self._queue.stop():
            _fail(job, EngineNotReady("the engine stopped"))
        for thread in self._threads:
            thread.join(timeout=5)

    # -- submission -------------------------------------------------------
    def submit(
        self,
        stream_id: str,
        kind: JobKind,
        audio: np.ndarray,
        options: DecodeOptions,
        context: Context | None = None,
        silence_after: int = 0,
    ) -> concurrent.futures.Future[DecodeResult | None]:
        """Queue a decode of `audio`; for a final, the audio before `context.utterance_start` is only heard.

        No word may start in the last `silence_after` samples, which the VAD heard as silence.
        """
        if self.info is None:
            raise EngineNotReady("the model is not loaded yet")
        final = kind is JobKind.FINAL
        padding_s = self.settings.encoder_padding_s if final else self.settings.partial_encoder_padding_s
        request = DecodeRequest(stream_id, kind, audio, options, padding_s, context if final else None, silence_after)
        job = Job(request, concurrent.futures.Future())
        self._queue.put(job)
        return job.future

    def has_idle_worker(self) -> bool:
        """Whether a worker would have nothing to do right now."""
        return self._queue.has_idle_worker(len(self._running))

    def close_stream(self, stream_id: str) -> None:
        """The stream is gone: its queued partial will never be read."""
        self._queue.close_stream(stream_id)

    def records_of(self, stream_id: str) -> list[str]:
        """What the scheduler still holds of a stream (JobQueue.records_of): empty once it is gone."""
        return self._queue.records_of(stream_id)

    # -- worker -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._queue.next_batch()
            if not batch:
                if self._queue.stopping:
                    break
                continue
            jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                if jobs:
                    self._run_batch(jobs)
            finally:
                self._queue.done(batch)

    def _watch(self) -> None:
        """Fail the streams of a decode that runs too long, and report the engine stalled until it returns.

        CTranslate2 cannot interrupt a decode, so the worker stays busy; health turns
        NOT_SERVING so that the load balancer sends new streams elsewhere and the
        orchestrator can replace the task if the decode never returns.
        """
        limit = self.settings.decode_timeout_s
        while not self._queue.stopping:
            time.sleep(min(1.0, limit / 4))
            for worker, (started, jobs) in list(self._running.items()):
                if worker in self._stalled or time.monotonic() - started <= limit:
                    continue
                log.error(
                    "decode_stalled",
                    seconds=round(time.monotonic() - started, 1),
                    streams=[j.stream_id for j in jobs],
                )
                was_stalled = self.stalled
                self._stalled.add(worker)
                for job in jobs:
                    _fail(job, DecodeTimeout(f"the decode ran longer than {limit:g} s; the server is recovering"))
                if not was_stalled:
                    self.on_stall(True)

    def _run_batch(self, jobs: list[Job]) -> None:
        started = time.monotonic()
        worker = threading.get_ident()
        self._running[worker] = (started, jobs)
        try:
            self._decode_batch(jobs, started)
        finally:
            del self._running[worker]
            if worker in self._stalled:
                log.info("decode_recovered", seconds=round(time.monotonic() - started, 1))
                self._stalled.discard(worker)
                if not self.stalled:
                    self.on_stall(False)

    def _decode_batch(self, jobs: list[Job], started: float) -> None:
        try:
            features = [self.backend.features(job.request.audio) for job in jobs]
            encoded = self._encode(jobs, features)
        except Exception as exc:  # the batch's streams fail; the worker and other streams go on
            log.exception("encode_failed", streams=[job.stream_id for job in jobs])
            for job in jobs:
                _fail(job, exc)
            return
        encode_s = (time.monotonic() - started) / len(jobs)
        for job, job_features, encoder_output in zip(jobs, features, encoded, strict=True):
            job_started = time.monotonic()
            try:
                result = self.backend.decode(job.request, job_features, encoder_output)
            except Exception as exc:
                log.exception("decode_failed", stream_id=job.stream_id, kind=job.kind.value)
                _fail(job, exc)
                continue
            kind = job.kind.value
            done_at = time.monotonic()
            timing = DecodeTiming(
                queued_s=started - job.enqueued,
                seconds=encode_s + done_at - job_started,
                audio_s=job.request.audio.shape[0] / TARGET_RATE,
                done_at=done_at,
            )
            log.debug(
                "decoded",
                stream_id=job.stream_id,
                kind=kind,
                audio_s=round(timing.audio_s, 2),
                context=job.request.context is not None,
                queued_s=round(timing.queued_s, 3),
                seconds=round(timing.seconds, 3),
                temperature=result.quality.temperature,
            )
            self._queue.charge(job.stream_id, timing.seconds)
            metrics.DECODE_SECONDS.labels(kind=kind).observe(timing.seconds)
            metrics.DECODED_AUDIO_SECONDS.labels(kind=kind).inc(timing.audio_s)
            if not job.future.done():  # the watchdog may have given up on it
                job.future.set_result(dataclasses.replace(result, timing=timing))

    def _encode(self, jobs: list[Job], features: list[Any]) -> list[Any]:
        """A batch-of-one encoder output per job, from one encoder pass per window length in the batch.

        The encoder has no padding mask, so jobs share a pass only when their windows are equal:
        a job's encoding never depends on the company it was batched with.
        """
        windows = [self.backend.window(f, job.request.padding_s) for f, job in zip(features, jobs, strict=True)]
        outputs: dict[int, Any] = {}
        for frames in sorted(set(windows)):
            members = [i for i, window in enumerate(windows) if window == frames]
            metrics.BATCH_SIZE.observe(len(members))
            encoded = self.backend.encode([features[i] for i in members], frames)
            outputs.update(zip(members, encoded, strict=True))
        return [outputs[i] for i in range(len(features))]

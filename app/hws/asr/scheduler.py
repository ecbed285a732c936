"""The decode scheduler: the worker threads that run a recognizer Backend, and their queue.

Knows nothing of gRPC, nor of Whisper: the backend (hws.asr.whisper.backend on faster-whisper, a fake
in the unit tests) loads the model, encodes and decodes DecodeRequests (hws.asr.types). Streams
submit requests and get concurrent futures back; the queue's Job, future included, is the
scheduler's own. Scheduling rules:
- `workers` jobs run at once (one per core on a CPU, each on its own
  single-threaded CTranslate2 replica; one on a GPU, which batches instead);
- finals are never dropped; the final of the stream that used the least decode
  time lately runs first (a stream's own finals keep their order), and finals run
  before partials unless the partial's stream used clearly less (see _pick): a
  stream sending faster than real time, or audio that is costly to decode, waits
  for its own work, not others for it;
- a backlogged stream (more than one final queued or running: its audio comes
  faster than it is decoded) runs on the workers left over after one for each open
  stream that keeps up, and always on at least one: a decode cannot be
  interrupted, so the worker a real-time stream's next final needs must not be
  taken by another stream's backlog (see _backlog_has_room);
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

import collections
import concurrent.futures
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from hws import metrics
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


@dataclasses.dataclass
class Job:
    """A request in the queue: the scheduler's own, never seen by the backend."""

    request: DecodeRequest
    future: concurrent.futures.Future[DecodeResult | None]
    enqueued: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def stream_id(self) -> str:
        return self.request.stream_id

    @property
    def kind(self) -> JobKind:
        return self.request.kind


USAGE_DECAY_S = 30.0  # how long a stream's decode time counts against it when jobs are ordered
PARTIAL_HANDICAP_S = 5.0  # decode seconds a partial's stream must have used less than a final's to go first


def _decrement(counter: collections.Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _fail(job: Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


class Engine:
    def __init__(self, settings: SchedulerSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.info: ModelInfo | None = None
        self._lock = threading.Condition()
        self._finals: collections.deque[Job] = collections.deque()
        self._partials: dict[str, Job] = {}  # stream id -> its one queued partial, insertion ordered
        self._partials_running: set[str] = set()  # streams with a partial being decoded
        self._partial_served: dict[str, float] = {}  # stream id -> when its last partial started decoding
        self._usage: dict[str, tuple[float, float]] = {}  # stream id -> (decayed decode seconds, as of when)
        self._open_finals: collections.Counter[str] = collections.Counter()  # stream id -> finals queued or running
        self._taken: collections.Counter[str] = collections.Counter()  # stream id -> its jobs on a worker now
        self._streams: set[str] = set()  # streams that submitted work and have not closed
        self._stopping = False
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
        self.workers = self.backend.workers
        self.max_batch_size = self.backend.max_batch_size
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
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
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
        with self._lock:
            if self._stopping:
                raise EngineNotReady("the engine is stopping")
            self._streams.add(stream_id)
            if kind is JobKind.FINAL:
                self._drop_partial(stream_id)  # its utterance has ended; the final supersedes it
                self._finals.append(job)
                self._open_finals[stream_id] += 1
            else:
                self._drop_partial(stream_id)
                self._partials[stream_id] = job
            self._update_depth()
            self._lock.notify()
        return job.future

    def has_idle_worker(self) -> bool:
        """Whether a worker would have nothing to do right now."""
        with self._lock:
            return len(self._running) + len(self._finals) + len(self._ready_partials()) < self.workers

    def close_stream(self, stream_id: str) -> None:
        """The stream is gone: its queued partial will never be read."""
        with self._lock:
            self._drop_partial(stream_id)
            self._partial_served.pop(stream_id, None)
            self._usage.pop(stream_id, None)
            self._streams.discard(stream_id)
            self._update_depth()
            self._lock.notify_all()  # the workers it kept for itself are free for backlogs now

    def _drop_partial(self, stream_id: str) -> None:
        old = self._partials.pop(stream_id, None)
        if old is not None:
            old.future.set_result(None)
            metrics.PARTIALS_DROPPED.inc()

    def _update_depth(self) -> None:
        metrics.QUEUE_DEPTH.labels(kind="final").set(len(self._finals))
        metrics.QUEUE_DEPTH.labels(kind="partial").set(len(self._partials))

    # -- worker -----------------------------------------------------------
    def _ready_partials(self) -> list[str]:
        """Streams whose queued partial may run.

        A stream's next partial waits while its last one is decoded: the newer audio supersedes it, and
        another worker serves another stream meanwhile. Ordered least recently served, not first queued
        (see _pick): a stream's partial is replaced every partial interval, so queue order would keep
        sending the busiest streams to the back.
        """
        return [stream_id for stream_id in self._partials if stream_id not in self._partials_running]

    def _runnable(self) -> bool:
        """Whether a queued job may take a worker now (callers hold the lock)."""
        room = self._backlog_has_room()
        return any(self._may_run(job.stream_id, room) for job in self._finals) or any(
            self._may_run(stream_id, room) for stream_id in self._ready_partials()
        )

    def _next_batch(self) -> list[Job]:
        """Up to max_batch_size jobs, in the order of _pick."""
        with self._lock:
            while not self._runnable() and not self._stopping:
                self._lock.wait()
            wait_s = self.settings.batch_wait_ms / 1000
            if wait_s and not self._stopping and len(self._finals) + len(self._partials) < self.max_batch_size:
                # Wait briefly for company: another stream's job may be about to arrive.
                deadline = time.monotonic() + wait_s
                while len(self._finals) + len(self._partials) < self.max_batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
            batch: list[Job] = []
            now = time.monotonic()
            while len(batch) < self.max_batch_size and (job := self._pick(now)) is not None:
                batch.append(job)
            self._update_depth()
            return batch

    def _pick(self, now: float) -> Job | None:
        """Take the next job off the queues (callers hold the lock).

        The first queued final of the stream that used the least decode time lately, unless a partial's
        stream used less by more than PARTIAL_HANDICAP_S: among streams of similar use finals go first,
        but a stream flooding the queue with finals does not stop everyone else's partials. Partials of
        the streams within that margin of the lightest go least recently served first. Jobs of
        backlogged streams wait while their share of the workers is taken (_backlog_has_room).
        """
        firsts: dict[str, Job] = {}
        for job in self._finals:
            firsts.setdefault(job.stream_id, job)
        room = self._backlog_has_room()
        finals = [job for job in firsts.values() if self._may_run(job.stream_id, room)]
        final = min(finals, key=lambda job: (self._used(job.stream_id, now), job.enqueued), default=None)
        for stream_id in self._ready_partials():
            if now - self._partials[stream_id].enqueued > self.settings.partial_max_age_s:
                self._drop_partial(stream_id)  # stale: the queue cannot keep up
        ready = [stream_id for stream_id in self._ready_partials() if self._may_run(stream_id, room)]
        if ready:
            light = min(self._used(stream_id, now) for stream_id in ready) + PARTIAL_HANDICAP_S
            stream_id = min(ready, key=lambda s: (self._used(s, now) > light, self._partial_served.get(s, 0.0)))
            if final is None or self._used(stream_id, now) + PARTIAL_HANDICAP_S < self._used(final.stream_id, now):
                self._partials_running.add(stream_id)
                self._partial_served[stream_id] = now
                self._taken[stream_id] += 1
                return self._partials.pop(stream_id)
        if final is not None:
            self._finals.remove(final)
            self._taken[final.stream_id] += 1
        return final

    def _backlogged(self, stream_id: str) -> bool:
        """More than one final queued or running: the stream's audio comes faster than it is decoded."""
        return self._open_finals[stream_id] > 1

    def _may_run(self, stream_id: str, backlog_room: bool) -> bool:
        """Whether a job of this stream may take a worker now; `backlog_room` is _backlog_has_room()."""
        return backlog_room or not self._backlogged(stream_id)

    def _backlog_has_room(self) -> bool:
        """Whether a backlogged stream's job may take a worker now (callers hold the lock).

        Backlogged streams together get the workers (batch places, on a GPU) left after one for each
        open stream that keeps up, and at least one. CTranslate2 cannot interrupt a decode: without
        this, a stream sending noise or continuous babble at 50x real time fills every worker with 25 s
        finals, and a real-time stream's next final waits for one of them to end. A lone backlogged
        stream (a file streamed fast) still gets every worker.
        """
        keeping_up = sum(1 for s in self._streams if not self._backlogged(s))
        share = max(1, self.workers * self.max_batch_size - keeping_up)  # in jobs: a GPU worker runs batches
        return sum(n for s, n in self._taken.items() if self._backlogged(s)) < share

    def _used(self, stream_id: str, now: float | None = None) -> float:
        """A stream's decode seconds, each weighing less as it ages (time constant USAGE_DECAY_S)."""
        seconds, since = self._usage.get(stream_id, (0.0, 0.0))
        return seconds * math.exp(-((now or time.monotonic()) - since) / USAGE_DECAY_S)

    def _charge(self, stream_id: str, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._usage[stream_id] = (self._used(stream_id, now) + seconds, now)

    def _done(self, batch: list[Job]) -> None:
        with self._lock:
            for job in batch:
                _decrement(self._taken, job.stream_id)
                if job.kind is JobKind.PARTIAL:
                    self._partials_running.discard(job.stream_id)
                else:
                    _decrement(self._open_finals, job.stream_id)
            self._lock.notify_all()  # a job that waited for this one may run now

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stopping:
                    break
                continue
            jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                if jobs:
                    self._run_batch(jobs)
            finally:
                self._done(batch)
        # Stopping: nothing queued may hang its stream.
        with self._lock:
            pending = list(self._finals) + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
        for job in pending:
            _fail(job, EngineNotReady("the engine stopped"))

    def _watch(self) -> None:
        """Fail the streams of a decode that runs too long, and report the engine stalled until it returns.

        CTranslate2 cannot interrupt a decode, so the worker stays busy; health turns
        NOT_SERVING so that the load balancer sends new streams elsewhere and the
        orchestrator can replace the task if the decode never returns.
        """
        limit = self.settings.decode_timeout_s
        while not self._stopping:
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
            self._charge(job.stream_id, timing.seconds)
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

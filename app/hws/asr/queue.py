"""The decode queue: which job a free worker takes next, for fairness between streams (hws.asr.scheduler).

The rules are the scheduler's (its docstring lists them); this class holds the queues and the per-stream
accounts they read (decode time used lately, finals open, jobs on a worker), under one condition that
the workers wait on. It runs no decode and starts no thread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import math
import threading
import time

from hws import metrics
from hws.asr.types import DecodeRequest, DecodeResult, EngineNotReady, JobKind

USAGE_DECAY_S = 30.0  # how long a stream's decode time counts against it when jobs are ordered
PARTIAL_HANDICAP_S = 5.0  # decode seconds a partial's stream must have used less than a final's to go first


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


def _decrement(counter: collections.Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class JobQueue:
    def __init__(self, batch_wait_ms: int, partial_max_age_s: float) -> None:
        self._batch_wait_s = batch_wait_ms / 1000
        self._partial_max_age_s = partial_max_age_s
        self._lock = threading.Condition()
        self._finals: collections.deque[Job] = collections.deque()
        self._partials: dict[str, Job] = {}  # stream id -> its one queued partial, insertion ordered
        self._partials_running: set[str] = set()  # streams with a partial being decoded
        self._partial_served: dict[str, float] = {}  # stream id -> when its last partial started decoding
        self._usage: dict[str, tuple[float, float]] = {}  # stream id -> (decayed decode seconds, as of when)
        self._open_finals: collections.Counter[str] = collections.Counter()  # stream id -> finals queued or running
        self._taken: collections.Counter[str] = collections.Counter()  # stream id -> its jobs on a worker now
        self._streams: set[str] = set()  # streams that submitted work and have not closed
        self.stopping = False
        self.workers = 1  # settled when the model is loaded
        self.max_batch_size = 1

    def put(self, job: Job) -> None:
        """Queue a job: a final behind its stream's finals, a partial in place of its stream's queued one."""
        stream_id = job.stream_id
        with self._lock:
            if self.stopping:
                raise EngineNotReady("the engine is stopping")
            self._streams.add(stream_id)
            self._drop_partial(stream_id)  # a final supersedes it (its utterance has ended), a partial replaces it
            if job.kind is JobKind.FINAL:
                self._finals.append(job)
                self._open_finals[stream_id] += 1
            else:
                self._partials[stream_id] = job
            self._update_depth()
            self._lock.notify()

    def has_idle_worker(self, running: int) -> bool:
        """Whether a worker would have nothing to do right now, with `running` batches on the workers."""
        with self._lock:
            return running + len(self._finals) + len(self._ready_partials()) < self.workers

    def stop(self) -> list[Job]:
        """Wake every waiting worker to stop, and hand back the jobs still queued (nothing may hang on them)."""
        with self._lock:
            self.stopping = True
            pending = list(self._finals) + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
            self._lock.notify_all()
        return pending

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
            if not old.future.done():  # the session may have cancelled it already (its client went away)
                old.future.set_result(None)
            metrics.PARTIALS_DROPPED.inc()

    def _update_depth(self) -> None:
        metrics.QUEUE_DEPTH.labels(kind="final").set(len(self._finals))
        metrics.QUEUE_DEPTH.labels(kind="partial").set(len(self._partials))
        metrics.SCHEDULER_STREAMS.set(len(self._streams))

    def _ready_partials(self) -> list[str]:
        """Streams whose queued partial may run.

        A stream's next partial waits while its last one is decoded: the newer audio supersedes it, and
        another worker serves another stream meanwhile. Ordered least recently served, not first queued
        (see pick): a stream's partial is replaced every partial interval, so queue order would keep
        sending the busiest streams to the back.
        """
        return [stream_id for stream_id in self._partials if stream_id not in self._partials_running]

    def _runnable(self) -> bool:
        """Whether a queued job may take a worker now (callers hold the lock)."""
        room = self._backlog_has_room()
        return any(self._may_run(job.stream_id, room) for job in self._finals) or any(
            self._may_run(stream_id, room) for stream_id in self._ready_partials()
        )

    def next_batch(self) -> list[Job]:
        """Up to max_batch_size jobs, in the order of pick."""
        with self._lock:
            while not self._runnable() and not self.stopping:
                self._lock.wait()
            wait_s = self._batch_wait_s
            if wait_s and not self.stopping and len(self._finals) + len(self._partials) < self.max_batch_size:
                # Wait briefly for company: another stream's job may be about to arrive.
                deadline = time.monotonic() + wait_s
                while len(self._finals) + len(self._partials) < self.max_batch_size and not self.stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
            batch: list[Job] = []
            now = time.monotonic()
            while len(batch) < self.max_batch_size and (job := self.pick(now)) is not None:
                batch.append(job)
            self._update_depth()
            return batch

    def pick(self, now: float) -> Job | None:
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
            if now - self._partials[stream_id].enqueued > self._partial_max_age_s:
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

    def charge(self, stream_id: str, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            if stream_id in self._streams:  # a decode that ends after its stream closed leaves no account behind
                self._usage[stream_id] = (self._used(stream_id, now) + seconds, now)

    def records_of(self, stream_id: str) -> list[str]:
        """The names of the records that still hold the stream: none once it closed and its jobs ended."""
        with self._lock:
            records = {
                "streams": stream_id in self._streams,
                "finals": any(job.stream_id == stream_id for job in self._finals),
                "partials": stream_id in self._partials,
                "partials_running": stream_id in self._partials_running,
                "partial_served": stream_id in self._partial_served,
                "usage": stream_id in self._usage,
                "open_finals": stream_id in self._open_finals,
                "taken": stream_id in self._taken,
            }
        return [name for name, held in records.items() if held]

    def done(self, batch: list[Job]) -> None:
        with self._lock:
            for job in batch:
                _decrement(self._taken, job.stream_id)
                if job.kind is JobKind.PARTIAL:
                    self._partials_running.discard(job.stream_id)
                else:
                    _decrement(self._open_finals, job.stream_id)
            self._lock.notify_all()  # a job that waited for this one may run now

"""hws.asr.scheduler: fairness between streams, its queues driven by hand over a FakeBackend."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hws.server.settings import Settings
from tests.support import FakeBackend


def test_the_stream_that_used_the_least_decode_time_is_served_first() -> None:
    from hws.asr.scheduler import Engine, SchedulerSettings
    from hws.asr.types import DecodeOptions, JobKind, ModelInfo

    engine = Engine(Settings().pick(SchedulerSettings), FakeBackend())
    engine.info = ModelInfo("queues only", "", "cpu", "int8", False)  # not loaded, so no workers: _next_batch by hand
    audio, options = np.zeros(16_000, np.float32), DecodeOptions()

    def next_job() -> tuple[str, JobKind]:
        (job,) = engine._queue.next_batch()
        engine._queue.done([job])
        return job.stream_id, job.kind

    for _ in range(2):
        engine.submit("flood", JobKind.FINAL, audio, options)
    engine._queue.charge("flood", 20.0)  # a stream that kept the workers busy lately
    engine.submit("captions", JobKind.PARTIAL, audio, options)
    engine.submit("other", JobKind.PARTIAL, audio, options)
    engine._queue.charge("other", 1.0)
    # A light stream's partials go before the flooding stream's finals, least recently served first.
    assert next_job() == ("captions", JobKind.PARTIAL)
    assert next_job() == ("other", JobKind.PARTIAL)
    engine.submit("captions", JobKind.FINAL, audio, options)
    engine.submit("other", JobKind.FINAL, audio, options)
    # Finals: the least used stream first; the flooding stream's in their own order, last.
    assert [next_job() for _ in range(4)] == [
        ("captions", JobKind.FINAL),
        ("other", JobKind.FINAL),
        ("flood", JobKind.FINAL),
        ("flood", JobKind.FINAL),
    ]
    # Among streams of similar use, a final goes before a partial.
    engine.submit("other", JobKind.PARTIAL, audio, options)
    engine.submit("captions", JobKind.FINAL, audio, options)
    assert [next_job() for _ in range(2)] == [("captions", JobKind.FINAL), ("other", JobKind.PARTIAL)]


def test_a_backlogged_stream_leaves_a_worker_for_each_stream_that_keeps_up() -> None:
    from hws.asr.scheduler import Engine, SchedulerSettings
    from hws.asr.types import DecodeOptions, JobKind, ModelInfo

    engine = Engine(Settings().pick(SchedulerSettings), FakeBackend())
    engine.info = ModelInfo("queues only", "", "cpu", "int8", False)  # not loaded, so no workers: the queues by hand
    engine._queue.workers = 2
    audio, options = np.zeros(16_000, np.float32), DecodeOptions()

    def take() -> Any:
        with engine._queue._lock:
            return engine._queue.pick(time.monotonic())

    def label(job: Any) -> tuple[str, JobKind] | None:
        return None if job is None else (job.stream_id, job.kind)

    engine.submit("captions", JobKind.PARTIAL, audio, options)
    engine._queue.done([take()])  # a captioning stream, open and keeping up
    for _ in range(5):  # babble at 50x real time: utterance after utterance, each a final
        engine.submit("flood", JobKind.FINAL, audio, options)
    # Two workers, one stream keeping up: the backlog gets one of them, and waits for it.
    flood = take()
    assert label(flood) == ("flood", JobKind.FINAL)
    assert take() is None
    # The stream that keeps up finds the other worker free.
    engine.submit("captions", JobKind.FINAL, audio, options)
    captions = take()
    assert label(captions) == ("captions", JobKind.FINAL)
    engine._queue.done([captions])
    # When it has gone, a lone backlog gets every worker.
    engine.close_stream("captions")
    second = take()
    assert label(second) == ("flood", JobKind.FINAL)
    assert take() is None  # both workers hold its finals
    engine._queue.done([flood])
    assert label(take()) == ("flood", JobKind.FINAL)

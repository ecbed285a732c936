"""The scheduler's promises (app/hws/asr/scheduler.py), on real worker threads with a fake backend: no model, fast."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from hws.asr.scheduler import Engine, SchedulerSettings
from hws.asr.types import DecodeOptions, DecodeTimeout, JobKind
from hws.server.settings import Settings
from tests.support import FakeBackend

SECOND = np.zeros(16_000, np.float32)
OPTIONS = DecodeOptions()


@pytest.fixture
def make_engine() -> Iterator[Callable[..., tuple[Engine, FakeBackend]]]:
    engines: list[Engine] = []

    def make(workers: int = 1, max_batch_size: int = 1, **settings: Any) -> tuple[Engine, FakeBackend]:
        backend = FakeBackend(workers, max_batch_size)
        engine = Engine(Settings(**settings).pick(SchedulerSettings), backend)
        engine.load()
        engines.append(engine)
        return engine, backend

    yield make
    for engine in engines:
        for stream_id in list(engine.backend._gates):  # type: ignore[attr-defined]
            engine.backend.release(stream_id)  # type: ignore[attr-defined]
        engine.stop()


def busy(engine: Engine, backend: FakeBackend, stream_id: str = "busy") -> concurrent.futures.Future[Any]:
    """Keep a worker on a final of `stream_id` until backend.release(stream_id)."""
    backend.hold(stream_id)
    future = engine.submit(stream_id, JobKind.FINAL, SECOND, OPTIONS)
    assert backend.started.acquire(timeout=5)
    return future


def test_finals_run_before_partials_and_every_final_is_decoded(make_engine: Any) -> None:
    engine, backend = make_engine()
    first = busy(engine, backend)
    partial = engine.submit("b", JobKind.PARTIAL, SECOND, OPTIONS)
    finals = [engine.submit(s, JobKind.FINAL, SECOND, OPTIONS) for s in ("c", "d", "c")]
    backend.release("busy")
    assert [f.result(timeout=5).text for f in (first, *finals)] == ["busy", "c", "d", "c"]
    assert partial.result(timeout=5).text == "b"
    assert backend.decoded == [("busy", "final"), ("c", "final"), ("d", "final"), ("c", "final"), ("b", "partial")]


def test_a_newer_partial_replaces_the_queued_one_and_a_final_removes_it(make_engine: Any) -> None:
    engine, backend = make_engine()
    busy(engine, backend)
    older = engine.submit("a", JobKind.PARTIAL, SECOND, OPTIONS)
    newer = engine.submit("a", JobKind.PARTIAL, np.zeros(32_000, np.float32), OPTIONS)
    assert older.done() and older.result() is None  # replaced: resolved at once, never decoded
    superseded = engine.submit("b", JobKind.PARTIAL, SECOND, OPTIONS)
    final = engine.submit("b", JobKind.FINAL, SECOND, OPTIONS)
    assert superseded.result(timeout=0) is None
    backend.release("busy")
    assert newer.result(timeout=5).text == "a" and final.result(timeout=5).text == "b"
    assert backend.decoded.count(("a", "partial")) == 1 and ("b", "partial") not in backend.decoded


def test_a_partial_that_waited_too_long_is_dropped_but_a_final_is_not(make_engine: Any) -> None:
    engine, backend = make_engine(partial_max_age_s=0.05)
    busy(engine, backend)
    partial = engine.submit("a", JobKind.PARTIAL, SECOND, OPTIONS)
    final = engine.submit("b", JobKind.FINAL, SECOND, OPTIONS)
    time.sleep(0.2)
    backend.release("busy")
    assert partial.result(timeout=5) is None
    assert final.result(timeout=5).text == "b"
    assert ("a", "partial") not in backend.decoded


def test_a_batch_shares_an_encoder_pass_only_between_equal_windows(make_engine: Any) -> None:
    engine, backend = make_engine(max_batch_size=8)
    busy(engine, backend)
    futures = [
        engine.submit("a", JobKind.FINAL, SECOND, OPTIONS),
        engine.submit("b", JobKind.FINAL, SECOND, OPTIONS),
        engine.submit("c", JobKind.FINAL, np.zeros(80_000, np.float32), OPTIONS),
        engine.submit("d", JobKind.PARTIAL, SECOND, OPTIONS),  # a partial's margin is narrower: another window
    ]
    backend.release("busy")
    for future in futures:
        assert future.result(timeout=5) is not None
    settings = engine.settings
    window = {
        16_000: {
            backend.window(SECOND, settings.encoder_padding_s),
            backend.window(SECOND, settings.partial_encoder_padding_s),
        },
        80_000: {backend.window(np.zeros(80_000), settings.encoder_padding_s)},
    }
    batched = backend.passes[1:]  # after the busy job's own pass
    assert sorted(sorted(lengths) for _, lengths in batched) == [[16_000], [16_000, 16_000], [80_000]]
    for frames, lengths in batched:
        assert all(frames in window[length] for length in lengths)
    assert len({frames for frames, _ in batched}) == len(batched)  # one pass per window


def test_a_hung_decode_trips_the_watchdog_and_the_engine_recovers_when_it_returns(make_engine: Any) -> None:
    engine, backend = make_engine(decode_timeout_s=0.2)
    stalls: list[bool] = []
    changed = threading.Condition()

    def on_stall(stalled: bool) -> None:
        with changed:
            stalls.append(stalled)
            changed.notify_all()

    engine.on_stall = on_stall
    hung = busy(engine, backend, "hung")
    with pytest.raises(DecodeTimeout, match=r"the decode ran longer than 0\.2 s"):
        hung.result(timeout=5)
    with changed:
        assert changed.wait_for(lambda: stalls == [True], timeout=5)
    assert engine.stalled
    backend.release("hung")
    with changed:
        assert changed.wait_for(lambda: stalls == [True, False], timeout=5)
    assert not engine.stalled
    assert engine.submit("after", JobKind.FINAL, SECOND, OPTIONS).result(timeout=5).text == "after"


def test_a_backlogged_stream_gets_only_the_workers_left_by_the_streams_that_keep_up(make_engine: Any) -> None:
    engine, backend = make_engine(workers=2)
    assert engine.submit("captions", JobKind.PARTIAL, SECOND, OPTIONS).result(timeout=5) is not None
    assert backend.started.acquire(timeout=0)  # a captioning stream, open and keeping up
    backend.hold("flood")
    flood = [engine.submit("flood", JobKind.FINAL, SECOND, OPTIONS) for _ in range(4)]
    assert backend.started.acquire(timeout=5)  # the flood's first final
    assert not backend.started.acquire(timeout=0.2)  # the second worker stays free for the stream keeping up
    assert engine.submit("captions", JobKind.FINAL, SECOND, OPTIONS).result(timeout=5).text == "captions"
    assert backend.started.acquire(timeout=0)
    assert backend.peak["flood"] == 1
    engine.close_stream("captions")  # a lone backlog gets every worker
    assert backend.started.acquire(timeout=5)  # its second final, beside its first
    assert backend.running["flood"] == 2
    backend.release("flood")
    assert [f.result(timeout=5).text for f in flood] == ["flood"] * 4


@pytest.mark.parametrize("kind", [JobKind.PARTIAL, JobKind.FINAL])
@pytest.mark.parametrize("state", ["queued", "running", "done"])
def test_a_client_cancel_in_any_state_of_its_jobs_leaves_no_trace_of_the_stream(
    make_engine: Any, kind: JobKind, state: str
) -> None:
    """What Session.close does when a client goes away: cancel its futures, then close the stream."""
    engine, backend = make_engine(workers=2)
    blockers = [busy(engine, backend, "busy-1"), busy(engine, backend, "busy-2")] if state == "queued" else []
    if state == "running":
        backend.hold("gone")
    future = engine.submit("gone", kind, SECOND, OPTIONS)
    if state == "running":
        assert backend.started.acquire(timeout=5)
    if state == "done":
        assert future.result(timeout=5) is not None
        assert backend.started.acquire(timeout=0)
    future.cancel()
    engine.close_stream("gone")  # raised InvalidStateError for a cancelled queued partial, and kept the stream
    for stream_id in list(backend._gates):
        backend.release(stream_id)
    for blocker in blockers:
        assert blocker.result(timeout=5) is not None
    for stream_id in ("busy-1", "busy-2"):
        engine.close_stream(stream_id)
    deadline = time.monotonic() + 5
    while engine.records_of("gone") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.records_of("gone") == []
    while backend.started.acquire(timeout=0.2):
        pass
    # A lone backlogged stream (a file sent fast) gets every worker again: nothing counts "gone" as keeping up.
    backend.hold("fast")
    fast = [engine.submit("fast", JobKind.FINAL, SECOND, OPTIONS) for _ in range(3)]
    assert backend.started.acquire(timeout=5) and backend.started.acquire(timeout=5)
    assert backend.running["fast"] == 2
    backend.release("fast")
    assert [f.result(timeout=5).text for f in fast] == ["fast"] * 3


def test_a_session_closed_while_its_reader_still_runs_submits_nothing(make_engine: Any) -> None:
    """Python 3.11's wait_for can lose the reader's cancel; a decode asked for after close() is refused."""
    import asyncio

    from hws.audio import TARGET_RATE, Encoding
    from hws.stream.outputs import StreamParams
    from hws.stream.session import Session
    from hws.stream.vad import VadParams

    engine, _ = make_engine()
    engine.info = engine.backend.load()
    params = StreamParams(Encoding.LINEAR16, TARGET_RATE, 1, "en", False, None, VadParams(), True, False)
    session = Session("late", params, engine, partial_interval_ms=700)
    noise = np.random.default_rng(3).standard_normal(3 * TARGET_RATE)  # the VAD hears loud noise as speech
    speech = (0.3 * noise * 32767).clip(-32768, 32767).astype("<i2")
    session.close()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(session.push(speech.tobytes()))  # voiced audio: a partial is due
    assert engine.records_of("late") == []

"""A stream driven from audio in hand, on a simulated clock: the session's policy measured without a network.

The audio goes in as chunks of `chunk_s`; the clock advances by a chunk's length as each is sent, and
before the next chunk every decode asked for has come back and every result was read. So the run
is the same each time for a given recognizer, and what it shows is the policy's own choices (which
partials, from where, which finals early, with what context), not the machine's speed. Used by the
session's unit tests with a fake backend, and by anyone with a real one (scripts/simulate_stream.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from hws.asr.scheduler import Engine
from hws.audio import TARGET_RATE, float_to_pcm16
from hws.stream.outputs import Output, Reconfigure, StreamFailure, StreamParams
from hws.stream.session import Session

SETTLE_POLL_S = 0.001
SETTLE_LIMIT_S = 30.0  # a decode slower than this is not waited for: the run goes on, no longer settled


class SimulatedClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class SimulatedRun:
    outputs: list[Output]
    failure: StreamFailure | None  # what ended the stream, if it did not end cleanly


async def simulate(
    audio: np.ndarray,
    params: StreamParams,
    engine: Engine,
    *,
    partial_interval_ms: int = 700,
    chunk_s: float = 0.1,
    max_age_s: float = 0.0,
    max_age_overrun_s: float = 0.0,
    **session_options: Any,
) -> SimulatedRun:
    """Stream 16 kHz float `audio` (sent as LINEAR16) through a session on `engine`, which must be loaded."""
    clock = SimulatedClock()
    session = Session(
        "simulated",
        params,
        engine,
        partial_interval_ms,
        max_age_s=max_age_s,
        max_age_overrun_s=max_age_overrun_s,
        clock=clock,
        **session_options,
    )
    outputs: list[Output] = []
    failure: StreamFailure | None = None

    async def read() -> None:
        nonlocal failure
        try:
            async for output in session.results():
                outputs.append(output)
        except StreamFailure as exc:
            failure = exc

    async def chunks() -> AsyncIterator[bytes | Reconfigure]:
        step = round(chunk_s * TARGET_RATE)
        for start in range(0, audio.shape[0], step):
            yield float_to_pcm16(audio[start : start + step])
            clock.now += chunk_s
            await _settle(session)

    reader = asyncio.create_task(read())
    try:
        await session.consume(chunks(), idle_timeout_s=SETTLE_LIMIT_S, stop=asyncio.Event())
        await reader
    finally:
        session.close()
    return SimulatedRun(outputs, failure)


async def _settle(session: Session) -> None:
    """Until every decode the session asked for has come back and every result was read."""
    for _ in range(round(SETTLE_LIMIT_S / SETTLE_POLL_S)):
        if session.settled():
            break
        await asyncio.sleep(SETTLE_POLL_S)
    await asyncio.sleep(5 * SETTLE_POLL_S)  # the reader's last step after the queue emptied

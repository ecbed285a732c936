"""The output side of a stream: decodes awaited in submission order and turned into results.

The session (hws.stream.session) puts items here in stream order as its audio is read: events, config
answers, pending partials and finals, final positions, and at last the failure or the end. `results()`
awaits each decode in that order, so a stream's output is always ordered (events, partials and the
final of utterance k before anything of utterance k+1), and partials are stabilised on the way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import TypeVar

from hws import metrics
from hws.asr.quality import Flag
from hws.asr.types import DecodeResult, EngineNotReady
from hws.audio import TARGET_RATE
from hws.stream.outputs import (
    ConfigAck,
    Event,
    FailureCode,
    Output,
    Progress,
    Result,
    StreamFailure,
    StreamParams,
    WordTiming,
    result_timing,
)
from hws.stream.policy import PartialProgress
from hws.stream.stabilizer import LocalAgreement
from hws.text import has_words

MIN_COMMIT_AUDIO_S = 2.0  # partials from less audio are shown but never committed (see stabilizer)
MAX_PENDING_FINALS = 4  # per stream; past it reading pauses (gRPC flow control slows the sender)
MAX_PENDING_UPDATE_ANSWERS = 8  # per stream, the same way: a client that floods updates holds no more

_Out = TypeVar("_Out", bound=Output)


@dataclasses.dataclass
class Utterance:
    id: str
    start: int
    params: StreamParams  # the settings it started with; it ends under them whatever arrives meanwhile
    stabilizer: LocalAgreement = dataclasses.field(default_factory=LocalAgreement)
    partial_audio_len: int = 0  # samples covered by the last partial request
    committed_at: int = 0  # the audio length of the partial that last extended the stable text
    speculative: tuple[int, Future[DecodeResult | None]] | None = None  # (end, its final) started in a pause
    partials_sent: bool = False
    closed: bool = False  # ended: partials still in flight are stale

    def progress(self) -> PartialProgress:
        return PartialProgress(
            self.partial_audio_len, self.partials_sent, self.stabilizer.committed_words, self.committed_at
        )


@dataclasses.dataclass
class PendingPartial:
    utterance: Utterance
    audio_len: int
    future: Future[DecodeResult | None]
    audio_end_at: float  # when the audio it covers had arrived (it was requested then)
    start: int = 0  # where the decoded audio begins in the utterance: > 0 for a tail


@dataclasses.dataclass
class PendingFinal:
    utterance: Utterance
    end: int
    future: Future[DecodeResult | None]
    voiced_at: float  # when the utterance's last voiced audio had arrived
    endpoint_at: float  # when the audio that ended the utterance had arrived (or the stream ended)


@dataclasses.dataclass
class FinalUpTo:
    position: int  # samples before it are final once every earlier item is delivered


Item = Event | ConfigAck | PendingPartial | PendingFinal | FinalUpTo | StreamFailure | None


class Delivery:
    """The stream's items in order, and the results they become (see the module docstring)."""

    def __init__(self, start: int, clock: Callable[[], float], backlog_timeout_s: float = 10.0) -> None:
        self._clock = clock
        self._backlog_timeout_s = backlog_timeout_s
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self.final_slots = asyncio.Semaphore(MAX_PENDING_FINALS)  # taken by the reader, freed as delivered
        self.answer_slots = asyncio.Semaphore(MAX_PENDING_UPDATE_ANSWERS)
        self._final_pos = start  # the last final position delivered
        self._reported_pos = start  # the last final position sent to the client

    def put(self, item: Item) -> None:
        self.items.put_nowait(item)

    async def slot(self, slots: asyncio.Semaphore, what: str) -> None:
        """Wait while too many of `what` are pending (flow control slows the sender), but not for long."""
        try:
            await asyncio.wait_for(slots.acquire(), self._backlog_timeout_s)
        except TimeoutError:
            raise StreamFailure(
                FailureCode.OVERLOADED,
                f"the server fell {self._backlog_timeout_s:g} s behind on this stream's {what}; "
                "resume from the last final_offset_s after the retry delay",
                retry_after_s=self._backlog_timeout_s,
            ) from None

    async def results(self) -> AsyncIterator[Output]:
        """Everything the stream produces, in order; raises the StreamFailure that ended it, if any."""
        while (item := await self.items.get()) is not None:
            if isinstance(item, StreamFailure):
                raise item
            if isinstance(item, Event | ConfigAck):
                if isinstance(item, ConfigAck):
                    self.answer_slots.release()
                yield self._note_reported(dataclasses.replace(item, final_offset_s=self._final_pos / TARGET_RATE))
            elif isinstance(item, FinalUpTo):
                self._final_pos = max(self._final_pos, item.position)
                if self._final_pos > self._reported_pos:
                    yield self._note_reported(Progress(self._final_pos / TARGET_RATE))
            elif isinstance(item, PendingPartial):
                partial = await self._partial(item)
                if partial is not None:
                    yield partial
            else:
                final = await self._final(item)
                if final is not None:
                    yield final

    def _note_reported(self, output: _Out) -> _Out:
        self._reported_pos = max(self._reported_pos, round(output.final_offset_s * TARGET_RATE))
        return output

    async def _decoded(self, future: Future[DecodeResult | None]) -> DecodeResult | None:
        """The decode's result; one without a word in it (a tone heard as "...") as empty text."""
        try:
            decoded = await asyncio.wrap_future(future)
        except EngineNotReady as exc:
            raise StreamFailure(FailureCode.UNAVAILABLE, f"the server stopped decoding: {exc}") from None
        except Exception as exc:
            raise StreamFailure(FailureCode.INTERNAL, f"decoding failed: {type(exc).__name__}: {exc}") from None
        if decoded is not None and decoded.text and not has_words(decoded.text):
            return dataclasses.replace(decoded, text="", words=[])
        return decoded

    async def _partial(self, item: PendingPartial) -> Result | None:
        decoded = await self._decoded(item.future)
        utterance = item.utterance
        if decoded is None or utterance.closed or not decoded.text:
            return None
        committed = utterance.stabilizer.committed_words
        stabilized = utterance.stabilizer.update(
            decoded.text, item.audio_len >= MIN_COMMIT_AUDIO_S * TARGET_RATE, tail=item.start > 0
        )
        if utterance.stabilizer.committed_words > committed:
            utterance.committed_at = item.audio_len
        utterance.partials_sent = True
        assert decoded.timing is not None
        sent_at = self._clock()
        timing = result_timing(item.audio_end_at, item.audio_end_at, decoded.timing, sent_at)
        metrics.PARTIAL_LATENCY.observe(sent_at - item.audio_end_at)
        metrics.QUEUE_WAIT.labels(kind="partial").observe(timing.queue_wait_s)
        start = utterance.start / TARGET_RATE
        return Result(
            final_offset_s=self._final_pos / TARGET_RATE,
            utterance_id=utterance.id,
            is_final=False,
            text=stabilized.text,
            stable_text=stabilized.stable_text,
            stability=stabilized.stability,
            words=[],
            confidence=decoded.confidence,
            language=decoded.language,
            language_probability=decoded.language_probability,
            start_s=start,
            end_s=start + item.audio_len / TARGET_RATE,
            quality=decoded.quality,
            timing=timing,
        )

    async def _final(self, item: PendingFinal) -> Result | None:
        try:
            decoded = await self._decoded(item.future)
        finally:
            self.final_slots.release()
        assert decoded is not None  # finals are never dropped
        utterance = item.utterance
        metrics.UTTERANCES.labels(outcome="transcribed" if decoded.text else "empty").inc()
        self._final_pos = max(self._final_pos, item.end)  # the next utterance starts at or after this one's end
        if not decoded.text and not utterance.partials_sent:
            return None  # nothing was said, and nothing shown that needs replacing
        signals = decoded.quality
        if utterance.stabilizer.committed_text:
            revised = utterance.stabilizer.revises(decoded.text)
            metrics.STABLE_TEXT_FINALS.labels(revised=str(revised).lower()).inc()
            if revised:
                signals = dataclasses.replace(signals, flags=(*signals.flags, Flag.STABLE_TEXT_REVISED))
        for flag in signals.flags:
            metrics.FINAL_FLAGS.labels(flag=flag.value).inc()
        start = utterance.start / TARGET_RATE
        end = item.end / TARGET_RATE
        words = [
            WordTiming(w.word, min(start + w.start, end), min(start + w.end, end), w.probability) for w in decoded.words
        ]
        assert decoded.timing is not None
        sent_at = self._clock()
        timing = result_timing(item.voiced_at, item.endpoint_at, decoded.timing, sent_at)
        metrics.FINAL_LATENCY.observe(sent_at - item.endpoint_at)
        metrics.ENDPOINT_WAIT.observe(timing.endpoint_wait_s)
        metrics.QUEUE_WAIT.labels(kind="final").observe(timing.queue_wait_s)
        return self._note_reported(
            Result(
                final_offset_s=self._final_pos / TARGET_RATE,
                utterance_id=utterance.id,
                is_final=True,
                text=decoded.text,
                stable_text=decoded.text,
                stability=1.0,
                words=words,
                confidence=decoded.confidence,
                language=decoded.language,
                language_probability=decoded.language_probability,
                start_s=start,
                end_s=end,
                quality=signals,
                timing=timing,
            )
        )

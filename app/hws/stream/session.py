"""One stream's state machine: audio in, decode jobs out, results in order back.

Knows nothing of gRPC: the servicer hands it an async iterator of audio chunks
and relays what `results()` yields. Two tasks meet here: `consume()` reads
audio, runs the VAD and submits jobs; `results()` awaits the jobs in
submission order and turns them into results, so a stream's output is always
ordered (events, partials and the final of utterance k before anything of
utterance k+1).

Settings may change mid-stream (`Reconfigure`, read in order with the audio):
each utterance keeps the settings it started with, and the new ones apply
from the next utterance on.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import enum
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import TypeVar

import numpy as np
import structlog

from hws import metrics
from hws.asr.quality import Flag
from hws.asr.scheduler import Engine
from hws.asr.types import Context, DecodeOptions, DecodeResult, DecodeTiming, EngineNotReady, JobKind, Quality
from hws.audio import TARGET_RATE, AudioDecoder, AudioFormatError, Encoding, RecentAudio
from hws.stream.stabilizer import LocalAgreement
from hws.stream.vad import Segmenter, SegmenterEvent, SpeechDiscarded, SpeechEnd, SpeechStart, VadParams

log = structlog.get_logger("hws.session")

MIN_PARTIAL_AUDIO_S = 0.5
MIN_COMMIT_AUDIO_S = 2.0  # partials from less audio are shown but never committed (see stabilizer)
# A partial reads the utterance's tail from this long before the audio that last extended its stable
# text (so the tail overlaps the last committed words), once that skips at least PARTIAL_TAIL_MIN_SKIP_S.
PARTIAL_TAIL_OVERLAP_S = 3.0
PARTIAL_TAIL_MIN_SKIP_S = 2.0
PARTIAL_SILENCE_CUTOFF_MS = 240  # no partials once the speaker has paused this long: the final is near
MAX_PENDING_FINALS = 4  # per stream; past it reading pauses (gRPC flow control slows the sender)
MAX_PENDING_UPDATE_ANSWERS = 8  # per stream, the same way: a client that floods updates holds no more
PROGRESS_STEP_S = 2.0  # through silence, the final offset is reported at least this often
# A final hears the stream from the previous utterance's start (see WhisperBackend.decode), if that fits this.
CONTEXT_WINDOW_S = 28.0
# Arrival times are kept per this much audio at the finest: a client sending tiny messages costs no more.
ARRIVAL_STEP = TARGET_RATE // 100


class FailureCode(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    OVERLOADED = "OVERLOADED"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    DRAINING = "DRAINING"
    MAX_AGE = "MAX_AGE"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"


class StreamFailure(Exception):
    """Ends the stream with a status; everything before it has been delivered."""

    def __init__(self, code: FailureCode, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class StreamAged(StreamFailure):
    """The stream reached its maximum age where no utterance is open: it ends there, nothing cut."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(FailureCode.MAX_AGE, message, retry_after_s=0.0)
        self.position = position  # every sample before it is final once the pending finals are sent


@dataclasses.dataclass(frozen=True)
class StreamParams:
    encoding: Encoding
    sample_rate_hz: int
    channels: int
    language: str | None
    word_timestamps: bool
    prompt: str | None
    vad: VadParams
    interim_results: bool
    speech_events: bool


@dataclasses.dataclass(frozen=True)
class Reconfigure:
    """A settings update read from the stream, in order with its audio: validated params, or why not."""

    params: StreamParams | None
    refusal: str = ""  # set when params is None


@dataclasses.dataclass(frozen=True)
class WordTiming:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclasses.dataclass(frozen=True)
class Timing:
    """Where a result's latency went, in seconds of the server's monotonic clock (the proto's ResultTiming)."""

    latency_s: float = 0.0
    endpoint_wait_s: float = 0.0
    queue_wait_s: float = 0.0
    decode_s: float = 0.0
    decoded_audio_s: float = 0.0
    real_time_factor: float = 0.0


def result_timing(audio_end_at: float, endpoint_at: float, decode: DecodeTiming, sent_at: float) -> Timing:
    """Split a result's latency, from the arrival of its audio end to `sent_at`, into parts that do not overlap.

    First the wait for the endpoint (`endpoint_at`; for a partial, its audio end). Of the time from the
    endpoint to the decode's end, the decode's model time comes last and the rest is queue wait; a decode
    that started before the endpoint (a final begun in the pause) counts only its part after it. The parts
    add up to max(endpoint_at, decode.done_at) - audio_end_at, at most the latency.
    """
    after_endpoint = max(0.0, decode.done_at - endpoint_at)
    decode_s = min(decode.seconds, after_endpoint)
    return Timing(
        latency_s=sent_at - audio_end_at,
        endpoint_wait_s=endpoint_at - audio_end_at,
        queue_wait_s=after_endpoint - decode_s,
        decode_s=decode_s,
        decoded_audio_s=decode.audio_s,
        real_time_factor=decode.seconds / decode.audio_s if decode.audio_s else 0.0,
    )


class Arrivals:
    """When the stream's audio arrived: the stream position one past each message's last sample, and the time.

    A message that ends at most ARRIVAL_STEP after the entry before the last merges into the last, so
    there is at most about one entry per ARRIVAL_STEP of audio, and a position reads a time at most that
    much audio late. The session keeps monotonic times; the compat service keeps wall-clock ones.
    """

    def __init__(self) -> None:
        self._ends: list[int] = []
        self._times: list[float] = []

    def add(self, end: int, at: float) -> None:
        if len(self._ends) >= 2 and end - self._ends[-2] <= ARRIVAL_STEP:
            self._ends[-1], self._times[-1] = end, at
        else:
            self._ends.append(end)
            self._times.append(at)

    def at(self, position: int) -> float:
        """When the sample just before `position` had arrived."""
        index = min(bisect.bisect_left(self._ends, position), len(self._ends) - 1)
        return self._times[index]

    def forget(self, before: int) -> None:
        """Drop the entries of audio that ends before `before`: no later lookup asks for it."""
        index = bisect.bisect_left(self._ends, before)
        if index:
            del self._ends[:index], self._times[:index]


@dataclasses.dataclass(frozen=True)
class Result:
    final_offset_s: float  # every sample before it is final (see the proto)
    utterance_id: str
    is_final: bool
    text: str
    stable_text: str
    stability: float
    words: list[WordTiming]
    confidence: float
    language: str
    language_probability: float
    start_s: float
    end_s: float
    quality: Quality = dataclasses.field(default_factory=Quality)
    timing: Timing = dataclasses.field(default_factory=Timing)


class EventType(enum.Enum):
    SPEECH_STARTED = "SPEECH_STARTED"
    SPEECH_ENDED = "SPEECH_ENDED"


@dataclasses.dataclass(frozen=True)
class Event:
    type: EventType
    time_s: float
    utterance_id: str
    final_offset_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Progress:
    """Only the final offset moved (a long silence): lets a resuming client drop its copy of the audio."""

    final_offset_s: float


@dataclasses.dataclass(frozen=True)
class ConfigAck:
    """The answer to one Reconfigure: applied from the next utterance on, or refused (nothing changed)."""

    applied: bool
    message: str
    received_at_s: float  # stream time of the audio received before the update
    in_progress_utterance_id: str  # the utterance that finishes under the previous settings; "" if none
    final_offset_s: float = 0.0


Output = Result | Event | Progress | ConfigAck
_Out = TypeVar("_Out", bound=Output)


@dataclasses.dataclass
class _Utterance:
    id: str
    start: int
    params: StreamParams  # the settings it started with; it ends under them whatever arrives meanwhile
    stabilizer: LocalAgreement = dataclasses.field(default_factory=LocalAgreement)
    partial_audio_len: int = 0  # samples covered by the last partial request
    committed_at: int = 0  # the audio length of the partial that last extended the stable text
    speculative: tuple[int, Future[DecodeResult | None]] | None = None  # (end, its final) started in a pause
    partials_sent: bool = False
    closed: bool = False  # ended: partials still in flight are stale


@dataclasses.dataclass
class _PendingPartial:
    utterance: _Utterance
    audio_len: int
    future: Future[DecodeResult | None]
    audio_end_at: float  # when the audio it covers had arrived (it was requested then)
    start: int = 0  # where the decoded audio begins in the utterance: > 0 for a tail


@dataclasses.dataclass
class _PendingFinal:
    utterance: _Utterance
    end: int
    future: Future[DecodeResult | None]
    voiced_at: float  # when the utterance's last voiced audio had arrived
    endpoint_at: float  # when the audio that ended the utterance had arrived (or the stream ended)


@dataclasses.dataclass
class _FinalUpTo:
    position: int  # samples before it are final once every earlier item is delivered


_Item = Event | ConfigAck | _PendingPartial | _PendingFinal | _FinalUpTo | StreamFailure | None


class Session:
    def __init__(
        self,
        stream_id: str,
        params: StreamParams,
        engine: Engine,
        partial_interval_ms: int,
        offset_s: float = 0.0,
        backlog_timeout_s: float = 10.0,
        max_age_s: float = 0.0,
        max_age_overrun_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream_id = stream_id
        self._clock = clock  # when audio arrived and deadlines pass: injected, so tests and simulations own time
        self.params = params  # the settings of the next utterance to start
        self._engine = engine
        self._decoder = AudioDecoder(params.encoding, params.sample_rate_hz, params.channels)
        start = round(offset_s * TARGET_RATE)
        self._start = start
        self._segmenter = Segmenter(params.vad, start)
        self._recent = RecentAudio(CONTEXT_WINDOW_S, start)
        self._arrivals = Arrivals()
        self._previous: SpeechEnd | None = None  # the last utterance sent to the model
        self._marked_pos = start  # the last final position queued as a _FinalUpTo
        self._final_pos = start  # the last final position delivered
        self._reported_pos = start  # the last final position sent to the client
        self._partial_interval = partial_interval_ms * TARGET_RATE // 1000
        self._items: asyncio.Queue[_Item] = asyncio.Queue()
        self._final_slots = asyncio.Semaphore(MAX_PENDING_FINALS)
        self._answer_slots = asyncio.Semaphore(MAX_PENDING_UPDATE_ANSWERS)
        self._backlog_timeout_s = backlog_timeout_s
        self._futures: set[Future[DecodeResult | None]] = set()
        self._utterance: _Utterance | None = None
        self._samples = 0  # 16 kHz samples fed to the segmenter
        # Wall-clock deadlines (a load balancer's drain counts wall time): from the first, the stream
        # ends at its next pause; at the second, wherever it is. None: no age limit.
        self._max_age_s = max_age_s
        self._max_age_overrun_s = max_age_overrun_s
        opened = clock()
        self._aged_at = opened + max_age_s if max_age_s else None
        self._hard_end_at = opened + max_age_s + max_age_overrun_s if max_age_s else None

    # -- input ------------------------------------------------------------
    async def consume(
        self, chunks: AsyncIterator[bytes | Reconfigure], idle_timeout_s: float, stop: asyncio.Event
    ) -> None:
        """Read audio (and settings updates) until the client half-closes, fails, idles or the server drains.

        Always ends the output: with the remaining finals and then, where the
        stream did not end cleanly, the failure that ended it.
        """
        failure: StreamFailure | None = None
        iterator = aiter(chunks)
        stop_wait = asyncio.ensure_future(stop.wait())
        next_chunk: asyncio.Future[bytes | Reconfigure] | None = None
        try:
            while True:
                next_chunk = asyncio.ensure_future(anext(iterator))
                timeout = idle_timeout_s
                if self._hard_end_at is not None:  # a client that goes quiet still ends by the hard deadline
                    timeout = max(0.0, min(timeout, self._hard_end_at - self._clock()))
                done, _ = await asyncio.wait(
                    {next_chunk, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if next_chunk not in done:
                    next_chunk.cancel()
                    if stop_wait in done:
                        failure = StreamFailure(
                            FailureCode.DRAINING,
                            "the server is shutting down; finals for the audio received were sent; reconnect",
                        )
                    elif self._past(self._hard_end_at):
                        failure = self._overrun()
                    else:
                        failure = StreamFailure(
                            FailureCode.IDLE_TIMEOUT,
                            f"no message received for {idle_timeout_s:g} s; send audio in real time or close it",
                        )
                    break
                try:
                    chunk = next_chunk.result()
                except StopAsyncIteration:
                    break
                if isinstance(chunk, Reconfigure):
                    await self._slot(self._answer_slots, "answers to config updates")
                    self.reconfigure(chunk)
                else:
                    await self.push(chunk)
        except StreamFailure as exc:
            failure = exc
        except Exception as exc:  # the output must always end, or results() waits forever
            log.exception("stream_reader_failed")
            failure = StreamFailure(FailureCode.INTERNAL, f"reading the stream failed: {type(exc).__name__}")
        finally:
            stop_wait.cancel()
            if next_chunk is not None and not next_chunk.done():
                # Cancelled mid-read (the client went away): the read's outcome is nobody's business,
                # and unretrieved it would be logged as "Task exception was never retrieved".
                next_chunk.cancel()
                next_chunk.add_done_callback(lambda future: future.cancelled() or future.exception())
        try:
            if isinstance(failure, StreamAged):
                # At a pause: what follows it (a pre-roll, an utterance just begun) the client sends again.
                self._items.put_nowait(_FinalUpTo(failure.position))
            elif failure is None or failure.code is not FailureCode.OVERLOADED:  # behind already: add no work
                try:
                    await self._finish()
                except StreamFailure as exc:
                    failure = failure or exc
        finally:
            if failure is not None:
                self._items.put_nowait(failure)
            self._items.put_nowait(None)

    async def push(self, chunk: bytes) -> None:
        arrived = self._clock()
        if self._past(self._hard_end_at):
            raise self._overrun()
        received = self._decoder.input_seconds
        try:
            samples = self._decoder.decode(chunk)
        except AudioFormatError as exc:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, str(exc)) from None
        metrics.AUDIO_RECEIVED_SECONDS.inc(self._decoder.input_seconds - received)
        await self._feed(samples, arrived)

    def reconfigure(self, update: Reconfigure) -> None:
        """New settings from the next utterance on; the utterance in progress ends under its own.

        The caller holds one of the answer slots; delivering the answer frees it.
        """
        received_at_s = (self._start + self._samples) / TARGET_RATE
        in_progress = self._utterance.id if self._utterance is not None else ""
        if update.params is None:
            log.info("config_update_refused", reason=update.refusal)
            self._items.put_nowait(ConfigAck(False, update.refusal, received_at_s, in_progress))
            return
        params = update.params
        if (params.encoding, params.sample_rate_hz, params.channels) != (
            self.params.encoding,
            self.params.sample_rate_hz,
            self.params.channels,
        ):
            raise AssertionError("the audio format of a stream cannot change; the servicer refuses it")
        self._segmenter.reconfigure(params.vad)  # in step: it too switches when the utterance in progress ends
        self.params = params
        message = (
            f"applied from the next utterance: {in_progress}, in progress, finishes under the previous settings"
            if in_progress
            else "applied from the next utterance"
        )
        log.info("config_updated", in_progress_utterance_id=in_progress, interim=params.interim_results)
        self._items.put_nowait(ConfigAck(True, message, received_at_s, in_progress))

    async def _finish(self) -> None:
        self._aged_at = self._hard_end_at = None  # ending anyway: its last audio is finalised here
        ended = self._clock()
        await self._feed(self._decoder.flush(), ended)
        await self._on_vad_events(self._segmenter.finish(), ended)
        self._items.put_nowait(_FinalUpTo(self._segmenter.final_position))

    async def _feed(self, samples: np.ndarray, arrived: float) -> None:
        self._samples += samples.shape[0]
        self._recent.append(samples)
        if samples.shape[0]:
            self._arrivals.add(self._recent.end, arrived)
        await self._on_vad_events(self._segmenter.feed(samples), arrived)
        self._arrivals.forget(self._segmenter.final_position)  # no later utterance has voiced audio before it
        if self._utterance is None and self._past(self._aged_at):
            raise self._aged(self._segmenter.final_position)
        self._maybe_request_partial(arrived)
        self._maybe_speculate()
        position = self._segmenter.final_position
        if position - self._marked_pos >= PROGRESS_STEP_S * TARGET_RATE:
            self._marked_pos = position
            self._items.put_nowait(_FinalUpTo(position))

    async def _on_vad_events(self, events: list[SegmenterEvent], arrived: float) -> None:
        """The segmenter's events from audio that arrived at `arrived` (or from the stream's end then)."""
        for event in events:
            if isinstance(event, SpeechStart):
                if self._past(self._aged_at):  # between two utterances: the next starts on the next connection
                    raise self._aged(event.start)
                # Named by its start, so ids stay unique across resumed connections.
                self._utterance = _Utterance(f"u{event.start * 1000 // TARGET_RATE}", event.start, self.params)
                self._event(self._utterance, EventType.SPEECH_STARTED, event.start)
                continue
            utterance = self._utterance
            assert utterance is not None
            utterance.closed = True
            self._utterance = None
            self._event(utterance, EventType.SPEECH_ENDED, event.end)
            if isinstance(event, SpeechDiscarded):
                metrics.UTTERANCES.labels(outcome="too_short").inc()
                log.debug("utterance_too_short", utterance_id=utterance.id, voiced_ms=event.voiced_ms)
                self._items.put_nowait(_FinalUpTo(event.end))
                continue
            await self._slot(self._final_slots, "finals")
            # No partial of this utterance is processed after this; the final depends on the audio alone.
            speculative = utterance.speculative
            if speculative is not None and speculative[0] == event.end:
                future = speculative[1]
                metrics.SPECULATIVE_FINALS.labels(outcome="used").inc()
            else:
                if speculative is not None:
                    self._drop_speculative(utterance)
                future = self._submit_final(utterance, event)
            self._previous = event
            voiced_at = self._arrivals.at(event.voiced_end)
            self._items.put_nowait(_PendingFinal(utterance, event.end, future, voiced_at, arrived))

    def _past(self, deadline: float | None) -> bool:
        return deadline is not None and self._clock() >= deadline

    def _aged(self, position: int) -> StreamAged:
        return StreamAged(
            f"the stream reached its maximum age ({self._max_age_s:g} s); resume from final_offset_s on a new stream",
            position,
        )

    def _overrun(self) -> StreamFailure:
        """Past the age and its overrun without a pause: ends like a drain, the utterance finalised up to here."""
        return StreamFailure(
            FailureCode.MAX_AGE,
            f"the stream reached its maximum age ({self._max_age_s:g} s) and had no pause in "
            f"{self._max_age_overrun_s:g} s more; finals for the audio received were sent; "
            "resume from final_offset_s on a new stream",
            retry_after_s=0.0,
        )

    async def _slot(self, slots: asyncio.Semaphore, what: str) -> None:
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

    def _maybe_request_partial(self, arrived: float) -> None:
        utterance = self._utterance
        if utterance is None or not utterance.params.interim_results:
            return
        current = self._segmenter.current()
        assert current is not None
        _, audio = current
        # After a first partial, until the utterance shows words, partials come twice as often: Whisper
        # often hears nothing in the first moments of speech, and the reader waits for the first words most.
        hurry = utterance.partial_audio_len and not utterance.partials_sent
        interval = self._partial_interval // 2 if hurry else self._partial_interval
        if (
            audio.shape[0] < MIN_PARTIAL_AUDIO_S * TARGET_RATE
            or audio.shape[0] - utterance.partial_audio_len < interval
            or self._segmenter.trailing_silence_ms >= PARTIAL_SILENCE_CUTOFF_MS
        ):
            return
        utterance.partial_audio_len = audio.shape[0]
        start = 0
        tail_start = utterance.committed_at - round(PARTIAL_TAIL_OVERLAP_S * TARGET_RATE)
        if utterance.stabilizer.committed_words and tail_start >= PARTIAL_TAIL_MIN_SKIP_S * TARGET_RATE:
            start = tail_start
        future = self._submit(utterance.params, JobKind.PARTIAL, audio[start:])
        self._items.put_nowait(_PendingPartial(utterance, audio.shape[0], future, arrived, start))

    def _maybe_speculate(self) -> None:
        """Start the final's decode early, in a pause that has reached the VAD's kept pad, on an idle worker.

        The utterance's end is then fixed unless speech resumes: if the pause lasts to the endpoint
        (`endpoint_silence_ms` - `speech_pad_ms` later) the final is already under way; if speech
        resumes, the decode is dropped, and it only took a worker that had nothing else to do.
        """
        utterance = self._utterance
        if utterance is None:
            return
        tentative = self._segmenter.tentative_end()
        if tentative is None or (utterance.speculative is not None and utterance.speculative[0] == tentative.end):
            return
        if utterance.speculative is not None:
            self._drop_speculative(utterance)
        if self._engine.has_idle_worker():
            utterance.speculative = (tentative.end, self._submit_final(utterance, tentative))

    def _drop_speculative(self, utterance: _Utterance) -> None:
        assert utterance.speculative is not None
        utterance.speculative[1].cancel()
        utterance.speculative = None
        metrics.SPECULATIVE_FINALS.labels(outcome="wasted").inc()

    def _submit_final(self, utterance: _Utterance, event: SpeechEnd) -> Future[DecodeResult | None]:
        """The utterance's final, heard with the stream's audio from the previous utterance on where held."""
        previous = self._previous
        silence_after = event.end - event.voiced_end
        with_context = None if previous is None else self._recent.get(previous.start, event.end)
        if previous is None or with_context is None or with_context.shape[0] > CONTEXT_WINDOW_S * TARGET_RATE:
            return self._submit(utterance.params, JobKind.FINAL, event.audio, silence_after=silence_after)
        context = Context(event.start - previous.start, previous.voiced_end - previous.start)
        return self._submit(utterance.params, JobKind.FINAL, with_context, context, silence_after)

    def _submit(
        self,
        params: StreamParams,
        kind: JobKind,
        audio: np.ndarray,
        context: Context | None = None,
        silence_after: int = 0,
    ) -> Future[DecodeResult | None]:
        options = DecodeOptions(language=params.language, prompt=params.prompt, word_timestamps=params.word_timestamps)
        try:
            future = self._engine.submit(self.stream_id, kind, audio, options, context, silence_after)
        except EngineNotReady as exc:
            raise StreamFailure(FailureCode.UNAVAILABLE, f"the server cannot decode now: {exc}") from None
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def _event(self, utterance: _Utterance, type_: EventType, position: int) -> None:
        if utterance.params.speech_events:
            self._items.put_nowait(Event(type_, position / TARGET_RATE, utterance.id))

    # -- output -----------------------------------------------------------
    async def results(self) -> AsyncIterator[Output]:
        """Everything the stream produces, in order; raises the StreamFailure that ended it, if any."""
        while (item := await self._items.get()) is not None:
            if isinstance(item, StreamFailure):
                raise item
            if isinstance(item, Event | ConfigAck):
                if isinstance(item, ConfigAck):
                    self._answer_slots.release()
                yield self._note_reported(dataclasses.replace(item, final_offset_s=self._final_pos / TARGET_RATE))
            elif isinstance(item, _FinalUpTo):
                self._final_pos = max(self._final_pos, item.position)
                if self._final_pos > self._reported_pos:
                    yield self._note_reported(Progress(self._final_pos / TARGET_RATE))
            elif isinstance(item, _PendingPartial):
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
        try:
            return await asyncio.wrap_future(future)
        except EngineNotReady as exc:
            raise StreamFailure(FailureCode.UNAVAILABLE, f"the server stopped decoding: {exc}") from None
        except Exception as exc:
            raise StreamFailure(FailureCode.INTERNAL, f"decoding failed: {type(exc).__name__}: {exc}") from None

    async def _partial(self, item: _PendingPartial) -> Result | None:
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

    async def _final(self, item: _PendingFinal) -> Result | None:
        try:
            decoded = await self._decoded(item.future)
        finally:
            self._final_slots.release()
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

    def close(self) -> None:
        """The stream is over (or the client went away): nothing queued for it is wanted any more."""
        for future in list(self._futures):
            future.cancel()
        self._engine.close_stream(self.stream_id)

    @property
    def audio_seconds(self) -> float:
        return self._samples / TARGET_RATE

"""One stream's input side: audio in, VAD, decode requests out; results come back through its Delivery.

Knows nothing of gRPC: the servicer hands it an async iterator of audio chunks and relays what
`results()` yields. Two tasks meet here: `consume()` reads audio, runs the VAD and submits requests;
`results()` (hws.stream.delivery) awaits them in submission order and turns them into results.
The decisions (when a partial, from where, when a final early, with what context, when the age
ends the stream) are the policy's (hws.stream.policy); the session carries them out.

Settings may change mid-stream (`Reconfigure`, read in order with the audio): each utterance keeps
the settings it started with, and the new ones apply from the next utterance on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
import structlog

from hws import metrics
from hws.asr.scheduler import Engine
from hws.asr.types import Context, DecodeOptions, DecodeResult, EngineNotReady, JobKind
from hws.audio import TARGET_RATE
from hws.stream.delivery import Delivery, FinalUpTo, PendingFinal, PendingPartial, Utterance
from hws.stream.intake import AudioIntake
from hws.stream.outputs import (
    ConfigAck,
    Event,
    EventType,
    FailureCode,
    KeepAlive,
    Output,
    Reconfigure,
    StreamAged,
    StreamFailure,
    StreamParams,
)
from hws.stream.pace import AudioPace
from hws.stream.policy import CONTEXT_WINDOW_S, StreamPolicy
from hws.stream.tonal import is_tonal
from hws.stream.vad import Segmenter, SegmenterEvent, SpeechDiscarded, SpeechEnd, SpeechStart

log = structlog.get_logger("hws.session")

PROGRESS_STEP_S = 2.0  # through silence, the final offset is reported at least this often
LARGE_MESSAGE_BYTES = 256 * 1024  # 8 s of 16 kHz LINEAR16: from this size a message is decoded off the loop
FEED_SLICE = TARGET_RATE  # samples of a large message fed to the VAD between two turns of the event loop
PACE_CHECK_S = 1.0  # how often a stream that sends nothing is checked against its minimum pace
LOGGED_UPDATES = 10  # config updates of a stream logged one line each; the rest in one summary at its end


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
        min_audio_pace: float = 0.0,
        audio_pace_window_s: float = 30.0,
    ) -> None:
        self.stream_id = stream_id
        self._clock = clock  # when audio arrived and deadlines pass: injected, so tests and simulations own time
        self.params = params  # the settings of the next utterance to start
        self._engine = engine
        start = round(offset_s * TARGET_RATE)
        self._start = start
        self._intake = AudioIntake(params, start, CONTEXT_WINDOW_S)
        self._segmenter = Segmenter(params.vad, start)
        self._policy = StreamPolicy(partial_interval_ms, clock(), max_age_s, max_age_overrun_s)
        self._delivery = Delivery(start, clock, backlog_timeout_s)
        self._previous: SpeechEnd | None = None  # the last utterance sent to the model
        self._marked_pos = start  # the last final position queued as a FinalUpTo
        self._futures: set[Future[DecodeResult | None]] = set()
        self._utterance: Utterance | None = None
        self._updates = 0  # config updates read
        self._closed = False  # close() was called: no decode may be asked for any more
        self._pace = AudioPace(min_audio_pace, audio_pace_window_s, clock()) if min_audio_pace > 0 else None

    # -- input ------------------------------------------------------------
    async def consume(
        self, chunks: AsyncIterator[bytes | Reconfigure | KeepAlive], idle_timeout_s: float, stop: asyncio.Event
    ) -> None:
        """Read audio (and settings updates) until the client half-closes, fails, idles or the server drains.

        Always ends the output: with the remaining finals and then, where the
        stream did not end cleanly, the failure that ended it.
        """
        failure: StreamFailure | None = None
        iterator = aiter(chunks)
        stop_wait = asyncio.ensure_future(stop.wait())
        next_chunk: asyncio.Future[bytes | Reconfigure | KeepAlive] | None = None
        loop = asyncio.get_running_loop()
        last_message = loop.time()  # the idle timer runs on the loop's clock: a simulated one may stand still
        try:
            while True:
                if self._pace is not None and (ratio := self._pace.shortfall(self._clock())) is not None:
                    failure = self._pace.failure(ratio)
                    break
                if next_chunk is None:
                    next_chunk = asyncio.ensure_future(anext(iterator))
                idle_left = idle_timeout_s - (loop.time() - last_message)
                timeout = self._policy.read_timeout(idle_left, self._clock())
                if self._pace is not None:
                    timeout = min(timeout, PACE_CHECK_S)  # a client that sends nothing is behind too
                waiting: set[asyncio.Future[Any]] = {next_chunk, stop_wait}
                done, _ = await asyncio.wait(waiting, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
                if next_chunk not in done:
                    if stop_wait in done:
                        failure = StreamFailure(
                            FailureCode.DRAINING,
                            "the server is shutting down; finals for the audio received were sent; reconnect",
                        )
                    elif self._policy.overrun(self._clock()):
                        failure = self._policy.overrun_failure(self._intake.samples > 0)
                    elif loop.time() - last_message >= idle_timeout_s:
                        failure = StreamFailure(
                            FailureCode.IDLE_TIMEOUT,
                            f"no message received for {idle_timeout_s:g} s; send audio in real time or close it",
                        )
                    else:
                        continue  # woke to check the pace; the read goes on
                    break
                try:
                    chunk = next_chunk.result()
                except StopAsyncIteration:
                    next_chunk = None
                    break
                next_chunk = None
                last_message = loop.time()
                if isinstance(chunk, KeepAlive):
                    continue  # counted against the idle timeout only
                if isinstance(chunk, Reconfigure):
                    await self._delivery.slot(self._delivery.answer_slots, "answers to config updates")
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
            if next_chunk is not None:
                # Cancelled mid-read (the client went away), maybe just as the read ended: its outcome is
                # nobody's business, and unretrieved it would be logged as "Task exception was never retrieved".
                next_chunk.cancel()
                next_chunk.add_done_callback(lambda future: future.cancelled() or future.exception())
        try:
            if isinstance(failure, StreamAged):
                # At a pause: what follows it (a pre-roll, an utterance just begun) the client sends again.
                self._delivery.put(FinalUpTo(failure.position))
            elif failure is None or failure.code is not FailureCode.OVERLOADED:  # behind already: add no work
                try:
                    await self._finish()
                except StreamFailure as exc:
                    failure = failure or exc
        finally:
            if failure is not None:
                self._delivery.put(failure)
            self._delivery.put(None)

    async def push(self, chunk: bytes) -> None:
        arrived = self._clock()
        if self._policy.overrun(arrived):
            raise self._policy.overrun_failure(self._intake.samples > 0)
        if len(chunk) < LARGE_MESSAGE_BYTES:
            await self._feed(self._intake.decode(chunk), arrived)
        else:
            # Minutes of audio in one message (a 4 MiB MULAW one is 524 s): decoded on a thread and fed to
            # the VAD a slice at a time, so health checks and other streams are answered meanwhile.
            samples = await asyncio.to_thread(self._intake.decode, chunk)
            for start in range(0, max(1, samples.shape[0]), FEED_SLICE):
                await self._feed(samples[start : start + FEED_SLICE], arrived)
                await asyncio.sleep(0)
        if self._pace is not None:
            self._pace.received(self._intake.samples, arrived)

    def reconfigure(self, update: Reconfigure) -> None:
        """New settings from the next utterance on; the utterance in progress ends under its own.

        The caller holds one of the answer slots; delivering the answer frees it.
        """
        received_at_s = (self._start + self._intake.samples) / TARGET_RATE
        in_progress = self._utterance.id if self._utterance is not None else ""
        if update.params is None:
            self._log_update("config_update_refused", reason=update.refusal)
            self._delivery.put(ConfigAck(False, update.refusal, received_at_s, in_progress))
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
        self._log_update("config_updated", in_progress_utterance_id=in_progress, interim=params.interim_results)
        self._delivery.put(ConfigAck(True, message, received_at_s, in_progress))

    def _log_update(self, event: str, **fields: object) -> None:
        """A line per config update up to LOGGED_UPDATES; past it they are counted, and summed up at close."""
        self._updates += 1
        if self._updates <= LOGGED_UPDATES:
            log.info(event, **fields)
        elif self._updates == LOGGED_UPDATES + 1:
            log.info("config_updates_not_logged", after=LOGGED_UPDATES, reason="the rest are summed up at the end")

    async def _finish(self) -> None:
        self._policy.ending()
        ended = self._clock()
        await self._feed(self._intake.flush(), ended)
        await self._on_vad_events(self._segmenter.finish(), ended)
        self._delivery.put(FinalUpTo(self._segmenter.final_position))

    async def _feed(self, samples: np.ndarray, arrived: float) -> None:
        self._intake.take(samples, arrived)
        await self._on_vad_events(self._segmenter.feed(samples), arrived)
        self._intake.forget_arrivals(self._segmenter.final_position)  # no later utterance has voiced audio before it
        if self._utterance is None and self._policy.aged(self._clock()):
            raise self._policy.aged_failure(self._segmenter.final_position)
        self._maybe_request_partial(arrived)
        self._maybe_speculate()
        position = self._segmenter.final_position
        if position - self._marked_pos >= PROGRESS_STEP_S * TARGET_RATE:
            self._marked_pos = position
            self._delivery.put(FinalUpTo(position))

    async def _on_vad_events(self, events: list[SegmenterEvent], arrived: float) -> None:
        """The segmenter's events from audio that arrived at `arrived` (or from the stream's end then)."""
        for event in events:
            if isinstance(event, SpeechStart):
                if self._policy.aged(self._clock()):  # between two utterances: the next starts on the next connection
                    raise self._policy.aged_failure(event.start)
                # Named by its start, so ids stay unique across resumed connections.
                self._utterance = Utterance(f"u{event.start * 1000 // TARGET_RATE}", event.start, self.params)
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
                self._delivery.put(FinalUpTo(event.end))
                continue
            if not utterance.partials_sent and is_tonal(event.audio):  # nothing shown that a final must replace
                metrics.UTTERANCES.labels(outcome="tonal").inc()
                log.debug("utterance_tonal", utterance_id=utterance.id)
                if utterance.speculative is not None:
                    self._drop_speculative(utterance)
                self._delivery.put(FinalUpTo(event.end))
                continue
            await self._delivery.slot(self._delivery.final_slots, "finals")
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
            voiced_at = self._intake.arrived_at(event.voiced_end)
            self._delivery.put(PendingFinal(utterance, event.end, future, voiced_at, arrived))

    def _maybe_request_partial(self, arrived: float) -> None:
        utterance = self._utterance
        if utterance is None or not utterance.params.interim_results:
            return
        current = self._segmenter.current()
        assert current is not None
        _, audio = current
        start = self._policy.partial_start(utterance.progress(), audio.shape[0], self._segmenter.trailing_silence_ms)
        if start is None:
            return
        utterance.partial_audio_len = audio.shape[0]
        if not utterance.partials_sent and is_tonal(audio[start:]):
            # A tone or a hum: Whisper would only invent words for it. Checked until words were shown: the
            # utterance is speech then, and a check (1 ms for 4 s of audio) per partial would be wasted.
            return
        future = self._submit(utterance.params, JobKind.PARTIAL, audio[start:])
        self._delivery.put(PendingPartial(utterance, audio.shape[0], future, arrived, start))

    def _maybe_speculate(self) -> None:
        """Start the final early in a pause, or drop the one begun when the pause moved (see the policy)."""
        utterance = self._utterance
        if utterance is None:
            return
        tentative = self._segmenter.tentative_end()
        under_way = utterance.speculative[0] if utterance.speculative is not None else None
        decision = self._policy.speculation(
            tentative.end if tentative is not None else None, under_way, self._engine.has_idle_worker
        )
        if decision.drop:
            self._drop_speculative(utterance)
        if decision.start:
            assert tentative is not None
            utterance.speculative = (tentative.end, self._submit_final(utterance, tentative))

    def _drop_speculative(self, utterance: Utterance) -> None:
        assert utterance.speculative is not None
        utterance.speculative[1].cancel()
        utterance.speculative = None
        metrics.SPECULATIVE_FINALS.labels(outcome="wasted").inc()

    def _submit_final(self, utterance: Utterance, event: SpeechEnd) -> Future[DecodeResult | None]:
        """The utterance's final, heard with the stream's audio from the previous utterance on where held."""
        silence_after = event.end - event.voiced_end
        heard = self._policy.context(self._previous, event)
        with_context = None if heard is None else self._intake.held(heard[0], event.end)
        if heard is None or with_context is None:
            return self._submit(utterance.params, JobKind.FINAL, event.audio, silence_after=silence_after)
        return self._submit(utterance.params, JobKind.FINAL, with_context, heard[1], silence_after)

    def _submit(
        self,
        params: StreamParams,
        kind: JobKind,
        audio: np.ndarray,
        context: Context | None = None,
        silence_after: int = 0,
    ) -> Future[DecodeResult | None]:
        if self._closed:
            # The reader outlived close(): Python 3.10-3.11's wait_for (in Delivery.slot) loses a cancel that
            # comes as its wait ends. A job now would put the stream back in the scheduler's accounts for good.
            raise asyncio.CancelledError("the stream is closed")
        options = DecodeOptions(language=params.language, prompt=params.prompt, word_timestamps=params.word_timestamps)
        try:
            future = self._engine.submit(self.stream_id, kind, audio, options, context, silence_after)
        except EngineNotReady as exc:
            raise StreamFailure(FailureCode.UNAVAILABLE, f"the server cannot decode now: {exc}") from None
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def _event(self, utterance: Utterance, type_: EventType, position: int) -> None:
        if utterance.params.speech_events:
            self._delivery.put(Event(type_, position / TARGET_RATE, utterance.id))

    def settled(self) -> bool:
        """Every decode asked for has come back and every item was read (hws.stream.simulate waits for it)."""
        return not self._futures and self._delivery.items.empty()

    # -- output -----------------------------------------------------------
    def results(self) -> AsyncIterator[Output]:
        """Everything the stream produces, in order; raises the StreamFailure that ended it, if any."""
        return self._delivery.results()

    def close(self) -> None:
        """The stream is over (or the client went away): nothing queued for it is wanted any more."""
        self._closed = True
        for future in list(self._futures):
            future.cancel()
        self._engine.close_stream(self.stream_id)
        if self._updates > LOGGED_UPDATES:
            log.info("config_updates_summary", updates=self._updates, not_logged=self._updates - LOGGED_UPDATES)

    @property
    def audio_seconds(self) -> float:
        return self._intake.samples / TARGET_RATE

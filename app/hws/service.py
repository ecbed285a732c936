"""The gRPC servicer: translates between protobuf and sessions, and maps failures to status codes.

Knows nothing of Whisper: recognition happens in sessions and the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError

from hws import metrics, parsing
from hws.audio import AudioFormatError, Encoding, check_format
from hws.config import Settings
from hws.engine import Engine
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.session import (
    ConfigAck,
    Event,
    EventType,
    FailureCode,
    Output,
    Progress,
    Reconfigure,
    Result,
    Session,
    StreamFailure,
    StreamParams,
)
from hws.vad import AGGRESSIVENESS, ENDPOINT_SILENCE_MS, MAX_UTTERANCE_S, VadParams

log = structlog.get_logger("hws.service")

STATUS_FOR_FAILURE = {
    FailureCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    FailureCode.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailureCode.IDLE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    FailureCode.DRAINING: grpc.StatusCode.UNAVAILABLE,
    FailureCode.MAX_AGE: grpc.StatusCode.UNAVAILABLE,  # resumable, like a drain: "go on elsewhere"
    FailureCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    FailureCode.INTERNAL: grpc.StatusCode.INTERNAL,
}
_ENCODINGS = {
    pb.AUDIO_ENCODING_UNSPECIFIED: Encoding.LINEAR16,
    pb.LINEAR16: Encoding.LINEAR16,
    pb.MULAW: Encoding.MULAW,
}
MAX_AUDIO_OFFSET_S = 10_000_000.0  # about 115 days of audio: beyond any real stream
STREAM_LIMIT_RETRY_S = 1.0
# gRPC's standard server pushback trailer: how long a client should wait before retrying.
PUSHBACK_KEY = "grpc-retry-pushback-ms"

_Request = TypeVar("_Request")

_EVENT_TYPES = {
    EventType.SPEECH_STARTED: pb.SpeechEvent.SPEECH_STARTED,
    EventType.SPEECH_ENDED: pb.SpeechEvent.SPEECH_ENDED,
}


class ServingState:
    """The server's one readiness: whether streams are accepted now and why not, and how many are open.

    Shared by every servicer; health and hws_ready follow it through `on_change` (called with the new
    serving value each time it changes).
    """

    def __init__(self, max_streams: int, on_change: Callable[[bool], Awaitable[None]] | None = None) -> None:
        self.max_streams = max_streams
        self._on_change = on_change
        self._serving = False
        self.model_ready = False
        self.load_error: str | None = None  # why the last model load failed; it is retried
        self.stalled = False  # the engine's watchdog gave up on a decode
        self.drain = asyncio.Event()  # set on SIGTERM: open streams finish up, new ones are refused
        self.idle = asyncio.Event()  # set while no stream is open
        self.idle.set()
        self.active = 0

    @property
    def draining(self) -> bool:
        return self.drain.is_set()

    @property
    def not_ready_reason(self) -> str | None:
        if self.draining:
            return "the server is draining (shutting down); connect to another server"
        if not self.model_ready and self.load_error:
            return f"the model failed to load ({self.load_error}); retrying"
        if not self.model_ready:
            return "the model is still loading; retry shortly"
        if self.stalled:
            return "a decode is stuck and the server is recovering; connect to another server"
        return None

    async def model_loaded(self) -> None:
        self.model_ready, self.load_error = True, None
        await self._changed()

    async def model_failed(self, reason: str) -> None:
        self.load_error = reason
        await self._changed()

    async def set_stalled(self, stalled: bool) -> None:
        self.stalled = stalled
        await self._changed()

    async def start_draining(self) -> None:
        self.drain.set()
        await self._changed()

    async def _changed(self) -> None:
        serving = self.not_ready_reason is None
        if serving != self._serving:
            self._serving = serving
            if self._on_change is not None:
                await self._on_change(serving)

    def check_ready(self) -> None:
        """Raise StreamRefused(UNAVAILABLE) while streams are not accepted."""
        reason = self.not_ready_reason
        if reason is not None:
            raise StreamRefused(FailureCode.UNAVAILABLE, reason)

    @contextlib.contextmanager
    def stream_slot(self) -> Iterator[None]:
        """Admit one stream the caller found ready (`check_ready`), or raise StreamRefused; counts it while open."""
        if self.active >= self.max_streams:
            raise StreamRefused(
                FailureCode.OVERLOADED,
                f"the server is at its limit of {self.max_streams} concurrent streams; retry later or elsewhere",
                retry_after_s=STREAM_LIMIT_RETRY_S,
            )
        self.active += 1
        self.idle.clear()
        metrics.ACTIVE_STREAMS.set(self.active)
        try:
            yield
        finally:
            self.active -= 1
            metrics.ACTIVE_STREAMS.set(self.active)
            if not self.active:
                self.idle.set()


class StreamRefused(StreamFailure):
    """A StreamFailure before the stream started (no config, or one refused): logged as stream_refused."""


SHOWN_CHARS = 40  # a client's string is echoed in statuses and logs up to this long


def _shown(text: str) -> str:
    """A client's string for a status message: quoted, and cut short when long."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


class SessionFactory:
    """Where every session is made (the streaming call, the unary call, the compat service): the client's
    config validated once, against the same rules, before the stream takes a slot."""

    def __init__(self, settings: Settings, engine: Engine, state: ServingState) -> None:
        self.settings = settings
        self.engine = engine
        self.state = state

    @contextlib.contextmanager
    def open(
        self,
        stream_id: str,
        config: pb.RecognitionConfig,
        *,
        interim: bool = False,
        events: bool = False,
        offset_s: float = 0.0,
        resumable: bool = False,
    ) -> Iterator[Session]:
        """A session for a valid config, counted against --max-streams while open; else StreamRefused.

        Only `resumable` sessions (the main streaming interface, whose clients resume on another
        connection) end at the stream age limit.
        """
        self.state.check_ready()
        params = self.params(config, interim=interim, events=events)
        if not 0.0 <= offset_s <= MAX_AUDIO_OFFSET_S:  # also false for NaN
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT,
                f"audio_offset_s must be between 0 and {MAX_AUDIO_OFFSET_S:g}, got {offset_s}",
            )
        settings = self.settings
        with self.state.stream_slot():
            yield Session(
                stream_id,
                params,
                self.engine,
                settings.partial_interval_ms,
                offset_s,
                settings.backlog_timeout_s,
                settings.max_stream_age_s if resumable else 0.0,
                settings.max_stream_age_overrun_s if resumable else 0.0,
            )

    def params(self, config: pb.RecognitionConfig, *, interim: bool, events: bool) -> StreamParams:
        """Validate a client's configuration; StreamRefused(INVALID_ARGUMENT) says which field and why."""
        settings, engine = self.settings, self.engine

        def invalid(message: str) -> StreamRefused:
            return StreamRefused(FailureCode.INVALID_ARGUMENT, message)

        if config.encoding not in _ENCODINGS:
            raise invalid(f"unknown audio encoding {config.encoding}; use LINEAR16 (1) or MULAW (2)")
        channels = config.audio_channel_count or 1
        try:
            check_format(config.sample_rate_hz, channels)
        except AudioFormatError as exc:
            raise invalid(str(exc)) from None
        language = config.language.strip().lower() or None
        info = engine.info
        if language is not None and info is not None:
            if language not in engine.language_codes:
                raise invalid(
                    f"unknown language code {_shown(config.language)}; "
                    "use an ISO 639-1 code such as 'en', or leave it empty"
                )
            if not info.multilingual and language != "en":
                raise invalid(
                    f"the model {info.name} is English-only; language must be 'en' or empty, "
                    f"got {_shown(config.language)}"
                )
            if language not in info.languages:  # a code newer than the model (yue before large-v3)
                raise invalid(
                    f"the model {info.name} cannot transcribe {_shown(config.language)}: it knows "
                    f"{len(info.languages)} languages, not this one; leave language empty to detect it"
                )
        if len(config.initial_prompt) > settings.max_prompt_chars:
            raise invalid(
                f"initial_prompt is {len(config.initial_prompt)} characters; the limit is {settings.max_prompt_chars}"
            )
        if len(config.hotwords) > settings.max_hotwords:
            raise invalid(f"{len(config.hotwords)} hotwords sent; the limit is {settings.max_hotwords}")
        if any(len(word) > settings.max_hotword_chars for word in config.hotwords):
            raise invalid(f"a hotword is longer than {settings.max_hotword_chars} characters")
        vad = config.vad_aggressiveness if config.HasField("vad_aggressiveness") else settings.vad_aggressiveness
        if vad not in AGGRESSIVENESS:
            raise invalid(f"vad_aggressiveness must be {AGGRESSIVENESS}, got {vad}")
        endpoint = config.endpoint_silence_ms or settings.endpoint_silence_ms
        if endpoint not in ENDPOINT_SILENCE_MS:
            raise invalid(
                f"endpoint_silence_ms must be {ENDPOINT_SILENCE_MS} (or 0 for the default), "
                f"got {config.endpoint_silence_ms}"
            )
        max_utterance = config.max_utterance_s or settings.max_utterance_s
        if max_utterance not in MAX_UTTERANCE_S:
            raise invalid(
                f"max_utterance_s must be {MAX_UTTERANCE_S} (or 0 for the default), got {config.max_utterance_s:g}"
            )
        return StreamParams(
            encoding=_ENCODINGS[config.encoding],
            sample_rate_hz=config.sample_rate_hz,
            channels=channels,
            language=language,
            word_timestamps=config.word_timestamps,
            prompt=engine.prompt(config.initial_prompt, config.hotwords),
            vad=VadParams(
                aggressiveness=vad,
                frame_ms=settings.vad_frame_ms,
                endpoint_silence_ms=endpoint,
                max_utterance_s=max_utterance,
                min_speech_ms=settings.min_speech_ms,
                pad_ms=settings.speech_pad_ms,
            ),
            interim_results=interim,
            speech_events=events,
        )

    def update(self, config: pb.StreamingConfig, current: StreamParams, offset_s: float) -> Reconfigure:
        """A config sent after the first: the stream's new settings, or why they are refused (nothing applies).

        It replaces the settings whole and is validated like a first config; the audio format and the
        resume offset belong to the stream: left unset (0) they keep the stream's values, another value
        is refused.
        """
        recognition = config.recognition
        encoding = _ENCODINGS.get(recognition.encoding)
        if recognition.encoding and encoding is not current.encoding:
            sent = encoding.value if encoding is not None else f"unknown encoding {recognition.encoding}"
            return _fixed_field("encoding", current.encoding.value, sent)
        if recognition.sample_rate_hz and recognition.sample_rate_hz != current.sample_rate_hz:
            return _fixed_field("sample_rate_hz", current.sample_rate_hz, recognition.sample_rate_hz)
        if recognition.audio_channel_count and recognition.audio_channel_count != current.channels:
            return _fixed_field("audio_channel_count", current.channels, recognition.audio_channel_count)
        if config.audio_offset_s and config.audio_offset_s != offset_s:
            return _refused(
                f"audio_offset_s cannot change mid-stream (the stream's is {offset_s:g}, the update has "
                f"{config.audio_offset_s:g}): it is read from the first config only, to resume; leave it 0"
            )
        whole = pb.RecognitionConfig()
        whole.CopyFrom(recognition)
        whole.encoding = pb.MULAW if current.encoding is Encoding.MULAW else pb.LINEAR16
        whole.sample_rate_hz = current.sample_rate_hz
        whole.audio_channel_count = current.channels
        try:
            params = self.params(whole, interim=config.interim_results, events=config.speech_events)
        except StreamRefused as exc:
            return _refused(exc.message)
        return Reconfigure(params)


def _fixed_field(name: str, stream_value: object, sent: object) -> Reconfigure:
    return _refused(
        f"{name} cannot change mid-stream (the stream's is {stream_value}, the update has {sent}): "
        "leave it unset or repeat it, and send other audio on a new stream"
    )


def _refused(reason: str) -> Reconfigure:
    return Reconfigure(None, f"config update refused, nothing of it applied: {reason}; the stream goes on as before")


def result_to_pb(result: Result) -> pb.SpeechResult:
    return pb.SpeechResult(
        utterance_id=result.utterance_id,
        is_final=result.is_final,
        stability=result.stability,
        text=result.text,
        stable_text=result.stable_text,
        words=[
            pb.WordInfo(word=w.word, start_s=w.start_s, end_s=w.end_s, probability=w.probability) for w in result.words
        ],
        confidence=result.confidence,
        language=result.language,
        language_probability=result.language_probability,
        start_s=result.start_s,
        end_s=result.end_s,
        quality=pb.ResultQuality(
            no_speech_prob=result.quality.no_speech_prob,
            avg_logprob=result.quality.avg_logprob,
            compression_ratio=result.quality.compression_ratio,
            temperature=result.quality.temperature,
            flags=[flag.value for flag in result.quality.flags],  # by name: the enum's labels are Flag's values
        ),
        timing=pb.ResultTiming(
            latency_s=result.timing.latency_s,
            endpoint_wait_s=result.timing.endpoint_wait_s,
            queue_wait_s=result.timing.queue_wait_s,
            decode_s=result.timing.decode_s,
            decoded_audio_s=result.timing.decoded_audio_s,
            real_time_factor=result.timing.real_time_factor,
        ),
    )


def output_to_pb(output: Output) -> pb.StreamingTranscribeResponse:
    response = pb.StreamingTranscribeResponse(final_offset_s=output.final_offset_s)
    if isinstance(output, Event):
        response.event.CopyFrom(
            pb.SpeechEvent(type=_EVENT_TYPES[output.type], time_s=output.time_s, utterance_id=output.utterance_id)
        )
    elif isinstance(output, Result):
        response.result.CopyFrom(result_to_pb(output))
    elif isinstance(output, ConfigAck):
        response.config_update.CopyFrom(
            pb.ConfigUpdate(
                outcome=pb.ConfigUpdate.APPLIED if output.applied else pb.ConfigUpdate.REFUSED,
                message=output.message,
                received_at_s=output.received_at_s,
                in_progress_utterance_id=output.in_progress_utterance_id,
            )
        )
    else:
        assert isinstance(output, Progress)
    return response


@contextlib.asynccontextmanager
async def rpc_scope(context: grpc.aio.ServicerContext) -> AsyncIterator[str]:
    """One RPC: a stream id on every log line, refusals and failures turned into statuses."""
    stream_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(stream_id=stream_id, peer=context.peer())
    try:
        yield stream_id
    except StreamFailure as exc:
        status = STATUS_FOR_FAILURE[exc.code]
        if isinstance(exc, StreamRefused):
            log.info("stream_refused", code=status.name, reason=exc.message)
        else:
            log.info("stream_failed", code=exc.code.value, reason=exc.message)
        await _abort(context, status, exc.message, exc.retry_after_s)
    finally:
        structlog.contextvars.unbind_contextvars("stream_id", "peer")


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, retry_after_s: float | None
) -> None:
    if retry_after_s is not None:
        context.set_trailing_metadata(((PUSHBACK_KEY, str(round(retry_after_s * 1000))),))
    await context.abort(code, message)


async def run_session(
    session: Session, chunks: AsyncIterator[bytes | Reconfigure], idle_timeout_s: float, stop: asyncio.Event
) -> AsyncIterator[Output]:
    """Drive a session: reading and results run together; the reader is cancelled if output stops early."""
    reader = asyncio.create_task(session.consume(chunks, idle_timeout_s, stop))
    try:
        async for output in session.results():
            yield output
        await reader
    finally:
        reader.cancel()
        session.close()


class TranscriberServicer(pb_grpc.TranscriberServicer):
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._settings = sessions.settings
        self._state = sessions.state

    async def StreamingTranscribe(
        self, request_iterator: AsyncIterator[pb.StreamingTranscribeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamingTranscribeResponse]:
        async with rpc_scope(context) as stream_id:
            self._state.check_ready()
            # A stream takes a slot only once its config is valid: streams that send nothing cannot lock
            # others out, and draining does not wait for them.
            requests = parsed(request_iterator)
            config = await self._first_config(requests)
            offset = config.audio_offset_s
            with self._sessions.open(
                stream_id,
                config.recognition,
                interim=config.interim_results,
                events=config.speech_events,
                offset_s=offset,
                resumable=True,
            ) as session:
                params = session.params
                log.info(
                    "stream_started",
                    rate=params.sample_rate_hz,
                    encoding=params.encoding.value,
                    interim=params.interim_results,
                    audio_offset_s=offset,
                )

                def update(later: pb.StreamingConfig) -> Reconfigure:
                    return self._sessions.update(later, session.params, offset)

                try:
                    async for output in run_session(
                        session,
                        _stream_input(requests, update),
                        self._settings.stream_idle_timeout_s,
                        self._state.drain,
                    ):
                        yield output_to_pb(output)
                finally:
                    log.info("stream_ended", audio_s=round(session.audio_seconds, 2))

    async def _first_config(self, requests: AsyncIterator[pb.StreamingTranscribeRequest]) -> pb.StreamingConfig:
        timeout = self._settings.config_timeout_s
        try:
            first = await asyncio.wait_for(anext(requests), timeout)
        except StopAsyncIteration:
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT, "the stream ended before its config: send a StreamingConfig first"
            ) from None
        except TimeoutError:
            raise StreamRefused(
                FailureCode.IDLE_TIMEOUT, f"no config received within {timeout:g} s of opening the stream"
            ) from None
        if first.WhichOneof("request") != "config":
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT,
                "the first message must carry config (StreamingConfig); audio comes after it",
            )
        return first.config

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        async with rpc_scope(context) as stream_id:
            with self._sessions.open(stream_id, request.config) as session:
                outputs = run_session(
                    session, _once(request.audio), self._settings.stream_idle_timeout_s, asyncio.Event()
                )
                results = [result_to_pb(output) async for output in outputs if isinstance(output, Result)]
                return pb.TranscribeResponse(results=results, duration_s=session.audio_seconds)
        raise AssertionError("unreachable: rpc_scope aborts on every failure")

    async def Ready(self, request: pb.ReadyRequest, context: grpc.aio.ServicerContext) -> pb.ReadyResponse:
        reason = self._state.not_ready_reason
        info = self._sessions.engine.info
        if reason is not None or info is None:  # info is set before the state says the model is ready
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason or "the model is still loading")
        assert info is not None
        return pb.ReadyResponse(model=info.name, device=info.device)


async def _stream_input(
    requests: AsyncIterator[pb.StreamingTranscribeRequest], update: Callable[[pb.StreamingConfig], Reconfigure]
) -> AsyncIterator[bytes | Reconfigure]:
    """What follows the first config, in order: audio, and config updates already validated."""
    async for request in requests:
        kind = request.WhichOneof("request")
        if kind == "config":
            yield update(request.config)
            continue
        if kind is None:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, "a request carried neither config nor audio")
        yield request.audio


async def parsed(requests: AsyncIterator[_Request]) -> AsyncIterator[_Request]:
    """The client's messages; one that protobuf cannot parse ends the stream with INVALID_ARGUMENT.

    The parse error comes from the request iterator (app/hws/parsing.py); unhandled, it would end the
    reader while the response side waits for it.
    """
    iterator = aiter(requests)
    while True:
        try:
            request = parsing.check(await anext(iterator))
        except StopAsyncIteration:
            return
        except DecodeError:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, parsing.MESSAGE) from None
        yield request


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data

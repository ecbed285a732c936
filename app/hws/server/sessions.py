"""Where every session is made: the client's config validated once, then a slot, then the stream's session.

Also the loop that drives a session for any servicer (run_session).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterator

from hws.asr.scheduler import Engine
from hws.audio import AudioFormatError, Encoding, check_format
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.server.open_calls import peer_address
from hws.server.readiness import STREAM_LIMIT_RETRY_S, ServingState
from hws.server.rpc import StreamRefused
from hws.server.settings import Settings
from hws.stream.outputs import FailureCode, KeepAlive, Output, Reconfigure, StreamParams
from hws.stream.session import Session
from hws.stream.vad import AGGRESSIVENESS, ENDPOINT_SILENCE_MS, MAX_UTTERANCE_S, VadParams

_ENCODINGS = {
    pb.AUDIO_ENCODING_UNSPECIFIED: Encoding.LINEAR16,
    pb.LINEAR16: Encoding.LINEAR16,
    pb.MULAW: Encoding.MULAW,
}
MAX_AUDIO_OFFSET_S = 10_000_000.0  # about 115 days of audio: beyond any real stream


SHOWN_CHARS = 40  # a client's string is echoed in statuses and logs up to this long


def _shown(text: str) -> str:
    """A client's string for a status message: quoted, and cut short when long."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


class StreamsByPeer:
    """The open streams of each client connection and address, against their caps (0: no cap)."""

    def __init__(self, per_connection: int, per_peer: int) -> None:
        self.per_connection = per_connection
        self.per_peer = per_peer
        self._open: collections.Counter[str] = collections.Counter()  # connection and "addr " + address -> streams

    @contextlib.contextmanager
    def hold(self, peer: str) -> Iterator[None]:
        keys = [(peer, self.per_connection, "connection"), ("addr " + peer_address(peer), self.per_peer, "address")]
        for key, cap, what in keys:
            if cap and self._open[key] >= cap:
                raise StreamRefused(
                    FailureCode.OVERLOADED,
                    f"at most {cap} open streams per client {what}; close one, or retry later",
                    retry_after_s=STREAM_LIMIT_RETRY_S,
                )
        for key, _, _ in keys:
            self._open[key] += 1
        try:
            yield
        finally:
            for key, _, _ in keys:
                self._open[key] -= 1
                if not self._open[key]:
                    del self._open[key]


class SessionFactory:
    """Where every session is made (the streaming call, the unary call, the compat service): the client's
    config validated once, against the same rules, before the stream takes a slot."""

    def __init__(self, settings: Settings, engine: Engine, state: ServingState) -> None:
        self.settings = settings
        self.engine = engine
        self.state = state
        self.by_peer = StreamsByPeer(settings.max_streams_per_connection, settings.max_streams_per_peer)

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
        peer: str = "",
        streaming: bool = True,
    ) -> Iterator[Session]:
        """A session for a valid config, counted against --max-streams and the peer's caps while open;
        else StreamRefused.

        Only `resumable` sessions (the main streaming interface, whose clients resume on another
        connection) end at the stream age limit; `streaming` ones (not the unary call, whose audio comes
        in one message) end when their audio falls far behind real time (--min-audio-pace).
        """
        self.state.check_ready()
        params = self.params(config, interim=interim, events=events)
        if not 0.0 <= offset_s <= MAX_AUDIO_OFFSET_S:  # also false for NaN
            raise StreamRefused(
                FailureCode.INVALID_ARGUMENT,
                f"audio_offset_s must be between 0 and {MAX_AUDIO_OFFSET_S:g}, got {offset_s}",
            )
        settings = self.settings
        with self.by_peer.hold(peer), self.state.stream_slot():
            yield Session(
                stream_id,
                params,
                self.engine,
                settings.partial_interval_ms,
                offset_s,
                settings.backlog_timeout_s,
                settings.max_stream_age_s if resumable else 0.0,
                settings.max_stream_age_overrun_s if resumable else 0.0,
                min_audio_pace=settings.min_audio_pace if streaming else 0.0,
                audio_pace_window_s=settings.audio_pace_window_s,
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
        # ASCII only: str.lower() maps other letters onto codes ("\u212am", a Kelvin sign, became Khmer's "km").
        code = config.language.strip().lower() if config.language.isascii() else config.language
        language = code or None
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


async def run_session(
    session: Session, chunks: AsyncIterator[bytes | Reconfigure | KeepAlive], idle_timeout_s: float, stop: asyncio.Event
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

"""What a stream is told and what it ends with: results, events, progress, config answers, failures.

The session's vocabulary, shared with the servicers that turn it into protobuf (hws.server.convert):
nothing here knows gRPC or the recognizer's internals.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TypeVar

from hws.asr.types import DecodeTiming, Quality
from hws.audio import Encoding
from hws.stream.vad import VadParams


class FailureCode(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    OVERLOADED = "OVERLOADED"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    TOO_SLOW = "TOO_SLOW"  # the audio falls far behind real time (hws.stream.pace)
    DRAINING = "DRAINING"
    MAX_AGE = "MAX_AGE"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"


class KeepAlive:
    """A message that carries no audio (the compat protocol's empty one): the client is there, nothing more."""


KEEP_ALIVE = KeepAlive()


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

"""The recognition interface: what a stream asks of a recognizer and what it gets back.

A neutral module both sides import: the scheduler (hws.asr.scheduler) and the streams send
DecodeRequests and read DecodeResults; a Backend (hws.asr.whisper.backend on faster-whisper, a
fake in the tests) turns one into the other. Nothing here knows the scheduler's queue or gRPC.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any, Protocol, final

import numpy as np

from hws.asr.quality import Flag


class JobKind(enum.Enum):
    FINAL = "final"
    PARTIAL = "partial"


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None  # None: the model's only language, or detected (see WhisperBackend._language)
    prompt: str | None = None
    word_timestamps: bool = False


@dataclasses.dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the decoded audio
    end: float
    probability: float


@dataclasses.dataclass(frozen=True)
class Quality:
    """Whisper's own signals for one decode (see app/hws/asr/quality.py and the proto's ResultQuality)."""

    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    flags: tuple[Flag, ...] = ()


@dataclasses.dataclass(frozen=True)
class DecodeTiming:
    """What one decode cost, as the worker measured it (the proto's ResultTiming is built from it)."""

    queued_s: float  # from the job's submission to its batch's start
    seconds: float  # model time: the job's share of its batch's encoder pass plus its own decode (hws_decode_seconds)
    audio_s: float  # audio the decode read (hws_decoded_audio_seconds_total)
    done_at: float  # time.monotonic() when the decode ended


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    text: str
    words: list[Word]
    confidence: float
    language: str
    language_probability: float
    quality: Quality = dataclasses.field(default_factory=Quality)
    timing: DecodeTiming | None = None  # set by the worker that ran the decode
    misreads_context: bool = False  # heard with context, but not as context (see _misreads_context)


@final  # so that a Context is always true to mypy: `job.context and (...)` (whisper_backend) is a tuple or None
@dataclasses.dataclass(frozen=True)
class Context:
    """Audio before the utterance that a final hears but does not transcribe (sample counts)."""

    utterance_start: int  # where the utterance begins in the job's audio
    previous_speech_end: int  # where the previous utterance's last voiced frame ends in it


@dataclasses.dataclass(frozen=True)
class DecodeRequest:
    """One decode as the backend sees it: the audio, how to read it, and how wide its encoder window is."""

    stream_id: str  # for the backend's logs only
    kind: JobKind
    audio: np.ndarray
    options: DecodeOptions
    padding_s: float  # the encoder window's margin of silence after the audio
    context: Context | None = None
    silence_after: int = 0  # samples at the end of `audio` that the VAD heard as silence


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    device: str
    compute_type: str
    multilingual: bool
    languages: tuple[str, ...] = ("en",)  # the codes the model can produce (model_languages)


class EngineNotReady(RuntimeError):
    pass


class DecodeTimeout(RuntimeError):
    """The watchdog gave up on a decode that ran past decode_timeout_s."""


class Backend(Protocol):
    """What the scheduler needs of a recognizer: app/hws/asr/whisper/backend.py's WhisperBackend, or a test's fake.

    Features and encoder outputs are the backend's own; the scheduler only groups jobs by their window.
    The scheduler's workers call features, window, encode and decode from several threads at once.
    """

    # Every language code the recognizer has (a model may know fewer: ModelInfo.languages).
    language_codes: frozenset[str]

    @property
    def workers(self) -> int:
        """Decodes that may run at once; settled by load."""
        ...

    @property
    def max_batch_size(self) -> int:
        """Jobs one worker takes at once; settled by load."""
        ...

    def load(self) -> ModelInfo:
        """Load the model (blocking) and settle the device, workers and max_batch_size."""
        ...

    def prompt(self, initial_prompt: str, hotwords: Sequence[str]) -> str | None:
        """The text that conditions a stream's every decode, from its prompt and hot words."""
        ...

    def features(self, audio: np.ndarray) -> Any:
        """What the encoder and decoder read of `audio`."""
        ...

    def window(self, features: Any, padding_s: float) -> int:
        """The encoder frames for `features` and a margin of `padding_s`: only equal windows share a pass."""
        ...

    def encode(self, features: Sequence[Any], frames: int) -> list[Any]:
        """One encoder pass over features whose windows are all `frames`: an output for each."""
        ...

    def decode(self, request: DecodeRequest, features: Any, encoder_output: Any) -> DecodeResult:
        """Decode one request from its features and its encoder output."""
        ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
MULAW: AudioEncoding

class RecognitionConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "audio_channel_count", "language", "word_timestamps", "initial_prompt", "hotwords", "vad_aggressiveness", "endpoint_silence_ms", "max_utterance_s")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHANNEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    VAD_AGGRESSIVENESS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_S_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    audio_channel_count: int
    language: str
    word_timestamps: bool
    initial_prompt: str
    hotwords: _containers.RepeatedScalarFieldContainer[str]
    vad_aggressiveness: int
    endpoint_silence_ms: int
    max_utterance_s: float
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., audio_channel_count: _Optional[int] = ..., language: _Optional[str] = ..., word_timestamps: _Optional[bool] = ..., initial_prompt: _Optional[str] = ..., hotwords: _Optional[_Iterable[str]] = ..., vad_aggressiveness: _Optional[int] = ..., endpoint_silence_ms: _Optional[int] = ..., max_utterance_s: _Optional[float] = ...) -> None: ...

class StreamingConfig(_message.Message):
    __slots__ = ("recognition", "interim_results", "speech_events", "audio_offset_s")
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    recognition: RecognitionConfig
    interim_results: bool
    speech_events: bool
    audio_offset_s: float
    def __init__(self, recognition: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., speech_events: _Optional[bool] = ..., audio_offset_s: _Optional[float] = ...) -> None: ...

class StreamingTranscribeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: StreamingConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class StreamingTranscribeResponse(_message.Message):
    __slots__ = ("result", "event", "config_update", "final_offset_s")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_UPDATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    result: SpeechResult
    event: SpeechEvent
    config_update: ConfigUpdate
    final_offset_s: float
    def __init__(self, result: _Optional[_Union[SpeechResult, _Mapping]] = ..., event: _Optional[_Union[SpeechEvent, _Mapping]] = ..., config_update: _Optional[_Union[ConfigUpdate, _Mapping]] = ..., final_offset_s: _Optional[float] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("outcome", "message", "received_at_s", "in_progress_utterance_id")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[ConfigUpdate.Outcome]
        APPLIED: _ClassVar[ConfigUpdate.Outcome]
        REFUSED: _ClassVar[ConfigUpdate.Outcome]
    OUTCOME_UNSPECIFIED: ConfigUpdate.Outcome
    APPLIED: ConfigUpdate.Outcome
    REFUSED: ConfigUpdate.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_S_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: ConfigUpdate.Outcome
    message: str
    received_at_s: float
    in_progress_utterance_id: str
    def __init__(self, outcome: _Optional[_Union[ConfigUpdate.Outcome, str]] = ..., message: _Optional[str] = ..., received_at_s: _Optional[float] = ..., in_progress_utterance_id: _Optional[str] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("type", "time_s", "utterance_id")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[SpeechEvent.Type]
        SPEECH_STARTED: _ClassVar[SpeechEvent.Type]
        SPEECH_ENDED: _ClassVar[SpeechEvent.Type]
    TYPE_UNSPECIFIED: SpeechEvent.Type
    SPEECH_STARTED: SpeechEvent.Type
    SPEECH_ENDED: SpeechEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    type: SpeechEvent.Type
    time_s: float
    utterance_id: str
    def __init__(self, type: _Optional[_Union[SpeechEvent.Type, str]] = ..., time_s: _Optional[float] = ..., utterance_id: _Optional[str] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_s", "end_s", "probability")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_s: float
    end_s: float
    probability: float
    def __init__(self, word: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class SpeechResult(_message.Message):
    __slots__ = ("utterance_id", "is_final", "stability", "text", "stable_text", "words", "confidence", "language", "language_probability", "start_s", "end_s", "quality", "timing")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    utterance_id: str
    is_final: bool
    stability: float
    text: str
    stable_text: str
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    confidence: float
    language: str
    language_probability: float
    start_s: float
    end_s: float
    quality: ResultQuality
    timing: ResultTiming
    def __init__(self, utterance_id: _Optional[str] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., text: _Optional[str] = ..., stable_text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ..., confidence: _Optional[float] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., quality: _Optional[_Union[ResultQuality, _Mapping]] = ..., timing: _Optional[_Union[ResultTiming, _Mapping]] = ...) -> None: ...

class ResultTiming(_message.Message):
    __slots__ = ("latency_s", "endpoint_wait_s", "queue_wait_s", "decode_s", "decoded_audio_s", "real_time_factor")
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_S_FIELD_NUMBER: _ClassVar[int]
    DECODED_AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    latency_s: float
    endpoint_wait_s: float
    queue_wait_s: float
    decode_s: float
    decoded_audio_s: float
    real_time_factor: float
    def __init__(self, latency_s: _Optional[float] = ..., endpoint_wait_s: _Optional[float] = ..., queue_wait_s: _Optional[float] = ..., decode_s: _Optional[float] = ..., decoded_audio_s: _Optional[float] = ..., real_time_factor: _Optional[float] = ...) -> None: ...

class ResultQuality(_message.Message):
    __slots__ = ("no_speech_prob", "avg_logprob", "compression_ratio", "temperature", "flags")
    class Flag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FLAG_UNSPECIFIED: _ClassVar[ResultQuality.Flag]
        LIKELY_NO_SPEECH: _ClassVar[ResultQuality.Flag]
        LOW_CONFIDENCE: _ClassVar[ResultQuality.Flag]
        REPETITION: _ClassVar[ResultQuality.Flag]
        TEMPERATURE_FALLBACK: _ClassVar[ResultQuality.Flag]
        STABLE_TEXT_REVISED: _ClassVar[ResultQuality.Flag]
    FLAG_UNSPECIFIED: ResultQuality.Flag
    LIKELY_NO_SPEECH: ResultQuality.Flag
    LOW_CONFIDENCE: ResultQuality.Flag
    REPETITION: ResultQuality.Flag
    TEMPERATURE_FALLBACK: ResultQuality.Flag
    STABLE_TEXT_REVISED: ResultQuality.Flag
    NO_SPEECH_PROB_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    temperature: float
    flags: _containers.RepeatedScalarFieldContainer[ResultQuality.Flag]
    def __init__(self, no_speech_prob: _Optional[float] = ..., avg_logprob: _Optional[float] = ..., compression_ratio: _Optional[float] = ..., temperature: _Optional[float] = ..., flags: _Optional[_Iterable[_Union[ResultQuality.Flag, str]]] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("results", "duration_s")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SpeechResult]
    duration_s: float
    def __init__(self, results: _Optional[_Iterable[_Union[SpeechResult, _Mapping]]] = ..., duration_s: _Optional[float] = ...) -> None: ...

class ReadyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadyResponse(_message.Message):
    __slots__ = ("model", "device")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    model: str
    device: str
    def __init__(self, model: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

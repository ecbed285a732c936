"""Property-based fuzzing of the real server: random configs, message orders and audio bytes.

Whatever a client sends, every call ends within its deadline with a status
from the documented set (never UNKNOWN or INTERNAL, never a hang cut short by
the client's deadline), and the server stays alive and still transcribes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from hws.gen.compat import audio_transcriber_pb2 as compat_pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from tests.support import ServerProcess, clip_pcm16, final_text, metric_value, stream_clip, streaming_config

CLIENT_DEADLINE_S = 20.0
# The statuses transcriber.proto documents (INTERNAL only for a failed decode, which random input must not cause).
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}
# The server's own idle timeouts; a DEADLINE_EXCEEDED without these words is the client's deadline: a hang.
SERVER_TIMEOUT_WORDS = ("no message received", "no config received")
SPEECH = "synth_weather.wav"
# At most 24 s of audio per stream (8 kHz mu-law; 6 s of 16 kHz LINEAR16): a few seconds of decoding on 2 cores,
# far inside the client deadline for a server that decodes in bounded time.
AUDIO_BUDGET_BYTES = 192 * 1024
INT32 = st.integers(-(2**31), 2**31 - 1)

FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


# --- What a client may send ---------------------------------------------------------------------------------------

short_text = st.text(max_size=12)
recognition_configs = st.builds(
    pb.RecognitionConfig,
    encoding=st.integers(0, 10),
    sample_rate_hz=st.one_of(st.sampled_from([8000, 16000, 44100, 48000, 7999, 48001, 0]), INT32),
    audio_channel_count=st.one_of(st.integers(-1, 3), INT32),
    language=st.one_of(st.sampled_from(["", "en", " EN ", "fr", "xx", "zz-ZZ"]), short_text),
    word_timestamps=st.booleans(),
    initial_prompt=st.one_of(short_text, st.text(min_size=900, max_size=1100)),
    hotwords=st.lists(st.one_of(short_text, st.text(min_size=95, max_size=105)), max_size=55),
    vad_aggressiveness=st.one_of(st.none(), st.integers(-1, 4), INT32),
    endpoint_silence_ms=st.one_of(st.sampled_from([0, 99, 100, 5000, 5001]), INT32),
    max_utterance_s=st.one_of(
        st.sampled_from([0.0, 0.5, 1.0, 30.0, 30.5, -1.0]), st.floats(width=32, allow_nan=True, allow_infinity=True)
    ),
)
# Valid configs too, or the fuzzer would rarely get past validation to the audio path.
valid_recognition_configs = st.builds(
    pb.RecognitionConfig,
    encoding=st.integers(0, 2),
    sample_rate_hz=st.sampled_from([8000, 11025, 16000, 22050, 48000]),
    audio_channel_count=st.integers(0, 2),
    language=st.sampled_from(["", "en"]),
    word_timestamps=st.booleans(),
    initial_prompt=short_text,
    hotwords=st.lists(short_text, max_size=3),
    vad_aggressiveness=st.one_of(st.none(), st.integers(0, 3)),
    endpoint_silence_ms=st.sampled_from([0, 100, 300, 5000]),
    max_utterance_s=st.sampled_from([0.0, 1.0, 2.5, 30.0]),
)
streaming_configs = st.builds(
    pb.StreamingConfig,
    recognition=st.one_of(recognition_configs, valid_recognition_configs),
    interim_results=st.booleans(),
    speech_events=st.booleans(),
    audio_offset_s=st.one_of(st.just(0.0), st.floats(0, 1e7), st.floats(allow_nan=True, allow_infinity=True)),
)


@dataclass(frozen=True)
class Noise:
    size: int
    seed: int

    def data(self) -> bytes:
        return np.random.default_rng(self.seed).bytes(self.size)


@dataclass(frozen=True)
class Speech:
    """A slice of a real clip's LINEAR16 bytes, so that the VAD fires and the decoder runs on whatever config."""

    offset: int
    size: int

    def data(self) -> bytes:
        pcm = clip_pcm16(SPEECH)
        start = self.offset % len(pcm)
        return pcm[start : start + self.size]


@dataclass(frozen=True)
class Pause:
    seconds: float


# Whole frames for every encoding and channel count (a multiple of 4 bytes), and a valid config: without a
# well-formed half, nearly every stream would end with INVALID_ARGUMENT before audio reaches the VAD and decoder.
frame_sizes = st.integers(1, 16 * 1024).map(lambda n: 4 * n)
aligned_audio = st.one_of(
    st.just(Speech(0, 10**8)),  # the whole clip: utterances long enough for partials and several finals
    st.builds(Speech, st.integers(0, 2**18).map(lambda n: 4 * n), frame_sizes),
    st.builds(Noise, frame_sizes, st.integers(0, 2**32)),
)
any_sizes = st.integers(0, 64 * 1024)
audio = st.one_of(
    aligned_audio,
    st.builds(Speech, st.integers(0, 2**20), any_sizes),
    st.builds(Noise, any_sizes, st.integers(0, 2**32)),
    st.binary(max_size=64),
)
Message = pb.StreamingConfig | bytes | Noise | Speech | Pause | None  # None: a request with neither field set
pauses = st.builds(Pause, st.floats(0, 0.3))
odd_messages = st.one_of(streaming_configs, st.none(), pauses)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Message], float | None]:
    """Half well-formed (valid config, whole frames, pauses), half anything; sometimes the client cancels early."""
    if draw(st.booleans()):
        first: Message = draw(st.builds(pb.StreamingConfig, recognition=valid_recognition_configs,
                                         interim_results=st.booleans(), speech_events=st.booleans(),
                                         audio_offset_s=st.floats(0, 1e6)))  # fmt: skip
        rest = draw(st.lists(st.one_of(aligned_audio, aligned_audio, pauses), max_size=8))
    else:
        first = draw(st.one_of(streaming_configs, audio, odd_messages))
        rest = draw(st.lists(st.one_of(audio, audio, audio, odd_messages), max_size=8))
    cancel_after_s = draw(st.one_of(st.none(), st.none(), st.none(), st.floats(0.0, 1.5)))
    return [first, *rest], cancel_after_s


def _request(message: Message) -> pb.StreamingTranscribeRequest | None:
    if isinstance(message, Pause):
        time.sleep(message.seconds)
        return None
    if message is None:
        return pb.StreamingTranscribeRequest()
    if isinstance(message, pb.StreamingConfig):
        return pb.StreamingTranscribeRequest(config=message)
    return pb.StreamingTranscribeRequest(audio=message if isinstance(message, bytes) else message.data())


def _requests(scenario: list[Message]) -> Iterator[pb.StreamingTranscribeRequest]:
    sent = 0
    for message in scenario:
        request = _request(message)
        if request is None:
            continue
        sent += len(request.audio)
        # Past the budget, audio is left out: more would make a slow-but-correct server miss the client deadline.
        if request.audio and sent > AUDIO_BUDGET_BYTES:
            continue
        yield request


def _check_status(server: ServerProcess, code: grpc.StatusCode, details: str, cancelled_by_us: bool) -> None:
    event(f"status {code.name}")
    assert server.process is not None and server.process.poll() is None, f"server died:\n{server.log()[-4000:]}"
    if code == grpc.StatusCode.CANCELLED:
        assert cancelled_by_us, f"CANCELLED without a client cancel: {details}"
        return
    assert code in DOCUMENTED, f"undocumented status {code.name}: {details}\n{server.log()[-4000:]}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        assert any(words in details for words in SERVER_TIMEOUT_WORDS), f"client deadline hit (a hang?): {details}"


# --- Properties -----------------------------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(scenario=scenarios())
# Stalls longer than the server's idle timeout (3 s) cost seconds each, so they are explicit cases, not random ones.
@example(scenario=([Pause(3.5)], None)).via("idle before the config")
@example(scenario=([streaming_config(), Speech(0, 32000), Pause(3.5), Speech(0, 32000)], None)).via("idle mid-stream")
def test_streaming_fuzz(server: ServerProcess, scenario: tuple[list[Message], float | None]) -> None:
    messages_, cancel_after_s = scenario
    with grpc.insecure_channel(server.address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(_requests(messages_), timeout=CLIENT_DEADLINE_S)
        timer = threading.Timer(cancel_after_s, call.cancel) if cancel_after_s is not None else None
        if timer is not None:
            timer.start()
        try:
            results = sum(response.WhichOneof("response") == "result" for response in call)
            event("got results" if results else "no results")
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
        finally:
            if timer is not None:
                timer.cancel()
    _check_status(server, code, details, cancelled_by_us=cancel_after_s is not None)


@FUZZ_SETTINGS
@given(config=st.one_of(recognition_configs, valid_recognition_configs), payload=st.one_of(aligned_audio, audio))
def test_unary_fuzz(server: ServerProcess, config: pb.RecognitionConfig, payload: bytes | Noise | Speech) -> None:
    data = payload if isinstance(payload, bytes) else payload.data()
    with grpc.insecure_channel(server.address) as channel:
        try:
            pb_grpc.TranscriberStub(channel).Transcribe(
                pb.TranscribeRequest(config=config, audio=data), timeout=CLIENT_DEADLINE_S
            )
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
    _check_status(server, code, details, cancelled_by_us=False)


@settings(FUZZ_SETTINGS, max_examples=20)
@given(chunks=st.lists(st.one_of(st.binary(max_size=64), aligned_audio, audio), max_size=6))
def test_compat_stream_fuzz(server: ServerProcess, chunks: list[bytes | Noise | Speech]) -> None:
    """The original protocol takes any bytes (even half samples): it must end OK or with a documented status."""
    data = [c if isinstance(c, bytes) else c.data() for c in chunks]
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(
            "/AudioTranscriberService/TranscribeAudio",
            request_serializer=lambda b: compat_pb.AudioRequest(audio_data=b).SerializeToString(),
            response_deserializer=compat_pb.TranscriptionResponse.FromString,
        )(iter(data), timeout=CLIENT_DEADLINE_S)
        try:
            list(call)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
    _check_status(server, code, details, cancelled_by_us=False)


def test_server_still_transcribes_after_fuzzing(server: ServerProcess) -> None:
    """Runs after the fuzz tests (file order): every stream slot was given back and the decoder still works."""
    assert server.process is not None and server.process.poll() is None
    deadline = time.monotonic() + 10
    while (active := metric_value(server.metrics(), "hws_active_streams")) and time.monotonic() < deadline:
        time.sleep(0.2)  # cancelled streams may take a moment to wind down
    assert active == 0, f"{active} stream slots still held after every call ended"
    assert "cloudy" in final_text(stream_clip(server.address, SPEECH)).lower()


def test_noise_with_junk_hotwords_finishes_inside_a_deadline(server: ServerProcess) -> None:
    """Minimal fuzzer example: random bytes as 11025 Hz mu-law, 2.5 s utterances, hot words of junk characters.

    Every fallback temperature looped to Whisper's 448-token limit: 23 s of decoding for 4.9 s of audio on
    2 CPU cores, every other stream waiting. With new tokens capped by audio length it takes about 5.6 s;
    the deadline is the fuzz tests' "never hangs" property, with room for a loaded machine.
    """
    noise = np.random.default_rng(1434).bytes(54256)  # two 2.5 s utterances; any seed does it
    config = pb.RecognitionConfig(
        encoding=pb.MULAW,
        sample_rate_hz=11025,
        max_utterance_s=2.5,
        hotwords=["[\x9c³", "¨\x93", "(\x19\x86¦ªw½Cå¨\x8e𨸜"],
    )
    with grpc.insecure_channel(server.address) as channel:
        pb_grpc.TranscriberStub(channel).Transcribe(pb.TranscribeRequest(config=config, audio=noise), timeout=15)
    assert "cloudy" in final_text(stream_clip(server.address, SPEECH)).lower()

"""Stream slots go to clients that stream: a trickle is ended, a call that sends nothing holds no slot, and
one connection or one address may be capped, on both the main interface and the compat service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hws.gen.compat import audio_transcriber_pb2 as compat_pb
from hws.gen.compat import audio_transcriber_pb2_grpc as compat_grpc
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from tests.support import ServerProcess, chunked, clip_pcm16, streaming_config

SILENCE_100MS = bytes(3200)
PUSHBACK = ("grpc-retry-pushback-ms", "1000")


class Held:
    """One call on `channel` that sends `chunk` every `every_s` (after a config, on the main interface)
    until stopped, then half-closes; `error` is how it ended (None: OK)."""

    def __init__(self, channel: grpc.Channel, chunk: bytes, every_s: float, compat: bool = False) -> None:
        self.stopped = threading.Event()
        self.error: grpc.RpcError | None = None
        self.responses = 0
        self._compat, self._channel, self._chunk, self._every_s = compat, channel, chunk, every_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _messages(self) -> Iterator[object]:
        if not self._compat:
            yield pb.StreamingTranscribeRequest(config=streaming_config())
        while not self.stopped.wait(self._every_s):
            if self._compat:
                yield compat_pb.AudioRequest(audio_data=self._chunk)
            else:
                yield pb.StreamingTranscribeRequest(audio=self._chunk)

    def _run(self) -> None:
        try:
            if self._compat:
                calls = compat_grpc.AudioTranscriberServiceStub(self._channel).TranscribeAudio(self._messages())
            else:
                calls = pb_grpc.TranscriberStub(self._channel).StreamingTranscribe(self._messages())
            for _ in calls:
                self.responses += 1
        except grpc.RpcError as exc:
            self.error = exc

    def end(self, timeout: float = 30.0) -> grpc.RpcError | None:
        self.stopped.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive()
        return self.error

    def wait(self, timeout: float) -> grpc.RpcError | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call is still open"
        self.stopped.set()
        return self.error


def _served(address: str) -> bool:
    """Whether a short stream of speech gets its final now."""
    with grpc.insecure_channel(address) as channel:
        pcm = clip_pcm16("jfk.flac")
        messages = [pb.StreamingTranscribeRequest(config=streaming_config())]
        messages += [pb.StreamingTranscribeRequest(audio=chunk) for chunk in chunked(pcm, 32_000)]
        responses = list(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(messages), timeout=60))
    return any(response.result.is_final and response.result.text for response in responses)


def test_a_trickle_is_ended_on_both_interfaces_and_silence_at_real_time_is_not(log_dir: Path) -> None:
    args = ["--max-streams", "3", "--audio-pace-window-s", "5", "--stream-idle-timeout-s", "3"]
    with ServerProcess(args=args).start(log_dir) as server, grpc.insecure_channel(server.address) as channel:
        started = time.monotonic()
        # Two bytes every half second: every idle timer is reset, 0.0001x real time.
        trickles = [Held(channel, b"\x00\x00", 0.5), Held(channel, b"\x00\x00", 0.5, compat=True)]
        quiet_room = Held(channel, SILENCE_100MS, 0.1)  # an open microphone: silence, at real time
        for trickle in trickles:
            error = trickle.wait(timeout=20)
            assert error is not None and error.code() is grpc.StatusCode.DEADLINE_EXCEEDED, error
            assert "real time" in (error.details() or ""), error.details()
        assert time.monotonic() - started < 15  # the window and a second's check, not the 30 s of a stream idle
        assert _served(server.address)  # their slots are free: with the microphone's, three were taken
        time.sleep(3)
        assert quiet_room.end() is None  # still open well past the window, and ends OK


def test_a_compat_call_takes_no_slot_until_it_sends(log_dir: Path) -> None:
    args = ["--max-streams", "1", "--config-timeout-s", "3"]
    with ServerProcess(args=args).start(log_dir) as server, grpc.insecure_channel(server.address) as channel:
        silent = [Held(channel, b"", 3600, compat=True) for _ in range(2)]  # open, and never a message
        time.sleep(1)
        assert _served(server.address)  # the one slot is free for a stream that streams
        for call in silent:
            error = call.wait(timeout=15)
            assert error is not None and error.code() is grpc.StatusCode.DEADLINE_EXCEEDED, error
            assert "no audio received within 3 s" in (error.details() or "")


def test_compat_keep_alives_count_as_activity(log_dir: Path) -> None:
    with ServerProcess(args=["--stream-idle-timeout-s", "2"]).start(log_dir) as server:
        pcm = clip_pcm16("jfk.flac")

        def messages() -> Iterator[compat_pb.AudioRequest]:
            for chunk in chunked(pcm, 32_000):
                yield compat_pb.AudioRequest(audio_data=chunk)
            for _ in range(4):  # 4 s of keep-alives: twice the idle timeout
                time.sleep(1)
                yield compat_pb.AudioRequest()
            yield compat_pb.AudioRequest(audio_data=SILENCE_100MS * 10)

        with grpc.insecure_channel(server.address) as channel:
            replies = list(compat_grpc.AudioTranscriberServiceStub(channel).TranscribeAudio(messages(), timeout=60))
        assert "country" in " ".join(reply.transcription for reply in replies).lower()


@pytest.mark.parametrize("compat", [False, True])
def test_streams_per_connection_and_per_address_are_capped(log_dir: Path, compat: bool) -> None:
    args = ["--max-streams-per-connection", "2", "--max-streams-per-peer", "3"]
    with ServerProcess(args=args).start(log_dir) as server:
        own_connection = [("grpc.use_local_subchannel_pool", 1)]  # channels to one address share a connection
        first = grpc.insecure_channel(server.address, options=own_connection)
        second = grpc.insecure_channel(server.address, options=own_connection)
        try:
            held = [Held(first, SILENCE_100MS, 0.1, compat) for _ in range(2)]
            time.sleep(1)
            over = Held(first, SILENCE_100MS, 0.1, compat)
            error = over.wait(timeout=10)
            assert error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert "per client connection" in (error.details() or "")
            assert PUSHBACK in tuple(error.trailing_metadata() or ())
            held.append(Held(second, SILENCE_100MS, 0.1, compat))  # another connection: the address's third
            time.sleep(1)
            over = Held(second, SILENCE_100MS, 0.1, compat)
            error = over.wait(timeout=10)
            assert error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert "per client address" in (error.details() or "")
            assert [call.end() for call in held] == [None, None, None]
        finally:
            first.close()
            second.close()

"""A stream whose server dies or drains resumes on another server, losing and repeating nothing."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from hws import client
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import (
    ServerProcess,
    chunked,
    clip_pcm16,
    final_text,
    finals,
    manifest,
    stream_clip,
    streaming_config,
    wer,
)

CLIP = "synth_dialogue_clean.wav"  # six utterances: 0-5.4, 6.4-12.8, 13.7-22.2, ... s


def paced(pcm: bytes, speed: float) -> client.AudioSource:
    chunks = chunked(pcm, 3200)
    return client.AudioSource(client.sources._paced(chunks, (0.1 / speed for _ in chunks)), 16_000)


@pytest.mark.parametrize("interruption", [signal.SIGKILL, signal.SIGTERM], ids=["server-killed", "server-drained"])
def test_resumed_stream_equals_the_uninterrupted_one(server: ServerProcess, log_dir: Path, interruption: int) -> None:
    first = ServerProcess(args=["--grace-period-s", "10"]).start(log_dir)
    second = ServerProcess().start(log_dir)
    retries: list[grpc.StatusCode] = []
    try:
        addresses = [first.address, second.address]
        source = paced(clip_pcm16(CLIP), speed=2.0)
        responses = client.stream_resumable(
            lambda attempt: client.make_channel(addresses[min(attempt, 1)]),
            source,
            pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16000)),
            attempts=3,
            backoff_s=0.2,
            timeout_s=120,
            on_retry=lambda exc, attempt, delay: retries.append(exc.code()),
        )
        # About 9 s of audio in, mid second utterance: the first server goes away.
        assert first.process is not None
        threading.Timer(4.5, first.process.send_signal, (interruption,)).start()
        received = list(responses)
    finally:
        first.stop() if first.process and first.process.poll() is None else None
        second.stop()

    assert retries == [grpc.StatusCode.UNAVAILABLE]
    offsets = [r.final_offset_s for r in received]
    assert offsets == sorted(offsets), "the final offset never moves back"
    results = finals(received)
    ids = [r.utterance_id for r in results]
    assert len(ids) == len(set(ids)), "an utterance was transcribed twice"
    for previous, current in itertools.pairwise(results):
        assert previous.end_s <= current.start_s + 1e-6, "utterances overlap: audio was sent twice"
    uninterrupted = final_text(stream_clip(server.address, CLIP))
    resumed = " ".join(r.text for r in results)
    # Killed: the utterance in progress is lost with the server and transcribed again whole on the second,
    # so (finals being deterministic) the transcript is exactly the uninterrupted one.
    # Drained: the first server finalises it early and the second transcribes the rest of it.
    if interruption == signal.SIGKILL:
        assert [(r.text, r.utterance_id) for r in results] == [
            (r.text, r.utterance_id) for r in finals(stream_clip(server.address, CLIP))
        ]
    else:
        assert len(results) == 7, [r.text for r in results]
        assert wer(uninterrupted, resumed) <= 0.15, (uninterrupted, resumed)
    assert wer(manifest()[CLIP], resumed) <= 0.3
    assert results[-1].end_s > 48.0, "the stream went on to the end of the audio"


def test_progress_through_silence_lets_the_client_drop_audio(server: ServerProcess) -> None:
    silence = b"\x00\x00" * 16000 * 6
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16000))
    with grpc.insecure_channel(server.address) as channel:
        from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

        requests = [pb.StreamingTranscribeRequest(config=config)]
        requests += [pb.StreamingTranscribeRequest(audio=c) for c in chunked(silence + clip_pcm16("jfk.flac"), 3200)]
        received = list(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(requests), timeout=60))
    progress = [r.final_offset_s for r in received if r.WhichOneof("response") is None]
    assert progress and progress[0] >= 2.0, "six seconds of silence were reported final before any speech"
    assert received[-1].final_offset_s >= 16.9  # at the end everything is final
    assert all(r.start_s >= 5.5 for r in finals(received)), "times count from the start of the stream"


def test_resumed_stream_keeps_absolute_times(server: ServerProcess) -> None:
    pcm = clip_pcm16("jfk.flac")
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16000, word_timestamps=True))
    config.audio_offset_s = 100.0
    with grpc.insecure_channel(server.address) as channel:
        from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

        requests = [pb.StreamingTranscribeRequest(config=config)]
        requests += [pb.StreamingTranscribeRequest(audio=c) for c in chunked(pcm, 3200)]
        results = finals(pb_grpc.TranscriberStub(channel).StreamingTranscribe(iter(requests), timeout=60))
    plain = finals(stream_clip(server.address, "jfk.flac", streaming_config(word_timestamps=True)))
    assert [r.text for r in results] == [r.text for r in plain]
    for shifted, base in zip(results, plain, strict=True):
        assert shifted.start_s == pytest.approx(base.start_s + 100.0, abs=0.01)
        assert shifted.utterance_id == f"u{round(shifted.start_s * 1000)}"
        assert shifted.words[0].start_s == pytest.approx(base.words[0].start_s + 100.0, abs=0.05)


@pytest.mark.parametrize("offset", [-1.0, float("nan"), float("inf"), 1e12])
def test_invalid_resume_offset(server: ServerProcess, offset: float) -> None:
    from tests.support import stream

    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16000), audio_offset_s=offset)
    with pytest.raises(grpc.RpcError) as info:
        stream(server.address, [pb.StreamingTranscribeRequest(config=config)])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audio_offset_s" in info.value.details()


def test_cli_resumes_on_a_second_server(server: ServerProcess, log_dir: Path) -> None:
    import subprocess
    import sys

    from tests.support import EVAL_DIR, ROOT

    first = ServerProcess().start(log_dir)
    try:
        command = [sys.executable, "-m", "hws.client.cli", str(EVAL_DIR / "jfk.flac"), "--addr", first.address]
        command += ["--addr", server.address, "--no-interim"]
        cli = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)  # real-time pace: mid first utterance
        assert first.process is not None
        first.process.kill()
        out, err = cli.communicate(timeout=60)
    finally:
        first.stop() if first.process and first.process.poll() is None else None
    assert cli.returncode == 0, err
    assert "resuming" in err
    assert wer(manifest()["jfk.flac"], out) <= 0.1, out

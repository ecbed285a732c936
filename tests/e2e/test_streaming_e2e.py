"""Streaming transcription through the real server process, the real model and real speech."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from hws.stream.stabilizer import word_key
from tests.support import (
    CLIP_OFFLINE_OPTIONS,
    EVAL_DIR,
    ServerProcess,
    clip_pcm16,
    corpus_wer,
    final_text,
    finals,
    manifest,
    offline_model,
    stream_clip,
    streaming_config,
    transcribe,
    wer,
)

# Bounds measured with tiny.en int8 on 2 CPU cores (faster-whisper 1.2.1): offline faster-whisper
# scores 0.155 corpus WER on these 15 clips, the stream 0.151; the worst clip offline is 0.37
# (synthetic speech, which tiny.en hears poorly). The bounds leave room for thread-order
# nondeterminism but fail on a real regression (a dropped utterance costs 0.2-1.0 on a clip).
CORPUS_WER_BOUND = 0.20
CLIP_WER_BOUND = 0.45
RECORDED_WER_BOUND = 0.10  # JFK and LibriSpeech: measured 0.06 streamed


@pytest.fixture(scope="module")
def transcripts(server: ServerProcess) -> dict[str, str]:
    return {name: final_text(stream_clip(server.address, name)) for name in manifest()}


def test_streamed_wer_within_bounds(transcripts: dict[str, str]) -> None:
    refs = manifest()
    per_clip = {name: wer(refs[name], text) for name, text in transcripts.items()}
    assert corpus_wer((refs[n], t) for n, t in transcripts.items()) <= CORPUS_WER_BOUND, per_clip
    assert max(per_clip.values()) <= CLIP_WER_BOUND, per_clip
    recorded = [(refs[n], t) for n, t in transcripts.items() if not n.startswith("synth_")]
    assert corpus_wer(recorded) <= RECORDED_WER_BOUND, per_clip


def test_streamed_wer_matches_offline_faster_whisper(transcripts: dict[str, str]) -> None:
    """Streaming must not cost accuracy: within 1.10x of offline faster-whisper, same model and decoding."""
    model = offline_model(windowed=False)
    refs = manifest()
    offline = {name: transcribe(model, str(EVAL_DIR / name), **CLIP_OFFLINE_OPTIONS) for name in refs}
    streamed_wer = corpus_wer((refs[n], transcripts[n]) for n in refs)
    offline_wer = corpus_wer((refs[n], offline[n]) for n in refs)
    assert streamed_wer <= 1.10 * offline_wer, (streamed_wer, offline_wer)


@pytest.mark.parametrize("name", ["synth_dialogue_clean.wav", "synth_dialogue_noisy.wav"])
def test_multi_utterance_clip_gives_one_final_per_utterance(server: ServerProcess, name: str) -> None:
    responses = stream_clip(server.address, name, streaming_config(word_timestamps=True, speech_events=True))
    results = finals(responses)
    assert len(results) == 6, [r.text for r in results]
    assert len({r.utterance_id for r in results}) == 6
    previous_end = 0.0
    for result in results:
        assert previous_end <= result.start_s < result.end_s, (previous_end, result)
        assert result.words, "word timestamps were requested"
        starts = [w.start_s for w in result.words]
        assert starts == sorted(starts)
        # Word times are stream times: inside the utterance, not restarted per utterance or chunk.
        assert result.start_s - 0.05 <= result.words[0].start_s and result.words[-1].end_s <= result.end_s + 0.05
        previous_end = result.end_s
    assert previous_end <= len(clip_pcm16(name)) / 32_000 + 0.05
    # Each utterance's events bracket its final.
    kinds = [(r.event.type, r.event.utterance_id) for r in responses if r.WhichOneof("response") == "event"]
    assert kinds.count((pb.SpeechEvent.SPEECH_STARTED, results[0].utterance_id)) == 1
    assert sum(1 for k, _ in kinds if k == pb.SpeechEvent.SPEECH_ENDED) >= 6


def test_partials_precede_final_stable_prefix_only_grows_and_a_revision_is_flagged(server: ServerProcess) -> None:
    # Real-time pace, so partials are due while the speaker talks.
    responses = stream_clip(server.address, "synth_science.wav", streaming_config(interim_results=True), pace=True)
    results = [r.result for r in responses if r.WhichOneof("response") == "result"]
    final_index = next(i for i, r in enumerate(results) if r.is_final)
    partials = results[:final_index]
    assert len(partials) >= 3, "a 9 s utterance streamed in real time gets several partials"
    assert all(p.utterance_id == results[final_index].utterance_id for p in partials)
    final_words = results[final_index].text.split()
    previous_stable: list[str] = []
    for partial in partials:
        stable = partial.stable_text.split()
        assert partial.text.startswith(partial.stable_text)
        assert stable[: len(previous_stable)] == previous_stable, "a stable prefix was taken back"
        assert 0.0 <= partial.stability <= 1.0
        previous_stable = stable
    assert previous_stable, "some words became stable before the end"
    # The final is decoded independently: it keeps the stable words, or says it does not.
    kept = [word_key(w) for w in final_words[: len(previous_stable)]] == [word_key(w) for w in previous_stable]
    revised = pb.ResultQuality.STABLE_TEXT_REVISED in results[final_index].quality.flags
    assert kept != revised, (results[final_index].text, previous_stable)


def test_resampled_mulaw_and_stereo_input(server: ServerProcess) -> None:
    import numpy as np

    from tests.support import g711  # an independent mu-law encoder

    reference = manifest()["jfk.flac"]
    pcm8k = clip_pcm16("jfk.flac", rate=8000)
    mulaw = g711.encode(pcm8k)
    config = streaming_config(rate=8000, encoding=pb.MULAW)
    text = final_text(stream_clip_bytes(server.address, config, mulaw, 800))
    assert wer(reference, text) <= 0.15, text
    mono = np.frombuffer(clip_pcm16("jfk.flac", rate=44100), dtype="<i2")
    stereo = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    text = final_text(
        stream_clip_bytes(server.address, streaming_config(rate=44100, audio_channel_count=2), stereo, 17640)
    )
    assert wer(reference, text) <= 0.10, text


def stream_clip_bytes(
    address: str, config: pb.StreamingConfig, data: bytes, chunk: int
) -> list[pb.StreamingTranscribeResponse]:
    from tests.support import chunked, requests, stream

    return stream(address, requests(config, chunked(data, chunk)))


def test_unary_transcribe_matches_streaming(server: ServerProcess) -> None:
    pcm = clip_pcm16("synth_dialogue_clean.wav")
    with grpc.insecure_channel(server.address) as channel:
        reply = pb_grpc.TranscriberStub(channel).Transcribe(
            pb.TranscribeRequest(config=pb.RecognitionConfig(sample_rate_hz=16000), audio=pcm), timeout=120
        )
    assert len(reply.results) == 6 and all(r.is_final for r in reply.results)
    assert abs(reply.duration_s - len(pcm) / 32000) < 0.01
    assert wer(manifest()["synth_dialogue_clean.wav"], " ".join(r.text for r in reply.results)) <= CLIP_WER_BOUND


def test_health_ready_and_reflection(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "hws.transcriber.v1.Transcriber"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        ready = pb_grpc.TranscriberStub(channel).Ready(pb.ReadyRequest(), timeout=5)
        assert ready.model == "tiny.en-embedded" and ready.device == "cpu"
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            reflection.ServerReflectionInfo(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(file_containing_symbol="hws.transcriber.v1.Transcriber"),
                    ]
                ),
                timeout=5,
            )
        )
    services = {s.name for s in replies[0].list_services_response.service}
    assert {
        "hws.transcriber.v1.Transcriber",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "AudioTranscriberService",  # the original protocol, for existing clients
        "HealthCheckService",
    } <= services
    assert replies[1].file_descriptor_response.file_descriptor_proto, "describe works with no .proto at hand"

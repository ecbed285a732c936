"""Settings changed mid-stream, without reconnecting: each from the next utterance on, a bad update refused.

Real server, real model, real speech: the first 23 s of the synthetic dialogue, three utterances with
about a second of silence between them. An update sent during utterance k leaves k as it was and
changes k+1 on; every check compares with streams that had the one setting or the other throughout,
and first checks that the two differ, so that it can fail.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from hws import client
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import ROOT, ServerProcess, chunked, clip_pcm16, finals, requests, stream, streaming_config

CLIP = "synth_dialogue_clean.wav"
SECONDS = 23  # three utterances: about 0-5.4, 6.4-12.8 and 13.7-22.3 s, the last ending in silence
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16
IN_FIRST = 26  # an update after 2.6 s of audio: in the first utterance
IN_SECOND = 90  # after 9.0 s: in the second
BETWEEN = 60  # after 6.0 s: the first utterance has ended (its endpoint came at 5.6 s), the second not begun


def pcm() -> bytes:
    return clip_pcm16(CLIP)[: SECONDS * 32_000]


def with_updates(
    first: pb.StreamingConfig, updates: Mapping[int, pb.StreamingConfig], speed: float = 0.0
) -> Iterator[pb.StreamingTranscribeRequest]:
    """The clip in 100 ms messages, each update sent after the chunk whose index it is keyed by."""
    yield pb.StreamingTranscribeRequest(config=first)
    for index, chunk in enumerate(chunked(pcm(), CHUNK)):
        yield pb.StreamingTranscribeRequest(audio=chunk)
        if speed:
            time.sleep(0.1 / speed)
        if index + 1 in updates:
            yield pb.StreamingTranscribeRequest(config=updates[index + 1])


def of_kind(responses: list[pb.StreamingTranscribeResponse], kind: str) -> list:
    return [getattr(r, kind) for r in responses if r.WhichOneof("response") == kind]


def readme_example() -> tuple[pb.StreamingConfig, pb.ConfigUpdate]:
    """docs/interface.md's update for grpcurl and the answer it shows, parsed as grpcurl parses JSON."""
    readme = (ROOT / "docs" / "interface.md").read_text()
    blocks = re.findall(r"```json\n(.*?)\n```", readme[readme.index("### Changing settings mid-stream") :], re.S)
    request = json_format.Parse(blocks[0], pb.StreamingTranscribeRequest())
    response = json_format.Parse(blocks[1], pb.StreamingTranscribeResponse())
    return request.config, response.config_update


@pytest.fixture(scope="module")
def plain(server: ServerProcess) -> list[pb.SpeechResult]:
    """The clip's finals under the default settings throughout."""
    results = finals(stream(server.address, requests(streaming_config(), chunked(pcm(), CHUNK))))
    assert len(results) == 3, [r.text for r in results]
    return results


def test_interim_results_and_speech_events_follow_the_update_from_the_next_utterance(
    server: ServerProcess, plain: list[pb.SpeechResult]
) -> None:
    on = streaming_config(interim_results=True, speech_events=True)
    # At twice real time, so that partials are due while the second utterance is spoken.
    responses = stream(
        server.address, with_updates(streaming_config(), {IN_FIRST: on, IN_SECOND: streaming_config()}, speed=2.0)
    )
    first, second, third = (r.utterance_id for r in plain)
    acks = of_kind(responses, "config_update")
    assert [(a.outcome, a.in_progress_utterance_id) for a in acks] == [
        (pb.ConfigUpdate.APPLIED, first),
        (pb.ConfigUpdate.APPLIED, second),
    ], acks
    assert acks[0].received_at_s == pytest.approx(IN_FIRST / 10) and first in acks[0].message
    # Partials, events and finals carry utterance ids: each utterance follows the settings it started with.
    partials = [r.utterance_id for r in of_kind(responses, "result") if not r.is_final]
    assert second in partials, "interim results turned on in the first utterance apply to the second"
    assert first not in partials and third not in partials, partials
    events = [(e.type, e.utterance_id) for e in of_kind(responses, "event")]
    assert events == [(pb.SpeechEvent.SPEECH_STARTED, second), (pb.SpeechEvent.SPEECH_ENDED, second)]
    # Partials never change finals.
    assert [(r.utterance_id, r.text) for r in finals(responses)] == [(r.utterance_id, r.text) for r in plain]


def test_endpoint_and_word_timings_change_at_the_next_utterance(
    server: ServerProcess, plain: list[pb.SpeechResult]
) -> None:
    # The pauses between the utterances are about a second: with a 3 s endpoint the second and third are one.
    update = streaming_config(endpoint_silence_ms=3000, word_timestamps=True, speech_events=True)
    responses = stream(server.address, with_updates(streaming_config(), {IN_FIRST: update}))
    results = finals(responses)
    assert len(results) == 2, [r.text for r in results]
    # The first utterance ended at the old endpoint (with the new one it would have run into the second).
    assert (results[0].utterance_id, results[0].end_s) == (plain[0].utterance_id, plain[0].end_s)
    assert not results[0].words
    merged = results[1]
    assert merged.start_s == plain[1].start_s and merged.end_s > plain[2].start_s, (merged, plain)
    assert merged.words and merged.words[-1].start_s > plain[2].start_s, "one utterance, the words of both"
    events = [(e.type, e.utterance_id) for e in of_kind(responses, "event")]
    ids = merged.utterance_id
    assert events == [(pb.SpeechEvent.SPEECH_STARTED, ids), (pb.SpeechEvent.SPEECH_ENDED, ids)], events


def test_the_forced_cut_changes_at_the_next_utterance(server: ServerProcess, plain: list[pb.SpeechResult]) -> None:
    # The aggressiveness changes with it (applied, not refused); its effect, a few frames at the utterances'
    # edges, is checked on the segmenter itself (test_vad_on_speech_e2e).
    update = streaming_config(max_utterance_s=4.0, vad_aggressiveness=3)
    responses = stream(server.address, with_updates(streaming_config(), {IN_FIRST: update}))
    results = finals(responses)
    assert [a.outcome for a in of_kind(responses, "config_update")] == [pb.ConfigUpdate.APPLIED]
    # The first utterance (5.4 s) was not cut; the later ones (6.4 and 8.6 s) are, into pieces of at most 4 s.
    assert (results[0].utterance_id, results[0].end_s) == (plain[0].utterance_id, plain[0].end_s)
    assert plain[0].end_s - plain[0].start_s > 4.0
    later = [(r.start_s, r.end_s) for r in results[1:]]
    assert len(later) >= 4 and all(end - start <= 4.0 + 1e-6 for start, end in later), later


def test_hot_words_and_prompt_change_the_text_from_the_next_utterance(
    server: ServerProcess, plain: list[pb.SpeechResult]
) -> None:
    hot, answer = readme_example()  # hot words: "finance team"
    prompt = streaming_config(initial_prompt="The finance team")
    throughout = {
        "hot": finals(stream(server.address, requests(hot, chunked(pcm(), CHUNK)))),
        "prompt": finals(stream(server.address, requests(prompt, chunked(pcm(), CHUNK)))),
    }
    texts = {name: [r.text for r in results] for name, results in throughout.items()}
    texts["plain"] = [r.text for r in plain]
    # What makes the test able to fail: the utterances read differently under the settings they are compared
    # across. The first does on some CPUs only (tiny.en int8 on an AMD EPYC reads it the same with the hot
    # words), so the old settings kept for it are checked where it does; the second and third always are.
    assert texts["plain"][1] != texts["hot"][1], texts  # "fire and steam" / "finance team"
    assert texts["hot"][2] != texts["prompt"][2], texts  # the second update replaces the hot words, whole
    # Plain, then hot words from the second utterance, then the prompt alone from the third.
    responses = stream(server.address, with_updates(streaming_config(), {IN_FIRST: hot, IN_SECOND: prompt}))
    assert [r.text for r in finals(responses)] == [texts["plain"][0], texts["hot"][1], texts["prompt"][2]]
    assert of_kind(responses, "config_update")[0] == answer, "docs/interface.md shows what the server answers"


def test_a_bad_update_is_refused_with_the_reason_and_the_stream_goes_on(
    server: ServerProcess, plain: list[pb.SpeechResult]
) -> None:
    bad = [
        (streaming_config(rate=8000), "sample_rate_hz cannot change mid-stream"),
        (streaming_config(encoding=pb.MULAW), "encoding cannot change mid-stream"),
        (streaming_config(audio_channel_count=2), "audio_channel_count cannot change mid-stream"),
        (pb.StreamingConfig(audio_offset_s=5.0), "audio_offset_s cannot change mid-stream"),
        (streaming_config(language="fr"), "English-only"),  # tiny.en
        (streaming_config(language="xx"), "unknown language code"),
        (streaming_config(endpoint_silence_ms=50), "endpoint_silence_ms must be 100-5000"),
        (streaming_config(vad_aggressiveness=4), "vad_aggressiveness must be 0-3"),
        (streaming_config(max_utterance_s=45), "max_utterance_s must be 1-30"),
        (streaming_config(hotwords=["w"] * 51), "the limit is 50"),
        # Valid but for one field: nothing of it applies (no events would show).
        (streaming_config(speech_events=True, endpoint_silence_ms=9000), "endpoint_silence_ms must be 100-5000"),
    ]
    good = streaming_config(speech_events=True, language="en")  # between utterances: applies to the next
    updates = iter([*[config for config, _ in bad], good])
    by_chunk: dict[int, pb.StreamingConfig] = {}
    for index in itertools.chain(range(IN_FIRST, IN_FIRST + 6), range(IN_SECOND - 10, IN_SECOND - 5), [BETWEEN]):
        by_chunk[index] = next(updates)
    responses = stream(server.address, with_updates(streaming_config(), dict(sorted(by_chunk.items()))))
    acks = of_kind(responses, "config_update")
    assert len(acks) == len(bad) + 1
    refused = [a for a in acks if a.outcome == pb.ConfigUpdate.REFUSED]
    assert len(refused) == len(bad)
    for ack, (_, words) in zip(refused, bad, strict=True):
        assert words in ack.message and "nothing of it applied" in ack.message, ack.message
    applied = [a for a in acks if a.outcome == pb.ConfigUpdate.APPLIED]
    assert [a.in_progress_utterance_id for a in applied] == [""], "no utterance was in progress at 6.0 s"
    # The stream went on: every final, as without the updates; the good update applies from the second.
    assert [(r.utterance_id, r.text) for r in finals(responses)] == [(r.utterance_id, r.text) for r in plain]
    events = {e.utterance_id for e in of_kind(responses, "event")}
    assert events == {plain[1].utterance_id, plain[2].utterance_id}


class _FirstConfigs(grpc.StreamStreamClientInterceptor):
    """Records the first request of every stream the client opens: what a resumed stream starts with."""

    def __init__(self) -> None:
        self.seen: list[pb.StreamingConfig] = []

    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[pb.StreamingTranscribeRequest]], Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[pb.StreamingTranscribeRequest],
    ) -> Any:
        def recorded() -> Iterator[pb.StreamingTranscribeRequest]:
            for index, request in enumerate(request_iterator):
                if index == 0:
                    self.seen.append(request.config)
                yield request

        return continuation(client_call_details, recorded())


def test_a_resumed_stream_keeps_the_latest_settings(log_dir: Path, plain: list[pb.SpeechResult]) -> None:
    """The client sends an update among its audio; the server ends the stream at its age limit at the pause
    after the first utterance; the client resumes with the updated settings, not the ones it started with."""
    aged = ServerProcess(args=["--max-stream-age-s", "1.5"]).start(log_dir)
    first_configs = _FirstConfigs()
    update = pb.StreamingConfig(recognition=pb.RecognitionConfig(endpoint_silence_ms=3000), speech_events=True)

    def source() -> Iterator[client.Chunk]:
        # Three times real time: the stream is 1.5 s old (4.5 s of audio) inside the first utterance, which
        # ends at 5.6 s; from the second on, the 3 s endpoint leaves no pause to end it at before the end.
        for index, chunk in enumerate(client.sources._paced(chunked(pcm(), CHUNK), itertools.repeat(0.1 / 3))):
            yield chunk
            if index + 1 == IN_FIRST:
                yield update

    retries: list[grpc.StatusCode] = []
    try:
        responses = list(
            client.stream_resumable(
                lambda attempt: grpc.intercept_channel(client.make_channel(aged.address), first_configs),
                client.AudioSource(source(), 16_000),
                pb.StreamingConfig(),
                backoff_s=0.2,
                timeout_s=120,
                on_retry=lambda exc, attempt, delay: retries.append(exc.code()),
            )
        )
    finally:
        aged.stop()
    assert retries == [grpc.StatusCode.UNAVAILABLE], "the stream was ended at its age and resumed"
    assert len(first_configs.seen) == 2
    resumed = first_configs.seen[1]
    assert resumed.recognition.endpoint_silence_ms == 3000 and resumed.speech_events
    assert resumed.audio_offset_s > 0 and resumed.recognition.sample_rate_hz == 16_000
    acks = of_kind(responses, "config_update")
    assert [a.outcome for a in acks] == [pb.ConfigUpdate.APPLIED], "answered once, not again on the new stream"
    # The server followed them: the second and third utterances are one (3 s endpoint), with events.
    results = finals(responses)
    assert [r.utterance_id for r in results] == [plain[0].utterance_id, plain[1].utterance_id]
    assert results[1].end_s > plain[2].start_s
    assert {e.utterance_id for e in of_kind(responses, "event")} == {plain[1].utterance_id}

"""Cross-stream batching changes nothing but speed: same results, right streams, no final lost under overload."""

from __future__ import annotations

import concurrent.futures

import pytest

from tests.support import ServerProcess, finals, metric_value, stream_clip, streaming_config

CLIPS = ["synth_weather.wav", "jfk.flac", "ls_1221-135766-0001.wav", "synth_dialogue_noisy.wav", "synth_kitchen.wav"]


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    server = ServerProcess(args=["--max-batch-size", "4", "--batch-wait-ms", "100", "--max-streams", "8"])
    server.start(tmp_path_factory.mktemp("batched"))
    yield server
    server.stop()


def concurrently(address: str, clips: list[str], **config: object) -> list[list]:
    with concurrent.futures.ThreadPoolExecutor(len(clips)) as pool:
        return list(pool.map(lambda clip: stream_clip(address, clip, streaming_config(**config)), clips))


def batch_sizes(server: ServerProcess) -> float:
    samples = server.metrics()  # > 0 once a batch had 2+:
    return metric_value(samples, "hws_batch_size_sum") - metric_value(samples, "hws_batch_size_count")


def test_batched_results_equal_unbatched_and_reach_their_own_stream(
    server: ServerProcess, batched: ServerProcess
) -> None:
    # The shared server runs unbatched (CPU default); each clip streamed alone is the reference.
    # Word timestamps on both sides: they move where Whisper resumes after an unfinished segment.
    config = streaming_config(word_timestamps=True)
    alone = {
        clip: [(r.text, r.start_s, r.end_s) for r in finals(stream_clip(server.address, clip, config))]
        for clip in CLIPS
    }
    # Only equal encoder windows share a pass: the clip streamed twice gives one for certain.
    clips = [*CLIPS, CLIPS[1]]
    together = concurrently(batched.address, clips, word_timestamps=True)
    assert batch_sizes(batched) > 0, "the concurrent streams never shared an encoder pass"
    for clip, responses in zip(clips, together, strict=True):
        assert [(r.text, r.start_s, r.end_s) for r in finals(responses)] == alone[clip], clip


def test_finals_never_dropped_under_overload(batched: ServerProcess) -> None:
    # Eight streams with interim results, sent as fast as the server reads: far more work than 2 cores do in
    # real time. Partials thin out; every utterance still gets its final, in order.
    clips = CLIPS + CLIPS[:3]
    expected = {clip: len(finals(stream_clip(batched.address, clip))) for clip in set(clips)}
    results = concurrently(batched.address, clips, interim_results=True)
    for clip, responses in zip(clips, results, strict=True):
        got = finals(responses)
        assert len(got) == expected[clip], clip
        assert [r.utterance_id for r in got] == sorted((r.utterance_id for r in got), key=lambda u: int(u[1:]))
        assert all(r.text for r in got)
    dropped = metric_value(batched.metrics(), "hws_partials_dropped_total")
    assert dropped > 0, "the overload was real: partials were dropped, finals were not"

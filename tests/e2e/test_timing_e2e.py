"""Every result says how long after its audio it was sent and where that time went; /metrics counts the same.

Real speech streamed to a real server of this module's own, so that each test's scrape before and
after its stream sees that stream alone. No figure is held to a time limit: the checks are that every
result carries its timing, that the parts fit inside the latency, and that the per-result fields and
the Prometheus histograms add up to the same sums.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator

import pytest

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.e2e.test_client_cli_e2e import cli
from tests.support import EVAL_DIR, MetricsDelta, ServerProcess, chunked, clip_pcm16, requests, stream, streaming_config

SILENCE_1S = b"\x00\x00" * 16_000
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16
# Sums of float64 observations against sums of the same float64 fields: only rounding may differ.
SUM_TOLERANCE_S = 1e-6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess().start(tmp_path_factory.mktemp("timing-server"))
    yield process
    process.stop()


def results(responses: list[pb.StreamingTranscribeResponse]) -> list[pb.SpeechResult]:
    return [r.result for r in responses if r.WhichOneof("response") == "result"]


def whole_decode_s(timing: pb.ResultTiming) -> float:
    return timing.real_time_factor * timing.decoded_audio_s


def remainder(timing: pb.ResultTiming) -> float:
    return timing.latency_s - timing.endpoint_wait_s - timing.queue_wait_s - timing.decode_s


def test_every_result_is_timed_its_parts_fit_and_the_metrics_agree(server: ServerProcess) -> None:
    # Recorded speech at real-time pace with partials: pauses inside it start finals early (in the pause,
    # on an idle worker), so finals whose decode overlapped the endpoint wait are among these.
    pcm = clip_pcm16("jfk.flac") + SILENCE_1S + clip_pcm16("ls_61-70968-0000.flac") + SILENCE_1S
    before = server.metrics()
    responses = stream(server.address, requests(streaming_config(interim_results=True), chunked(pcm, CHUNK), 0.1))
    delta = MetricsDelta(before, server.metrics())
    got = results(responses)
    finals = [r for r in got if r.is_final]
    partials = [r for r in got if not r.is_final]
    assert len(finals) >= 2 and partials

    for result in got:
        assert result.HasField("timing"), result
        timing = result.timing
        parts = (timing.endpoint_wait_s, timing.queue_wait_s, timing.decode_s)
        assert all(part >= 0.0 for part in parts), timing
        assert sum(parts) <= timing.latency_s + 1e-9, timing  # the parts follow one another inside it
        assert timing.decode_s <= whole_decode_s(timing) + 1e-9, timing
        assert timing.decoded_audio_s > 0.0 and timing.real_time_factor > 0.0, timing
        span = result.end_s - result.start_s
        if result.is_final:
            assert timing.decoded_audio_s >= span - 1e-6, timing  # its audio, and maybe the context before it
        else:
            assert timing.endpoint_wait_s == 0.0, timing
            assert timing.decoded_audio_s <= span + 1e-6, timing  # its audio, or only its tail
    # What is left is making and delivering the result: small next to the latency, though a result whose
    # decode ended before the previous result was sent waits for it (results go out in order; on a loaded
    # machine one such wait took 70 % of a partial's latency, and 7 % of the stream's in all).
    shares = [remainder(r.timing) / r.timing.latency_s for r in got]
    assert statistics.median(shares) < 0.05, shares
    assert sum(remainder(r.timing) for r in got) < 0.25 * sum(r.timing.latency_s for r in got), shares
    assert any(r.timing.endpoint_wait_s > 0.0 for r in finals)

    # The histograms count exactly these results' times.
    assert delta("hws_final_latency_seconds_count") == len(finals)
    assert delta("hws_final_latency_seconds_sum") == pytest.approx(
        sum(r.timing.latency_s - r.timing.endpoint_wait_s for r in finals), abs=SUM_TOLERANCE_S
    )
    assert delta("hws_endpoint_wait_seconds_count") == len(finals)
    assert delta("hws_endpoint_wait_seconds_sum") == pytest.approx(
        sum(r.timing.endpoint_wait_s for r in finals), abs=SUM_TOLERANCE_S
    )
    assert delta("hws_partial_latency_seconds_count") == len(partials)
    assert delta("hws_partial_latency_seconds_sum") == pytest.approx(
        sum(r.timing.latency_s for r in partials), abs=SUM_TOLERANCE_S
    )
    for kind, kind_results in (("final", finals), ("partial", partials)):
        assert delta("hws_queue_wait_seconds_count", kind=kind) == len(kind_results)
        assert delta("hws_queue_wait_seconds_sum", kind=kind) == pytest.approx(
            sum(r.timing.queue_wait_s for r in kind_results), abs=SUM_TOLERANCE_S
        )
        # Every decode is counted, also those whose result was never sent (a partial overtaken by its
        # utterance's end or with no words, a final begun in a pause that speech then resumed): at least these.
        assert delta("hws_decode_seconds_count", kind=kind) >= len(kind_results)
        assert (
            delta("hws_decode_seconds_sum", kind=kind)
            >= sum(whole_decode_s(r.timing) for r in kind_results) - SUM_TOLERANCE_S
        )
        assert (
            delta("hws_decoded_audio_seconds_total", kind=kind)
            >= sum(r.timing.decoded_audio_s for r in kind_results) - SUM_TOLERANCE_S
        )


def test_decode_time_and_audio_agree_with_the_metrics_decode_for_decode(server: ServerProcess) -> None:
    # Finals only, and an endpoint as short as the VAD's kept pad: a pause reaches the endpoint the moment
    # it could start a final early, so no decode is begun and dropped, and each decode is one result's.
    pcm = clip_pcm16("synth_weather.wav") + SILENCE_1S + clip_pcm16("synth_meeting.wav") + SILENCE_1S
    before = server.metrics()
    responses = stream(server.address, requests(streaming_config(endpoint_silence_ms=300), chunked(pcm, CHUNK)))
    delta = MetricsDelta(before, server.metrics())
    finals = [r for r in results(responses) if r.is_final]
    assert len(finals) >= 2 and all(r.text for r in finals)
    assert delta("hws_speculative_finals_total", outcome="used") == 0
    assert delta("hws_speculative_finals_total", outcome="wasted") == 0
    assert delta("hws_utterances_total", outcome="empty") == 0

    assert delta("hws_decode_seconds_count", kind="final") == len(finals)
    assert delta("hws_decode_seconds_sum", kind="final") == pytest.approx(
        sum(whole_decode_s(r.timing) for r in finals), abs=SUM_TOLERANCE_S
    )
    assert delta("hws_decoded_audio_seconds_total", kind="final") == pytest.approx(
        sum(r.timing.decoded_audio_s for r in finals), abs=SUM_TOLERANCE_S
    )
    # Nothing started before its endpoint: each final's decode is all in its latency.
    for result in finals:
        assert result.timing.decode_s == pytest.approx(whole_decode_s(result.timing), abs=1e-9)
        assert sum((result.timing.endpoint_wait_s, result.timing.queue_wait_s, result.timing.decode_s)) <= (
            result.timing.latency_s + 1e-9
        )


def test_client_shows_the_timing_in_verbose_lines_and_jsonl(server: ServerProcess) -> None:
    reply = cli(str(EVAL_DIR / "jfk.flac"), "--addr", server.address, "--fast", "--format", "jsonl", "--verbose")
    assert reply.returncode == 0, reply.stderr
    lines = [json.loads(line) for line in reply.stdout.splitlines()]
    fields = {field.name for field in pb.ResultTiming.DESCRIPTOR.fields}
    assert len(lines) >= 2 and all(set(line["timing"]) == fields for line in lines)  # zeros included
    # The transcript goes to stdout, so the verbose lines go to stderr: each final, then its timing.
    shown = [line for line in reply.stderr.splitlines() if line.startswith("    timing: ")]
    assert len(shown) == len(lines)
    for line, text in zip(lines, shown, strict=True):
        timing = line["timing"]
        assert text.startswith(f"    timing: {timing['latency_s']:.2f} s after its audio = ")
        assert f"endpoint {timing['endpoint_wait_s']:.2f} + queue {timing['queue_wait_s']:.2f}" in text
        assert f"decode {timing['decode_s']:.2f}" in text
        assert f"RTF {timing['real_time_factor']:.3f} on {timing['decoded_audio_s']:.2f} s of audio" in text

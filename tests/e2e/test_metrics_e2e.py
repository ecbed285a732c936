"""The gRPC metrics follow go-grpc-prometheus exactly, and the service metrics move with real traffic."""

from __future__ import annotations

from tests.support import (
    STREAMING_CALL_LABELS,
    MetricsDelta,
    ServerProcess,
    chunked,
    clip_pcm16,
    finals,
    metric_value,
    requests,
    stream,
    streaming_config,
)

STREAM = STREAMING_CALL_LABELS


def test_stream_counted_like_go_grpc_prometheus(live_server: ServerProcess) -> None:
    before = live_server.metrics()
    pcm = clip_pcm16("synth_weather.wav")
    chunks = chunked(pcm, 3200)
    responses = stream(live_server.address, requests(streaming_config(speech_events=True), chunks))
    after = live_server.metrics()
    delta = MetricsDelta(before, after)

    assert delta("grpc_server_started_total", **STREAM) == 1
    assert delta("grpc_server_handled_total", **STREAM, grpc_code="OK") == 1
    assert delta("grpc_server_msg_received_total", **STREAM) == len(chunks) + 1  # config + audio
    assert delta("grpc_server_msg_sent_total", **STREAM) == len(responses)
    assert delta("grpc_server_handling_seconds_count", **STREAM) == 1
    assert abs(delta("hws_audio_received_seconds_total") - len(pcm) / 32000) < 0.01
    assert delta("hws_utterances_total", outcome="transcribed") == 1
    assert delta("hws_final_latency_seconds_count") == 1
    assert delta("hws_decode_seconds_count", kind="final") == 1
    assert metric_value(after, "hws_ready") == 1
    assert metric_value(after, "hws_active_streams") == 0
    assert metric_value(after, "hws_model_load_seconds") > 0
    assert any(name == "hws_build_info" and dict(labels).get("model") == "tiny.en-embedded" for name, labels in after)


def test_failed_stream_counted_with_its_code(live_server: ServerProcess) -> None:
    import grpc
    import pytest

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    before = live_server.metrics()
    with pytest.raises(grpc.RpcError):
        stream(live_server.address, [pb.StreamingTranscribeRequest(audio=b"\x00\x00")])
    delta = MetricsDelta(before, live_server.metrics())
    assert delta("grpc_server_handled_total", **STREAM, grpc_code="INVALID_ARGUMENT") == 1


def test_a_pause_that_becomes_the_endpoint_has_its_final_under_way(live_server: ServerProcess) -> None:
    before = live_server.metrics()
    silence = b"\x00\x00" * 16000
    pcm = clip_pcm16("synth_weather.wav") + silence + clip_pcm16("synth_meeting.wav") + silence
    responses = stream(live_server.address, requests(streaming_config(), chunked(pcm, 3200)))
    delta = MetricsDelta(before, live_server.metrics())

    results = finals(responses)
    assert len(results) == 2 and all(r.text for r in results)
    used, wasted = (
        delta("hws_speculative_finals_total", outcome="used"),
        delta("hws_speculative_finals_total", outcome="wasted"),
    )
    assert used >= 1  # the server was idle at each pause
    # A used early decode is the final's only decode; a wasted one is a decode more.
    assert delta("hws_decode_seconds_count", kind="final") == 2 + wasted

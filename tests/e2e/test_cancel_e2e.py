"""Clients that cancel mid-stream, with their partials and finals in every state: nothing of them stays.

A cancel while a partial waited in the decode queue used to raise in the scheduler's clean-up, end the call
UNKNOWN with a traceback and leave the stream in the scheduler's accounts, where it kept workers from the
streams that came after it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from tests.support import (
    STREAMING_CALL_LABELS,
    MetricsDelta,
    ServerProcess,
    chunked,
    clip_pcm16,
    final_text,
    metric_value,
    requests,
    stream,
    streaming_config,
)

STREAM = STREAMING_CALL_LABELS
CLIENTS = 12


def _cancel_after(address: str, pcm: bytes, responses: int, seconds: float) -> None:
    """Stream `pcm` fast with partials and cancel after `responses` responses or `seconds`, whichever first."""
    config = streaming_config(interim_results=True, word_timestamps=True)
    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(
            requests(config, chunked(pcm, 3200), pace_s=0.01), timeout=60
        )
        timer = threading.Timer(seconds, call.cancel)
        timer.start()
        try:
            for count, _ in enumerate(call, 1):
                if count >= responses:
                    call.cancel()
                    break
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.CANCELLED, exc
        finally:
            timer.cancel()


def _poll(condition: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_client_cancels_in_every_state_leave_no_trace_and_no_error(log_dir: Path) -> None:
    pcm = clip_pcm16("synth_dialogue_clean.wav")
    with ServerProcess(args=["--max-streams", "16"]).start(log_dir) as server:
        before = server.metrics()
        # Cancel points spread from the first partial to finals in flight; 12 streams keep both workers
        # busy, so partials wait in the queue, run and finish around the cancels.
        threads = [
            threading.Thread(target=_cancel_after, args=(server.address, pcm, 1 + 2 * i, 0.3 + 0.35 * i))
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)

        def settled() -> bool:
            samples = server.metrics()
            return (
                metric_value(samples, "hws_active_streams") == 0 and metric_value(samples, "hws_scheduler_streams") == 0
            )

        assert _poll(settled), server.hws_series()
        delta = MetricsDelta(before, server.metrics())
        assert delta("grpc_server_handled_total", **STREAM, grpc_code="CANCELLED") == CLIENTS
        assert delta("grpc_server_handled_total", **STREAM, grpc_code="UNKNOWN") == 0
        assert server.log_problems() == []
        assert "never retrieved" not in server.log() and "Traceback" not in server.log()

        # The server is whole: a stream after them is transcribed in full.
        text = final_text(stream(server.address, requests(streaming_config(), chunked(pcm, 3200))))
        assert len(text.split()) > 20

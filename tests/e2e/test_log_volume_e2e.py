"""A client cannot fill the server's log: config updates past a count are summed up in one line per stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.stream.session import LOGGED_UPDATES
from tests.support import ServerProcess, chunked, clip_pcm16, stream, streaming_config

UPDATES = 300


def test_a_flood_of_config_updates_logs_a_bounded_number_of_lines(log_dir: Path) -> None:
    def flood() -> Iterator[pb.StreamingTranscribeRequest]:
        yield pb.StreamingTranscribeRequest(config=streaming_config())
        for index, chunk in enumerate(chunked(clip_pcm16("jfk.flac")[: 3 * 32_000], 1600)):
            yield pb.StreamingTranscribeRequest(audio=chunk)
            for _ in range(UPDATES // 60):
                yield pb.StreamingTranscribeRequest(config=streaming_config(interim_results=index % 2 == 0))

    with ServerProcess().start(log_dir) as server:
        responses = stream(server.address, flood())
        server.stop()
        lines = [json.loads(line) for line in server.log().splitlines()]
    assert sum(r.WhichOneof("response") == "config_update" for r in responses) == UPDATES  # every update answered
    events = [line["event"] for line in lines]
    assert events.count("config_updated") == LOGGED_UPDATES
    (summary,) = [line for line in lines if line["event"] == "config_updates_summary"]
    assert summary["updates"] == UPDATES and summary["not_logged"] == UPDATES - LOGGED_UPDATES
    assert len(lines) < LOGGED_UPDATES + 40  # start-up, the stream's own lines, the summary: no line per update

"""Sustained load: concurrent real-time streams for minutes, every final delivered in order, memory flat."""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
from pathlib import Path

from hws.audio import TARGET_RATE
from tests.support import (
    ServerProcess,
    chunked,
    clip_pcm16,
    expected_utterances,  # the server's own segmenter, run here
    finals,
    manifest,
    requests,
    stream,
    streaming_config,
)

STREAMS = 3  # what 2 cores sustain in real time with partials on (scripts/bench.py capacity)
AUDIO_S = 100.0
CLIPS = sorted(manifest())


def long_audio(index: int) -> bytes:
    """Minutes of speech: the eval clips in a rotated order, a second of silence between them."""
    pieces, total = [], 0
    order = CLIPS[index:] + CLIPS[:index]
    while total < AUDIO_S * 32000:
        for clip in order:
            pieces += [clip_pcm16(clip), b"\x00\x00" * TARGET_RATE]
            total += len(pieces[-2]) + len(pieces[-1])
    return b"".join(pieces)[: int(AUDIO_S * 32000)]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_concurrent_real_time_streams_for_minutes(log_dir: Path) -> None:
    server = ServerProcess(args=["--max-streams", str(STREAMS)]).start(log_dir)
    assert server.process is not None
    try:
        stream(server.address, requests(streaming_config(), chunked(clip_pcm16("jfk.flac"), 3200)))  # warm up
        audio = [long_audio(i) for i in range(STREAMS)]
        rss: list[int] = []
        sampling = threading.Event()

        def sample_memory() -> None:
            while not sampling.wait(5.0):
                rss.append(rss_bytes(server.process.pid))

        sampler = threading.Thread(target=sample_memory)
        sampler.start()
        config = streaming_config(interim_results=True)
        with concurrent.futures.ThreadPoolExecutor(STREAMS) as pool:
            runs = list(
                pool.map(lambda pcm: stream(server.address, requests(config, chunked(pcm, 3200), 0.1), 600), audio)
            )
        sampling.set()
        sampler.join()

        for pcm, responses in zip(audio, runs, strict=True):
            got = [r.utterance_id for r in finals(responses)]
            assert got == expected_utterances(pcm), "every utterance gets exactly one final, in order"
            starts = [r.start_s for r in finals(responses)]
            assert starts == sorted(starts)
            partials = [r for r in responses if r.WhichOneof("response") == "result" and not r.result.is_final]
            assert partials, "partials kept coming under load"
        # Memory flat: RSS swings by up to a hundred MB as decode buffers come and go (two workers can hold
        # two 30 s windows at once), so compare the medians of equal stretches of the same workload: a
        # leak raises the later one's floor.
        third = len(rss) // 3
        middle, last = statistics.median(rss[third : 2 * third]), statistics.median(rss[2 * third :])
        print("rss MiB:", [r // 2**20 for r in rss])
        assert last - middle < 40 * 2**20, [r // 2**20 for r in rss]
    finally:
        server.stop()

#!/usr/bin/env python3
"""The finals of the joined real stream, from a server already running: to compare builds word for word.

The 92 recordings of ../shared/eval/real joined with 1.5 s pauses (as bench.py's continuous stream),
streamed at SPEED times real time with partials off, so that a change meant to keep behaviour can be
checked in minutes rather than a benchmark's 40: two servers that decode alike give the same finals.
Prints the corpus errors and writes every final's text, in order, to OUT (JSON).

Run: .venv/bin/python scripts/finals_check.py ADDRESS OUT.json [--speed 8] [--recordings N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import corpus_errors, join_recordings, real_manifest, to_pcm16  # noqa: E402

CHUNK_BYTES = 3200  # 100 ms of 16 kHz LINEAR16


async def stream_finals(address: str, pcm: bytes, speed: float) -> list[str]:
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    async def requests() -> AsyncIterator[pb.StreamingTranscribeRequest]:
        recognition = pb.RecognitionConfig(encoding=pb.LINEAR16, sample_rate_hz=16_000, word_timestamps=True)
        yield pb.StreamingTranscribeRequest(config=pb.StreamingConfig(recognition=recognition))
        for i in range(0, len(pcm), CHUNK_BYTES):
            yield pb.StreamingTranscribeRequest(audio=pcm[i : i + CHUNK_BYTES])
            await asyncio.sleep(0.1 / speed)

    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(requests(), timeout=3600)
        return [r.result.text async for r in call if r.HasField("result") and r.result.is_final]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="host:port of a running server")
    parser.add_argument("out", type=Path)
    parser.add_argument("--speed", type=float, default=8.0, help="times real time (default 8)")
    parser.add_argument("--recordings", type=int, default=0, help="only the N shortest recordings (0: all)")
    args = parser.parse_args(argv)
    joined = join_recordings([row["file"] for row in real_manifest(args.recordings)], 1.5)
    pcm = to_pcm16(joined.audio) + bytes(2 * 2 * 16_000)  # 2 s of silence ends the last utterance
    finals = asyncio.run(stream_finals(args.address, pcm, args.speed))
    print(corpus_errors([(joined.reference, " ".join(finals))]).figures())
    args.out.write_text(json.dumps(finals, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402
    chunked,
    corpus_errors,
    finals,
    join_recordings,
    real_manifest,
    requests,
    stream,
    streaming_config,
    to_pcm16,
)

CHUNK_BYTES = 3200  # 100 ms of 16 kHz LINEAR16


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="host:port of a running server")
    parser.add_argument("out", type=Path)
    parser.add_argument("--speed", type=float, default=8.0, help="times real time (default 8)")
    parser.add_argument("--recordings", type=int, default=0, help="only the N shortest recordings (0: all)")
    args = parser.parse_args(argv)
    joined = join_recordings([row["file"] for row in real_manifest(args.recordings)], 1.5)
    pcm = to_pcm16(joined.audio) + bytes(2 * 2 * 16_000)  # 2 s of silence ends the last utterance
    paced = requests(streaming_config(word_timestamps=True), chunked(pcm, CHUNK_BYTES), 0.1 / args.speed)
    texts = [result.text for result in finals(stream(args.address, paced, timeout=3600))]
    print(corpus_errors([(joined.reference, " ".join(texts))]).figures())
    args.out.write_text(json.dumps(texts, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

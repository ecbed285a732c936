"""Transcript writers for the client: txt, srt, vtt and jsonl, one final result at a time."""

from __future__ import annotations

import json
from typing import TextIO

from google.protobuf.json_format import MessageToDict

from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb

FORMATS = ("txt", "srt", "vtt", "jsonl")


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


class TranscriptWriter:
    """Writes final results as they arrive, so a partial file is valid if the stream breaks."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.out = out
        self.fmt = fmt
        self.count = 0
        if fmt == "vtt":
            out.write("WEBVTT\n\n")

    def write(self, result: pb.SpeechResult) -> None:
        if not result.is_final or not result.text:
            return
        self.count += 1
        if self.fmt == "txt":
            self.out.write(result.text + "\n")
        elif self.fmt == "jsonl":
            self.out.write(json.dumps(MessageToDict(result, preserving_proto_field_name=True)) + "\n")
        else:
            separator = "," if self.fmt == "srt" else "."
            span = f"{_timestamp(result.start_s, separator)} --> {_timestamp(result.end_s, separator)}"
            prefix = f"{self.count}\n" if self.fmt == "srt" else ""
            self.out.write(f"{prefix}{span}\n{result.text}\n\n")
        self.out.flush()

"""Transcript writers for the client: txt, srt, vtt and jsonl, one final result at a time.

jsonl lines carry every field of the SpeechResult, zeros included. Subtitle cues follow the usual
conventions: at most `lines` lines of `line_chars` characters (42 x 2 by default, balanced) and
`max_s` seconds (7 by default), cut between words at the word timings (the client asks for them
when it writes srt or vtt); without word timings an utterance's time is shared out by characters.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import TextIO

from google.protobuf.json_format import MessageToDict

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

FORMATS = ("txt", "srt", "vtt", "jsonl")


@dataclasses.dataclass(frozen=True)
class CueRules:
    line_chars: int = 42
    lines: int = 2
    max_s: float = 7.0


@dataclasses.dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # lines joined with "\n"


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _wrapped(text: str, rules: CueRules) -> list[str] | None:
    """The text in as few lines as it fits in (at most `rules.lines`), as even as they can be; None if it does not."""
    for count in range(1, rules.lines + 1):
        for width in range(max(1, -(-len(text) // count)), rules.line_chars + 1):
            lines = textwrap.wrap(text, width, break_long_words=False)
            if len(lines) <= count and all(len(line) <= rules.line_chars for line in lines):
                return lines
    return None


def _timed_words(result: pb.SpeechResult) -> list[tuple[float, float, str]]:
    words = [(w.start_s, w.end_s, w.word.strip()) for w in result.words if w.word.strip()]
    if words:
        return words
    # No word timings: share the utterance's time out by characters.
    texts = result.text.split()
    total = sum(len(t) + 1 for t in texts) or 1
    span = result.end_s - result.start_s
    timed, done = [], 0
    for text in texts:
        start = result.start_s + span * done / total
        done += len(text) + 1
        timed.append((start, result.start_s + span * done / total, text))
    return timed


def cues(result: pb.SpeechResult, rules: CueRules) -> list[Cue]:
    """A final result cut into subtitle cues between words."""
    groups: list[list[tuple[float, float, str]]] = []
    for word in _timed_words(result):
        if groups:
            candidate = [*groups[-1], word]
            text = " ".join(w[2] for w in candidate)
            if _wrapped(text, rules) is not None and candidate[-1][1] - candidate[0][0] <= rules.max_s:
                groups[-1] = candidate
                continue
        groups.append([word])
    out = []
    for group in groups:
        text = " ".join(w[2] for w in group)
        lines = _wrapped(text, rules) or [text]  # one word longer than a line stays whole
        out.append(Cue(group[0][0], max(group[-1][1], group[0][0] + 0.1), "\n".join(lines)))
    return out


class TranscriptWriter:
    """Writes final results as they arrive, so a partial file is valid if the stream breaks."""

    def __init__(self, out: TextIO, fmt: str, rules: CueRules | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.out = out
        self.fmt = fmt
        self.rules = rules or CueRules()
        self.count = 0  # finals written
        self.cues = 0
        if fmt == "vtt":
            out.write("WEBVTT\n\n")

    def write(self, result: pb.SpeechResult) -> None:
        if not result.is_final or not result.text:
            return
        self.count += 1
        if self.fmt == "txt":
            self.out.write(result.text.strip() + "\n")
        elif self.fmt == "jsonl":
            fields = MessageToDict(result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            self.out.write(json.dumps(fields) + "\n")
        else:
            separator = "," if self.fmt == "srt" else "."
            for cue in cues(result, self.rules):
                self.cues += 1
                number = f"{self.cues}\n" if self.fmt == "srt" else ""
                span = f"{_timestamp(cue.start_s, separator)} --> {_timestamp(cue.end_s, separator)}"
                self.out.write(f"{number}{span}\n{cue.text}\n\n")
        self.out.flush()

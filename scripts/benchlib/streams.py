"""One client stream against the server under test, paced in real time, every response recorded; the
figures of a set of streams; the clips and playlists the benchmarks stream."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from scripts.benchlib.stats import summary
from tests.support import RATE, ServerProcess, clip_pcm16

CHUNK_MS = 100
DEFAULT_CLIPS = [
    "synth_dialogue_clean.wav",
    "jfk.flac",
    "ls_1221-135766-0001.wav",
    "ls_1272-141231-0002.flac",
    "ls_1089-134686-0000.flac",
    "synth_science.wav",
    "synth_support.wav",
]
TAIL_SILENCE_S = 1.5  # sent after each clip so the endpoint (not the end of stream) closes the last utterance
GAP_SILENCE_S = 1.0  # between clips in a capacity client's playlist


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(seconds * RATE)


@dataclasses.dataclass
class StreamRecord:
    """What one client saw; times are time.monotonic() of this process."""

    send_times: list[float] = dataclasses.field(default_factory=list)  # per chunk, when it was written
    max_slip_s: float = 0.0  # worst lateness against the real-time schedule
    finals: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    partials: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    started: dict[str, float] = dataclasses.field(default_factory=dict)  # utterance id -> SPEECH_STARTED time_s
    half_closed_at: float = 0.0
    ended_at: float = 0.0
    error: str | None = None

    def send_time_of(self, stream_s: float) -> float:
        """Wall time at which the client sent the audio sample just before stream time `stream_s`."""
        index = math.ceil(stream_s * 1000 / CHUNK_MS - 1e-6) - 1
        return self.send_times[max(0, min(index, len(self.send_times) - 1))]

    def final_latencies(self) -> list[float]:
        return [f["arrival"] - self.send_time_of(f["end_s"]) for f in self.finals]

    def partial_gaps(self) -> list[float]:
        """Time between consecutive partials of one utterance."""
        by_utterance: dict[str, list[float]] = {}
        for p in self.partials:
            by_utterance.setdefault(p["utterance_id"], []).append(p["arrival"])
        return [b - a for times in by_utterance.values() for a, b in itertools.pairwise(times)]

    def first_partial_delays(self) -> list[float]:
        """From the send time of the utterance start (SPEECH_STARTED, else start_s) to its first partial."""
        first: dict[str, dict[str, Any]] = {}
        for p in self.partials:
            first.setdefault(p["utterance_id"], p)
        return [p["arrival"] - self.send_time_of(self.started.get(uid, p["start_s"])) for uid, p in first.items()]

    def text(self) -> str:
        return " ".join(f["text"] for f in self.finals if f["text"])

    def stable_text_revisions(self) -> tuple[int, int]:
        """(finals that did not keep their partials' last stable text, finals whose partials had one)."""
        stable: dict[str, str] = {}
        for p in self.partials:
            if p["stable_text"]:
                stable[p["utterance_id"]] = p["stable_text"]
        keys = [(f, stable[f["utterance_id"]]) for f in self.finals if f["utterance_id"] in stable]
        from hws.stream.stabilizer import revises  # the server's own rule (standard library only)

        revised = [f for f, said in keys if revises(f["text"], said)]
        return len(revised), len(keys)

    def drain_s(self) -> float:
        return self.ended_at - self.half_closed_at


async def run_stream(
    address: str,
    audio: bytes,
    interim: bool,
    start_delay_s: float = 0.0,
    timeout_s: float = 600.0,
    word_timestamps: bool = False,
) -> StreamRecord:
    """Stream LINEAR16 audio in CHUNK_MS chunks paced against the monotonic clock; record every response."""
    import grpc

    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
    from hws.gen.hws.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

    record = StreamRecord()
    step = RATE * CHUNK_MS // 1000 * 2
    chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
    config = pb.StreamingConfig(
        recognition=pb.RecognitionConfig(
            sample_rate_hz=RATE, encoding=pb.LINEAR16, audio_channel_count=1, word_timestamps=word_timestamps
        ),
        interim_results=interim,
        speech_events=True,
    )
    await asyncio.sleep(start_delay_s)
    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.TranscriberStub(channel).StreamingTranscribe(timeout=timeout_s)

        async def write() -> None:
            await call.write(pb.StreamingTranscribeRequest(config=config))
            start = time.monotonic()
            for i, chunk in enumerate(chunks):
                target = start + i * CHUNK_MS / 1000
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                record.max_slip_s = max(record.max_slip_s, now - target)
                record.send_times.append(now)
                await call.write(pb.StreamingTranscribeRequest(audio=chunk))
            await call.done_writing()
            record.half_closed_at = time.monotonic()

        async def read() -> None:
            while (response := await call.read()) is not grpc.aio.EOF:
                now = time.monotonic()
                kind = response.WhichOneof("response")
                if kind == "event" and response.event.type == pb.SpeechEvent.SPEECH_STARTED:
                    record.started[response.event.utterance_id] = response.event.time_s
                if kind != "result":
                    continue  # other events, bare progress responses (final_offset_s only)
                result = response.result
                item = {
                    "utterance_id": result.utterance_id,
                    "text": result.text,
                    "start_s": result.start_s,
                    "end_s": result.end_s,
                    "arrival": now,
                    "stable_text": result.stable_text,
                    "words": [(w.start_s, w.end_s) for w in result.words],
                    "flags": [pb.ResultQuality.Flag.Name(f) for f in result.quality.flags],
                    "language": result.language,
                }
                (record.finals if result.is_final else record.partials).append(item)

        try:
            await asyncio.gather(write(), read())
        except grpc.RpcError as exc:
            record.error = f"{exc.code().name}: {exc.details()}"
            call.cancel()
        record.ended_at = time.monotonic()
    return record


def stream_figures(records: Sequence[StreamRecord]) -> dict[str, Any]:
    latencies = [x for r in records for x in r.final_latencies()]
    return {
        "final_latency_s": summary(latencies),
        "partial_gap_s": summary([x for r in records for x in r.partial_gaps()]),
        "first_partial_s": summary([x for r in records for x in r.first_partial_delays()]),
        "finals": sum(len(r.finals) for r in records),
        "partials": sum(len(r.partials) for r in records),
        "max_send_slip_s": round(max((r.max_slip_s for r in records), default=0.0), 3),
        "max_drain_s": round(max((r.drain_s() for r in records), default=0.0), 3),
        "errors": [r.error for r in records if r.error],
        "final_languages": dict(collections.Counter(f["language"] for r in records for f in r.finals)),
    }


def warm_up(server: ServerProcess) -> None:
    """One unpaced stream so the first measured one does not pay for lazy initialisation."""
    audio = clip_pcm16("jfk.flac")
    asyncio.run(run_stream(server.address, audio, interim=True))


def playlist(clips: Sequence[str], client: int, seconds: float) -> tuple[bytes, list[str]]:
    """A client's audio: eval clips rotated by client index, with gaps, until at least `seconds` long."""
    return rotation({name: clip_pcm16(name) for name in clips}, client, seconds)


def rotation(pcms: Mapping[str, bytes], client: int, seconds: float) -> tuple[bytes, list[str]]:
    """LINEAR16 recordings (by name, in order) rotated by client index, with gaps, until at least `seconds`
    long, then the tail silence; and the names played."""
    names = list(pcms)
    audio, played, i = b"", [], client
    while len(audio) / 2 / RATE < seconds:
        name = names[i % len(names)]
        audio += pcms[name] + silence(GAP_SILENCE_S)
        played.append(name)
        i += 1
    return audio + silence(TAIL_SILENCE_S - GAP_SILENCE_S), played

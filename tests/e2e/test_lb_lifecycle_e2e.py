"""A deploy behind a real L7 load balancer loses nothing: HAProxy stands in for the AWS ALB.

HAProxy (`mode http`, h2c on both sides, as the ALB speaks gRPC to its targets) balances real-time
streams over two server processes. A deploy is played the way ECS plays it behind the ALB:
deregister one server (HAProxy's runtime API: `state drain`, no new streams, open ones go on), wait
out the deregistration delay, cut what is still open on it (`shutdown sessions`, what the ALB does
when the delay ends), then SIGTERM it. The clients use `hws.client.stream_resumable` through the
balancer's one address, as a client of the ALB does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from hws import client
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import (
    JoinedSpeech,
    ServerProcess,
    chunked,
    clip_pcm16,
    finals,
    free_port,
    join_recordings,
    manifest,
    repeated_runs,
    to_pcm16,
    wer,
)

HAPROXY = shutil.which("haproxy")
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy not installed: scripts/infra_tools.sh installs the Debian package"
)

AGE_S = 5.0  # --max-stream-age-s: short, so that every stream here lives through several
OVERRUN_S = 6.0  # longer than any recording below, so only a speaker who never pauses reaches it
# The deregistration delay played here: the age, its overrun and a margin for the last final's decode.
DELAY_S = AGE_S + OVERRUN_S + 4.0
# Real recordings of 3.3-4.4 s joined with pauses: each stream is about 20 s of real-time speech, longer
# than the delay, so without the age limit the streams would still be open when it ends.
PLAYLISTS = [
    [
        "arctic_aew_a0003.wav",
        "voices_src_sp0307-ch127535-sg0042.wav",
        "wsj8k_n800_440c0206.wav",
        "wsj8k_n800_440c0208.wav",
    ],
    ["arctic_aew_a0001.wav", "ps_forever_input_2_16k.wav", "arctic_axb_a0006.wav", "mfa_vq_mfa_thoughts.flac"],
    ["wsj8k_n800_440c0203.wav", "arctic_aew_a0002.wav", "ps_cards_005.wav", "wsj8k_n800_440c0205.wav"],
]
# A speaker who never pauses long enough to end an utterance (for this stream's endpoint): 17 s.
UNBROKEN = ["jfk.flac", "synth_weather.wav"]


class Balancer:
    """HAProxy in front of two servers, with its runtime API on a Unix socket."""

    def __init__(self, backends: list[ServerProcess], log_dir: Path) -> None:
        self.port = free_port()
        self.socket = log_dir / "haproxy.sock"
        servers = "\n".join(f"    server s{i} {b.address} proto h2" for i, b in enumerate(backends, 1))
        config = log_dir / "haproxy.cfg"
        config.write_text(
            f"""global
    stats socket {self.socket} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{self.port} proto h2
    default_backend be
backend be
    balance roundrobin
{servers}
"""
        )
        assert HAPROXY is not None
        self.log = log_dir / "haproxy.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self.socket.exists() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.socket.exists(), self.log.read_text()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(command.encode() + b"\n")
            reply = b""
            while data := sock.recv(65536):
                reply += data
        return reply.decode()

    def open_streams(self, server: str) -> int:
        """Streams HAProxy carries to `server` now (its scur)."""
        rows = csv.DictReader(io.StringIO(self.admin("show stat").lstrip("# ")))
        return next(int(row["scur"]) for row in rows if row["pxname"] == "be" and row["svname"] == server)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@dataclass
class Client:
    """One real-time stream through the balancer, resumed by the client library."""

    address: str
    pcm: bytes
    config: pb.StreamingConfig = field(default_factory=lambda: pb.StreamingConfig(recognition=pb.RecognitionConfig()))
    responses: list[pb.StreamingTranscribeResponse] = field(default_factory=list)
    retries: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Client:
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        return self

    def _run(self) -> None:
        chunks = chunked(self.pcm, 3200)
        source = client.AudioSource(client.sources._paced(chunks, (0.1 for _ in chunks)), 16_000)
        try:
            for response in client.stream_resumable(
                lambda connection: client.make_channel(self.address),
                source,
                self.config,
                attempts=3,
                backoff_s=0.2,
                timeout_s=120,
                on_retry=lambda exc, n, delay: self.retries.append((exc.code(), exc.details())),
            ):
                self.responses.append(response)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(120)
        assert not self.thread.is_alive(), "a stream did not end"
        assert self.error is None, self.error


@contextlib.contextmanager
def deployment(log_dir: Path, server_args: list[str]) -> Iterator[tuple[list[ServerProcess], Balancer]]:
    servers = [ServerProcess(args=server_args).start(log_dir, wait=False) for _ in range(2)]
    balancer = None
    try:
        for server in servers:
            server.wait_serving()
        balancer = Balancer(servers, log_dir)
        yield servers, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop()


def check_in_order(responses: list[pb.StreamingTranscribeResponse]) -> list[pb.SpeechResult]:
    """The finals, checked: the final offset never moves back, no utterance twice, no two overlapping."""
    offsets = [r.final_offset_s for r in responses]
    assert offsets == sorted(offsets), "the final offset moved back"
    results = finals(responses)
    ids = [r.utterance_id for r in results]
    assert len(ids) == len(set(ids)), f"an utterance was transcribed twice: {ids}"
    for previous, current in itertools.pairwise(results):
        assert previous.end_s <= current.start_s + 1e-6, f"finals overlap: {previous.text!r}, {current.text!r}"
    return results


def check_every_utterance_once(responses: list[pb.StreamingTranscribeResponse], speech: JoinedSpeech) -> None:
    """Each recording's words came once, in order: no final lost, none repeated, none overlapping another."""
    results = check_in_order(responses)
    for (start, end), reference in zip(speech.spans, speech.references, strict=True):
        heard = " ".join(r.text for r in results if start - 0.7 <= (r.start_s + r.end_s) / 2 <= end + 0.7)
        assert wer(reference, heard) <= 0.35, (reference, heard)
    text = " ".join(r.text for r in results)
    assert not repeated_runs([text], speech.reference), text
    assert wer(speech.reference, text) <= 0.3, (speech.reference, text)


def test_a_deploy_with_the_stream_age_limit_cuts_no_stream(log_dir: Path) -> None:
    args = ["--max-stream-age-s", str(AGE_S), "--max-stream-age-overrun-s", str(OVERRUN_S), "--grace-period-s", "10"]
    speech = [join_recordings(names) for names in PLAYLISTS]
    with deployment(log_dir, args) as (servers, balancer):
        first = servers[0]
        started = time.monotonic()
        clients = [Client(balancer.address, to_pcm16(s.audio)).start() for s in speech]
        # The overrun ends this one mid-speech.
        unbroken = pb.StreamingConfig(recognition=pb.RecognitionConfig(endpoint_silence_ms=5000, max_utterance_s=30))
        audio = b"".join(clip_pcm16(name) for name in UNBROKEN)
        clients.append(Client(balancer.address, audio, unbroken).start())
        time.sleep(1.0)
        balancer.admin("set server be/s1 state drain")  # deregistered: no new streams, the open ones go on
        # The deregistration delay, above the age plus its overrun: by its end the streams that were open
        # on s1 have ended by themselves, each at its age, and resumed on s2.
        time.sleep(max(0.0, started + DELAY_S - time.monotonic()))
        left = balancer.open_streams("s1")
        balancer.admin("shutdown sessions server be/s1")  # the delay is over: the ALB closes what is left
        first.terminate()
        assert first.process is not None and first.process.wait(30) == 0, first.log()
        for each in clients:
            each.join()

    assert left == 0, "a stream outlived the deregistration delay"
    assert '"event": "stream_started"' in first.log(), "no stream was on the server that was taken out"
    aged = [e["reason"] for e in ended_early(servers, "stream_renewed")]
    assert [e for e in ended_early(servers, "stream_failed") if e["code"] == "MAX_AGE"] == []  # renewals, not failures
    # Every reconnect was a stream ended at its age (through HAProxy 2.6 the client may see that status as
    # CANCELLED, see app/hws/client/api.py), and every stream lived long enough to be ended at least once.
    assert len(aged) == sum(len(each.retries) for each in clients), (aged, [each.retries for each in clients])
    for each in clients:
        assert each.retries, "a stream three times the age limit was never ended by it"
        assert {code for code, _ in each.retries} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    for each, joined in zip(clients, speech, strict=False):
        check_every_utterance_once(each.responses, joined)
    # Only the speaker who never pauses was ended mid-speech, once; its words are all there.
    assert len([reason for reason in aged if "no pause" in reason]) == 1, aged
    text = " ".join(r.text for r in check_in_order(clients[-1].responses))
    reference = " ".join(manifest()[name] for name in UNBROKEN)
    assert wer(reference, text) <= 0.25, text


def ended_early(servers: list[ServerProcess], event_name: str) -> list[dict[str, str]]:
    """The `event_name` events (stream_renewed: at the age limit; stream_failed) of the servers' JSON logs."""
    lines = (line for server in servers for line in server.log().splitlines())
    return [event for event in map(json.loads, lines) if event.get("event") == event_name]


def test_without_the_age_limit_streams_cut_by_the_balancer_resume(log_dir: Path) -> None:
    speech = [join_recordings(names[:3]) for names in PLAYLISTS]  # 15 s: the cut comes at 6 s
    with deployment(log_dir, ["--max-stream-age-s", "0", "--grace-period-s", "10"]) as ((first, _), balancer):
        clients = [Client(balancer.address, to_pcm16(s.audio)).start() for s in speech]
        time.sleep(1.0)
        balancer.admin("set server be/s1 state drain")
        time.sleep(5.0)  # mid-stream, most likely mid-utterance
        cut = balancer.open_streams("s1")
        balancer.admin("shutdown sessions server be/s1")
        first.terminate()
        assert first.process is not None and first.process.wait(30) == 0, first.log()
        for each in clients:
            each.join()

    assert cut >= 1, "no stream was open on the server that was taken out"
    resumed = [each for each in clients if each.retries]
    assert len(resumed) == cut, [each.retries for each in clients]
    for each in resumed:  # a cut stream: UNAVAILABLE or CANCELLED, depending on how HAProxy resets it
        assert len(each.retries) == 1, each.retries
        assert each.retries[0][0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), each.retries
    for each, joined in zip(clients, speech, strict=True):
        check_every_utterance_once(each.responses, joined)

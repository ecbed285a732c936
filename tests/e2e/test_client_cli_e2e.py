"""hws-client run the way a person runs it: the real command against the real server, in a terminal
(a pseudo-terminal read back as a screen with pyte) where the display matters, with real files."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyte
import pytest
from google.protobuf import json_format

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import (
    EVAL_DIR,
    ROOT,
    ServerProcess,
    clip_pcm16,
    final_text,
    free_port,
    join_recordings,
    manifest,
    stream,
    to_pcm16,
    wer,
)

JFK = str(EVAL_DIR / "jfk.flac")
HWS_CLIENT = str(Path(sys.executable).parent / "hws-client")  # the command as installed
FINAL_LINE = re.compile(r"\[\s*\d+\.\d\d -\s*\d+\.\d\d\] \S")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Decodes of streams prompted with HWS-FAULT take 2 s more: time for a person's second Ctrl-C.
    args = ["--stream-idle-timeout-s", "3", "--fault-injection", "hang:2"]
    process = ServerProcess(args=args).start(tmp_path_factory.mktemp("cli-server"))
    yield process
    process.stop()
    # Clients were cancelled and aborted here: still every line the server logged is one JSON object.
    lines = process.log().splitlines()
    assert lines and all(line.startswith("{") and isinstance(json.loads(line), dict) for line in lines)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hws.client.cli", *args]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "app"), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=environment, timeout=120)


def spawn(*args: str, columns: int = 80) -> pexpect.spawn:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "app"), "TERM": "xterm"}
    return pexpect.spawn(
        sys.executable, ["-m", "hws.client.cli", *args], cwd=ROOT, env=env, dimensions=(40, columns), encoding="utf-8"
    )


def finish(child: pexpect.spawn) -> tuple[str, int]:
    """Everything the command wrote to its terminal, and its exit status."""
    output = child.read()
    child.close()
    return output, child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus


def screen_rows(output: str, columns: int) -> list[str]:
    """The terminal's screen after the command, as rows, the blank ones after the last left out."""
    screen = pyte.Screen(columns, 40)
    pyte.Stream(screen).feed(output.replace("\n", "\r\n"))  # a terminal's output processing adds the \r
    rows = [row.rstrip() for row in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def wrapped(lines: list[str], columns: int) -> list[str]:
    """The rows that lines printed one after another take up on a terminal this wide."""
    return [line[i : i + columns].rstrip() for line in lines for i in range(0, len(line), columns)]


def shown(result: dict) -> str:
    return f"[{result.get('start_s', 0):7.2f} - {result['end_s']:7.2f}] {result['text'].strip()}"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_live_line_never_wraps_and_each_final_is_one_line(server: ServerProcess, tmp_path: Path) -> None:
    # Real-time pace with partials, at 40 and 80 columns at once.
    runs = {
        columns: spawn(JFK, "--addr", server.address, "-o", str(tmp_path / f"{columns}.jsonl"), columns=columns)
        for columns in (40, 80)
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = {columns: pool.submit(finish, child) for columns, child in runs.items()}
    for columns, future in done.items():
        output, status = future.result()
        assert status == 0, output
        finals = jsonl(tmp_path / f"{columns}.jsonl")
        assert len(finals) >= 2
        # Every redraw of the live line fits in the terminal, so none left a stale row behind.
        redraws = [ANSI.sub("", part.split("\n")[0]) for part in output.split("\r\x1b[2K")[1:]]
        partials = [line for line in redraws if line.startswith("  … ")]
        assert partials, "no partial was shown"
        assert max(len(line) for line in partials) < columns
        # What stays on the screen: exactly one line per final, in order, and nothing else.
        assert screen_rows(output, columns) == wrapped([shown(result) for result in finals], columns)
    # At 40 columns the partials were longer than the line: their ends were shown.
    assert max(len(r["text"]) for r in jsonl(tmp_path / "40.jsonl")) > 40


def test_ctrl_c_finishes_the_utterance_in_progress_and_exits_130(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("an earlier transcript\n")
    child = spawn(JFK, "--addr", server.address, "-o", str(out))
    child.expect("  … ", timeout=60)  # a partial: the first utterance (0-8 s) is in progress
    child.sendintr()
    output, status = finish(child)
    assert status == 130, output
    assert "Traceback" not in output
    lines = screen_rows(output, 80)
    assert lines[0] == "hws-client: stopping; Ctrl-C again aborts"
    # The utterance cut by Ctrl-C got its final, on screen and in the file (which it replaced).
    assert len(lines) == 2 and FINAL_LINE.match(lines[1]), lines
    start, end = (float(x) for x in re.findall(r"\d+\.\d\d", lines[1])[:2])
    assert start == 0.0 and end < 7.9  # cut before the utterance's own end at 7.95 s
    assert out.read_text().strip() == lines[1].split("] ", 1)[1]


def test_a_second_ctrl_c_aborts_and_leaves_the_earlier_file(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out.srt"
    out.write_text("1\n00:00:00,000 --> 00:00:01,000\nearlier\n\n")
    child = spawn(JFK, "--addr", server.address, "-o", str(out), "--prompt", "HWS-FAULT")
    child.expect("  … ", timeout=60)
    child.sendintr()
    child.expect("stopping", timeout=10)  # the final is at least 2 s away
    child.sendintr()
    output, status = finish(child)
    assert status == 130, output
    assert "Traceback" not in output and "aborted" in output
    assert out.read_text() == "1\n00:00:00,000 --> 00:00:01,000\nearlier\n\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.srt"]  # no temporary file left


def streams_started(server: ServerProcess) -> list[dict]:
    events = [json.loads(line) for line in server.log().splitlines()]
    return [event for event in events if event["event"] == "stream_started"]


def test_fast_shows_progress_asks_for_finals_only_and_keeps_memory_flat(server: ServerProcess, tmp_path: Path) -> None:
    before = len(streams_started(server))
    output, status = finish(spawn(JFK, "--addr", server.address, "--fast", "-o", str(tmp_path / "fast.jsonl")))
    assert status == 0, output
    assert [stream["interim"] for stream in streams_started(server)[before:]] == [False]  # finals only
    assert re.search(r"transcribed 0:\d\d of 0:11 \(\d+ %\)", output), output
    finals = [shown(result) for result in jsonl(tmp_path / "fast.jsonl")]
    assert screen_rows(output, 80) == wrapped(finals, 80)  # the progress line is gone

    # A long file is decoded as it is sent: the client's peak memory does not grow with its length.
    peaks = {}
    for minutes in (0.5, 10):
        path = tmp_path / f"silence-{minutes}.wav"
        with wave.open(str(path), "wb") as silence:
            silence.setnchannels(1)
            silence.setsampwidth(2)
            silence.setframerate(16_000)
            silence.writeframes(bytes(int(minutes * 60 * 16_000) * 2))
        command = [sys.executable, "-m", "hws.client.cli", str(path), "--addr", server.address, "--fast"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, _, usage = os.wait4(process.pid, 0)
        peaks[minutes] = usage.ru_maxrss / 1024  # MiB
        assert process.stderr is not None and "no speech found" in process.stderr.read().decode()
    # Decoding 10 minutes whole held about 75 MiB more; streamed, 10 minutes cost about 12 MiB more than 30 s.
    assert peaks[10] - peaks[0.5] < 30, peaks


def test_output_formats(server: ServerProcess, tmp_path: Path) -> None:
    # --format alone writes to stdout; jsonl lines carry every field, zeros included.
    reply = cli(JFK, "--addr", server.address, "--fast", "--words", "--format", "jsonl")
    assert reply.returncode == 0, reply.stderr
    results = [json.loads(line) for line in reply.stdout.splitlines()]
    fields = {f.name for f in pb.SpeechResult.DESCRIPTOR.fields if not f.has_presence}
    word_fields = {f.name for f in pb.WordInfo.DESCRIPTOR.fields}
    assert len(results) >= 2 and all(fields <= result.keys() for result in results)
    assert results[0]["start_s"] == 0.0 and results[0]["words"][0]["start_s"] == 0.0
    assert all(word_fields <= word.keys() for result in results for word in result["words"])

    # srt: cues of at most 2 lines of 42 characters and 7 s, cut between words, in order.
    reply = cli(JFK, "--addr", server.address, "--fast", "-o", str(tmp_path / "jfk.srt"))
    assert reply.returncode == 0, reply.stderr
    check_cues((tmp_path / "jfk.srt").read_text().split("\n\n"), 42, 2, 7.0, [r["text"] for r in results])

    # -o - writes to stdout; the limits are settable.
    reply = cli(
        JFK,
        "--addr",
        server.address,
        "--fast",
        "-o",
        "-",
        "--format",
        "vtt",
        "--line-chars",
        "20",
        "--cue-seconds",
        "3",
    )
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.startswith("WEBVTT\n\n")
    check_cues(reply.stdout.split("\n\n")[1:], 20, 2, 3.0, [r["text"] for r in results])


def check_cues(blocks: list[str], chars: int, lines: int, seconds: float, finals: list[str]) -> None:
    words, last_end = [], 0.0
    for block in filter(None, (b.strip() for b in blocks)):
        rows = block.splitlines()
        if rows[0].isdigit():
            rows = rows[1:]
        start, end = (
            sum(float(x) * 60**i for i, x in enumerate(reversed(t.replace(",", ".").split(":"))))
            for t in rows[0].split(" --> ")
        )
        text = rows[1:]
        assert 1 <= len(text) <= lines and all(len(row) <= chars for row in text), block
        assert last_end <= start < end <= start + seconds, block
        last_end = end
        words += " ".join(text).split()
    assert words == " ".join(finals).split()


def test_no_speech_is_said_and_exits_0(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as silence:
        silence.setnchannels(1)
        silence.setsampwidth(2)
        silence.setframerate(16_000)
        silence.writeframes(bytes(3 * 16_000 * 2))
    reply = cli(str(path), "--addr", server.address, "--fast")
    assert (reply.returncode, reply.stdout, reply.stderr) == (0, "", f"hws-client: no speech found in {path}\n")


FAILING_REC = """#!/bin/sh
echo "ALSA lib confmisc.c:855:(parse_card) cannot find card '0'" >&2
echo "rec FAIL formats: can't open input  \\`default': snd_pcm_open error: No such file or directory" >&2
exit 2
"""


@pytest.mark.parametrize(
    ("case", "args", "status", "message"),
    [
        ("not audio", ["notes.txt"], 2, "hws-client: cannot read notes.txt as audio: "),
        ("empty file", ["empty.wav"], 2, "hws-client: cannot read empty.wav as audio: "),
        ("a directory", ["."], 2, "hws-client: . is a directory; give an audio file"),
        ("missing file", ["nothere.wav"], 2, "hws-client: no such file: nothere.wav"),
        ("missing output dir", [JFK, "-o", "/missing/dir/x.srt"], 2, "no such directory /missing/dir"),
        ("unknown output format", [JFK, "-o", "out.json"], 2, "cannot tell the format of out.json"),
        ("mic without rec", ["--mic"], 2, "--mic needs SoX's rec command"),
        ("mic with no device", ["--mic"], 1, "the microphone could not be recorded: rec FAIL formats: can't open"),
        ("a setting the server refuses", [JFK, "--endpoint-ms", "50"], 2, "--endpoint-ms must be 100-5000"),
        ("a bad flag", [JFK, "--vad", "7"], 2, "argument --vad: invalid choice"),
        ("no input", [], 2, "give an input file, - for stdin, or --mic"),
    ],
)
def test_every_mistake_is_one_line_and_a_documented_status(
    server: ServerProcess, tmp_path: Path, case: str, args: list[str], status: int, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not audio\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if case == "mic with no device":  # SoX is not installed here: this rec fails as SoX's does without a device
        (bin_dir / "rec").write_text(FAILING_REC)
        (bin_dir / "rec").chmod(0o755)
    reply = cli(*args, "--addr", server.address, cwd=tmp_path, env={"PATH": str(bin_dir)})
    assert reply.returncode == status, reply.stderr
    assert message in reply.stderr and "Traceback" not in reply.stderr
    assert len(reply.stderr.strip().splitlines()) <= 2  # argparse's usage line, then the message


def test_a_server_that_is_not_there_fails_at_once(tmp_path: Path) -> None:
    port = free_port()
    earlier = tmp_path / "x.vtt"
    earlier.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nearlier\n\n")
    reply = cli(JFK, "--addr", f"127.0.0.1:{port}", "-o", str(earlier))
    assert reply.returncode == 1
    assert reply.stderr == f"hws-client: cannot connect to 127.0.0.1:{port}: is the server running there?\n"
    assert earlier.read_text() == "WEBVTT\n\n00:00.000 --> 00:01.000\nearlier\n\n"  # not truncated
    assert list(tmp_path.iterdir()) == [earlier]
    # Without a port, the default gRPC port (gRPC alone would dial 443).
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 50051)) == 0:
            pytest.skip("something listens on :50051 here")
    reply = cli(JFK, "--addr", "127.0.0.1")
    assert reply.stderr == "hws-client: cannot connect to 127.0.0.1:50051: is the server running there?\n"


def test_a_stalled_stdin_pipe_ends_cleanly(server: ServerProcess) -> None:
    command = [sys.executable, "-m", "hws.client.cli", "-", "--addr", server.address]
    audio = clip_pcm16("jfk.flac")[: 16_000 * 2]  # one second, then the pipe stalls
    stalled = [subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for process in stalled:
        assert process.stdin is not None
        process.stdin.write(audio)
        process.stdin.flush()
    time.sleep(1.5)  # both streaming, both blocked reading stdin
    stalled[0].send_signal(signal.SIGINT)  # the first: Ctrl-C half-closes at once, though the read blocks
    errors = []
    for process in stalled:  # stdin stays open: the pipe stalls, it does not end
        assert process.stderr is not None
        process.wait(timeout=60)
        errors.append(process.stderr.read().decode())
    assert stalled[0].returncode == 130 and "Fatal Python error" not in errors[0], errors[0]
    # The second: the server's idle timeout (3 s here) ends it with a message.
    assert stalled[1].returncode == 1 and "Fatal Python error" not in errors[1], errors[1]
    assert errors[1].startswith("hws-client: DEADLINE_EXCEEDED: "), errors[1]


def test_the_readme_grpcurl_stream_messages_transcribe(server: ServerProcess, tmp_path: Path) -> None:
    # grpcurl is not installable here: run the README's snippet, parse its messages as grpcurl does
    # (protobuf's JSON mapping, one object per message) and stream them.
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"> jfk\.requests\.json <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    assert snippet is not None
    assert "grpcurl -plaintext -d @ localhost:50051 hws.transcriber.v1.Transcriber/StreamingTranscribe" in readme
    written = subprocess.run(
        [sys.executable, "-", JFK], input=snippet.group(1), capture_output=True, text=True, cwd=tmp_path, check=True
    )
    messages = [json_format.Parse(line, pb.StreamingTranscribeRequest()) for line in written.stdout.splitlines()]
    assert messages[0].WhichOneof("request") == "config" and len(messages) > 100
    assert wer(manifest()["jfk.flac"], final_text(stream(server.address, messages))) <= 0.1


# -- the stream age renewal; --verbose, empty stdin and the count of finals kept, as the user meets them


def test_the_stream_age_renewal_is_silent_and_logged_as_a_renewal(tmp_path: Path) -> None:
    speech = join_recordings(["arctic_aew_a0001.wav", "arctic_aew_a0002.wav", "arctic_aew_a0003.wav"])
    path = tmp_path / "talk.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(to_pcm16(speech.audio))
    args = ["--max-stream-age-s", "5", "--max-stream-age-overrun-s", "5"]
    with ServerProcess(args=args).start(tmp_path) as aged:
        command = [HWS_CLIENT, str(path), "--addr", aged.address]  # real-time pace: renewed at least twice
        runs = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in (command, [*command, "--verbose"])
        ]
        (out, err), (_, verbose_err) = (run.communicate(timeout=120) for run in runs)
        events = [json.loads(line) for line in aged.log().splitlines()]
    assert [run.returncode for run in runs] == [0, 0], err + verbose_err
    assert err == ""  # nothing for the user to do: no "UNAVAILABLE: ... resume from final_offset_s" line
    assert wer(speech.reference, " ".join(line.split("] ", 1)[1] for line in out.splitlines())) <= 0.15, out
    # --verbose says so, as a renewal, not as the status the server ended the stream with.
    renewals = verbose_err.splitlines()
    assert renewals and all("the server renewed the stream at its age limit; resuming" in line for line in renewals)
    assert "UNAVAILABLE" not in verbose_err
    names = [event["event"] for event in events]
    assert names.count("stream_renewed") >= 4 and "stream_failed" not in names  # two streams, twice each


def test_verbose_into_a_pipe_shows_partials(server: ServerProcess) -> None:
    reply = subprocess.run(
        [HWS_CLIENT, JFK, "--addr", server.address, "--verbose"], capture_output=True, text=True, timeout=120
    )
    assert reply.returncode == 0, reply.stderr
    partials = [line for line in reply.stdout.splitlines() if line.startswith("  … [")]
    finals = [line for line in reply.stdout.splitlines() if FINAL_LINE.match(line)]
    assert partials and len(finals) == 2, reply.stdout
    assert reply.stdout.count("    timing: ") == len(partials) + len(finals)


def test_empty_stdin_is_a_usage_error(server: ServerProcess) -> None:
    reply = subprocess.run(
        [HWS_CLIENT, "-", "--addr", server.address], input="", capture_output=True, text=True, timeout=60
    )
    assert (reply.returncode, reply.stdout, reply.stderr) == (
        2,
        "",
        "hws-client: standard input held no audio (it was empty)\n",
    )


def test_the_finals_kept_after_an_abort_are_counted_in_words(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    env = {**os.environ, "TERM": "xterm"}
    child = pexpect.spawn(
        HWS_CLIENT,
        [JFK, "--addr", server.address, "-o", str(out), "--prompt", "HWS-FAULT"],
        env=env,
        dimensions=(40, 80),
        encoding="utf-8",
    )
    child.expect(FINAL_LINE, timeout=60)  # the first utterance's final; the second's decode takes 2 s more
    child.sendintr()
    child.expect("stopping", timeout=10)
    child.sendintr()
    output, status = finish(child)
    assert status == 130, output
    assert f"hws-client: {out} not written; the 1 final received is in {out}.partial" in output.splitlines()[-1]
    assert len(Path(f"{out}.partial").read_text().splitlines()) == 1

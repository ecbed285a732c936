"""hws-client: stream a file, stdin or the microphone and print transcripts as they come.

On a terminal, the partial result of the utterance in progress is redrawn in
place on one line (its end, cut to the terminal's width) and each final
replaces it; elsewhere only finals are printed. --verbose prints every result
as a line with its timing from the server. --output writes the finals to a
txt, srt, vtt or jsonl file (- or --format alone: standard output).

Ctrl-C stops sending: the server finalises the utterance in progress, its
final is printed and written, and the client exits with 130. A second Ctrl-C
aborts at once. An output file is written under a temporary name and renamed
when the run ends, so a failed or aborted run leaves an earlier file as it was.

A stream the server ends at its age limit (every few minutes behind a load
balancer) is renewed without a word (--verbose says so); a drain or a lost
connection is said on stderr as it is resumed. A connection that cannot be made
is said in one line naming its cause: nothing listening, --tls against a
server without TLS or the reverse, an untrusted certificate (--ca-cert), a
certificate for another name, an HTTP port, a URL given to --addr.

Exit status: 0 done (also when the audio held no speech, which is said on
stderr); 1 the stream failed (no connection to the server, the connection lost
for good, an error from the server, a file that stops decoding, the
microphone); 2 the command cannot run as given (a bad flag or --addr, an input
that is not audio or empty, standard input included, an output that cannot be
written, settings the server refused); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import stat
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from wcwidth import wcwidth

from hws import client
from hws.client.formats import FORMATS, CueRules, TranscriptWriter
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

if TYPE_CHECKING:  # loaded by hws.client once main() has silenced gRPC's log lines
    import grpc

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
# The server names the protocol's fields; the user typed these flags.
FLAGS = {
    "endpoint_silence_ms": "--endpoint-ms",
    "max_utterance_s": "--max-utterance-s",
    "vad_aggressiveness": "--vad",
    "sample_rate_hz": "--rate",
    "audio_channel_count": "--channels",
    "initial_prompt": "--prompt",
}


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hws-client",
        usage="%(prog)s [options] FILE | - | --mic  (--help lists the options)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", nargs="?", help="audio file (any format PyAV decodes), or - for raw PCM on stdin")
    parser.add_argument("--mic", action="store_true", help="stream the microphone (SoX's rec command)")
    parser.add_argument(
        "--addr",
        action="append",
        help=f"server address host[:port] (default localhost:{client.DEFAULT_PORT}, the port too when left out); "
        "repeat to fail over when a stream is resumed",
    )
    parser.add_argument(
        "--resume-attempts",
        type=int,
        default=5,
        help="reconnect when the connection drops, the server drains or ends a long stream (it does every "
        "few minutes behind a load balancer), at most this many times in a row without progress "
        "(default %(default)s; 0: never)",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (system roots unless --ca-cert)")
    parser.add_argument(
        "--api-key", help="API key, sent as 'authorization: Bearer KEY' (default: env HWS_API_KEY; none: no key)"
    )
    parser.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate (implies --tls)")
    parser.add_argument("--timeout", type=float, default=None, help="deadline for the whole stream in seconds")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="send a file as fast as the server takes it, not at real-time pace; shows progress on a terminal",
    )
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of raw stdin audio (default %(default)s)")
    parser.add_argument(
        "--encoding", choices=("linear16", "mulaw"), default="linear16", help="encoding of raw stdin audio"
    )
    parser.add_argument("--channels", type=int, default=1, help="channels of raw stdin audio (1 or 2)")
    parser.add_argument("--language", default="", help="language code; empty: the model's default or detection")
    parser.add_argument("--prompt", default="", help="initial prompt (vocabulary, spelling)")
    parser.add_argument("--hotword", action="append", default=[], help="a word or phrase to favour (repeatable)")
    parser.add_argument("--words", action="store_true", help="ask for word timings (shown in jsonl output)")
    parser.add_argument(
        "--interim",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for partial results (default: only when they are shown, on a terminal at real-time pace)",
    )
    parser.add_argument("--endpoint-ms", type=int, default=0, help="silence that ends an utterance (0: server default)")
    parser.add_argument("--max-utterance-s", type=float, default=0.0, help="forced cut length (0: server default)")
    parser.add_argument(
        "--vad", type=int, choices=(0, 1, 2, 3), default=None, help="VAD aggressiveness (default: the server's)"
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print every result received as a line, partials included (asked for unless --fast or "
        "--no-interim, into a pipe too), each followed by its timing from the server: the latency after its "
        "audio, split into endpoint wait, decode queue, decode and the rest, and the decode's real-time factor; "
        "and say when the server renews the stream at its age limit",
    )
    parser.add_argument("--output", "-o", help="write the finals to this file; - for standard output")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: from the --output extension; none: txt); alone, writes to standard output",
    )
    parser.add_argument("--line-chars", type=int, default=42, help="srt/vtt: characters per line (default 42)")
    parser.add_argument("--cue-lines", type=int, default=2, help="srt/vtt: lines per cue (default 2)")
    parser.add_argument("--cue-seconds", type=float, default=7.0, help="srt/vtt: longest cue in seconds (default 7)")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if bool(args.mic) == bool(args.input):
        parser.error("give an input file, - for stdin, or --mic")
    for ok, rule in (
        (args.resume_attempts >= 0, "--resume-attempts must be 0 or more"),
        (args.timeout is None or args.timeout > 0, "--timeout must be more than 0"),
        (args.line_chars >= 10, "--line-chars must be 10 or more"),
        (args.cue_lines >= 1, "--cue-lines must be 1 or more"),
        (args.cue_seconds >= 1, "--cue-seconds must be 1 or more"),
    ):
        if not ok:
            parser.error(rule)


class Output:
    """The transcript's destination: standard output, or a file written under a temporary name in its
    folder and renamed over the target when the run ends, so a failed or aborted run leaves an earlier
    file as it was (the finals it did get go to NAME.partial)."""

    def __init__(self, target: str, fmt: str, rules: CueRules) -> None:
        self.path: Path | None = None
        self.temp = ""
        stream: TextIO = sys.stdout
        if target != "-":
            self.path = Path(target)
            if self.path.is_dir():
                raise CliError(f"cannot write {target}: it is a directory", USAGE)
            if not self.path.parent.is_dir():
                raise CliError(f"cannot write {target}: no such directory {self.path.parent}", USAGE)
            try:
                fd, self.temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
            except OSError as exc:
                raise CliError(f"cannot write {target}: {exc.strerror or exc}", USAGE) from None
            os.chmod(self.temp, _file_mode(self.path))
            stream = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed in commit or abandon)
        self.writer = TranscriptWriter(stream, fmt, rules)

    @property
    def to_stdout(self) -> bool:
        return self.path is None

    def commit(self) -> None:
        if self.path is not None:
            self.writer.out.close()
            os.replace(self.temp, self.path)

    def abandon(self) -> str:
        """Drop the run's output; says what became of it."""
        if self.path is None:
            return ""
        self.writer.out.close()
        if not self.writer.count:
            os.unlink(self.temp)
            return ""
        os.replace(self.temp, f"{self.path}.partial")
        count = self.writer.count
        received = f"the {count} final{'s' if count != 1 else ''} received {'are' if count != 1 else 'is'}"
        return f"{self.path} not written; {received} in {self.path}.partial"


def _file_mode(path: Path) -> int:
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _output(args: argparse.Namespace) -> Output | None:
    target = args.output or ("-" if args.format else None)
    if target is None:
        return None
    fmt = args.format
    if fmt is None and target != "-":
        suffix = Path(target).suffix.lstrip(".").lower()
        if suffix and suffix not in FORMATS:
            raise CliError(
                f"cannot tell the format of {target} from its extension: add --format {' | '.join(FORMATS)}", USAGE
            )
        fmt = suffix or "txt"
    return Output(target, fmt or "txt", CueRules(args.line_chars, args.cue_lines, args.cue_seconds))


def _columns(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return 80


def _tail(text: str, room: int) -> int:
    """Where the end of `text` that fits in `room` terminal cells starts, at a word when one fits."""
    used = 0
    for index in range(len(text) - 1, -1, -1):
        used += max(0, wcwidth(text[index]))
        if used > room:
            space = text.find(" ", index + 1)
            return space + 1 if 0 <= space < len(text) - 1 else index + 1
    return 0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_timing(timing: pb.ResultTiming) -> str:
    """A result's timing in one line: its latency after its audio, where it went, the decode's real-time factor."""
    other = max(0.0, timing.latency_s - timing.endpoint_wait_s - timing.queue_wait_s - timing.decode_s)
    return (
        f"{timing.latency_s:.2f} s after its audio = endpoint {timing.endpoint_wait_s:.2f} + queue "
        f"{timing.queue_wait_s:.2f} + decode {timing.decode_s:.2f} + other {other:.2f}; "
        f"RTF {timing.real_time_factor:.3f} on {timing.decoded_audio_s:.2f} s of audio"
    )


class Display:
    """One live line on a terminal (a partial, or progress) that never wraps; finals printed as lines.

    Verbose: every result is printed as a line, partials too (none is redrawn), each followed by its timing.
    """

    PREFIX = "  … "

    def __init__(self, out: TextIO, finals: bool = True, verbose: bool = False) -> None:
        self.out = out
        self.finals = finals
        self.verbose = verbose
        self.live = out.isatty()
        self._shown = False

    def final(self, result: pb.SpeechResult) -> None:
        self.clear()
        if self.verbose:
            self._logged(f"[{result.start_s:7.2f} - {result.end_s:7.2f}] {result.text.strip()}", result)
        elif self.finals and result.text:
            self.out.write(f"[{result.start_s:7.2f} - {result.end_s:7.2f}] {result.text.strip()}\n")
            self.out.flush()

    def partial(self, result: pb.SpeechResult) -> None:
        if self.verbose:
            self.clear()
            self._logged(f"{self.PREFIX}[{result.start_s:7.2f} - {result.end_s:7.2f}] {result.text.strip()}", result)
            return
        self._line(result.stable_text, result.text[len(result.stable_text) :])

    def _logged(self, line: str, result: pb.SpeechResult) -> None:
        self.out.write(f"{line}\n    timing: {describe_timing(result.timing)}\n")
        self.out.flush()

    def progress(self, done_s: float, total_s: float | None) -> None:
        share = f" of {_clock(total_s)} ({min(100, round(100 * done_s / total_s))} %)" if total_s else ""
        self._line(f"transcribed {_clock(done_s)}{share}", "")

    def _line(self, plain: str, dim: str) -> None:
        if not self.live:
            return
        text = plain + dim
        room = _columns(self.out) - 1 - len(self.PREFIX)  # the last column left free: no pending wrap
        cut = _tail(text, max(1, room))
        shown, split = text[cut:], max(0, len(plain) - cut)
        # Marked before it is written: a Ctrl-C handled just after the write must still clear it.
        self._shown = True
        self.out.write(f"\r\x1b[2K{self.PREFIX}{shown[:split]}\x1b[2m{shown[split:]}\x1b[0m")
        self.out.flush()

    def notice(self, text: str) -> None:
        self.clear()
        print(f"hws-client: {text}", file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self._shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()
            self._shown = False


class Interrupts:
    """SIGINT: the first stops sending (the stream half-closes and its last final comes), the second aborts."""

    def __init__(self, feed: client.Feed, display: Display) -> None:
        self.feed = feed
        self.display = display
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.feed.stop()
        self.display.notice("stopping; Ctrl-C again aborts")


def _source(args: argparse.Namespace) -> tuple[client.AudioSource, client.Recorder | None]:
    if args.mic:
        return client.microphone_source()
    if args.input == "-":
        encoding = pb.MULAW if args.encoding == "mulaw" else pb.LINEAR16
        stdin = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
        # Unbuffered: a read blocked on a stalled pipe holds no buffer lock that exiting would wait for.
        return client.raw_source(stdin, args.rate, encoding, args.channels), None
    path = Path(args.input)
    if path.is_dir():
        raise CliError(f"{args.input} is a directory; give an audio file", USAGE)
    if not path.exists():
        raise CliError(f"no such file: {args.input}", USAGE)
    return client.file_source(path, realtime=not args.fast), None


def _config(args: argparse.Namespace, words: bool, interim: bool) -> pb.StreamingConfig:
    recognition = pb.RecognitionConfig(
        language=args.language,
        word_timestamps=words,
        initial_prompt=args.prompt,
        hotwords=args.hotword,
        endpoint_silence_ms=args.endpoint_ms,
        max_utterance_s=args.max_utterance_s,
    )
    if args.vad is not None:
        recognition.vad_aggressiveness = args.vad
    return pb.StreamingConfig(recognition=recognition, interim_results=interim)


def _in_flags(details: str) -> str:
    return re.sub("|".join(FLAGS), lambda match: FLAGS[match[0]], details)


def run(args: argparse.Namespace) -> int:
    output = _output(args)
    try:
        code = _transcribe(args, output)
    except BaseException:
        if output is not None and (said := output.abandon()):
            print(f"hws-client: {said}", file=sys.stderr)
        raise
    if output is not None:
        output.commit()
    return code


def _transcribe(args: argparse.Namespace, output: Output | None) -> int:
    try:
        addresses = [client.check_address(address) for address in args.addr or ["localhost"]]
    except client.ConnectError as exc:  # a URL, a port out of range: said before dialling
        raise CliError(str(exc), USAGE) from None
    if args.mic:
        client.check_recorder()  # the microphone starts once the server answers
    else:
        source, recorder = _source(args)
    _connect(addresses, args)
    if args.mic:
        source, recorder = _source(args)
    to_stdout = output is not None and output.to_stdout
    display = Display(sys.stderr if to_stdout else sys.stdout, finals=not to_stdout, verbose=args.verbose)
    feed = client.Feed(source.chunks)
    interrupts = Interrupts(feed, display)
    signal.signal(signal.SIGINT, interrupts)
    # Partials are asked for where they are shown: redrawn on a terminal, or as lines with --verbose.
    interim = args.interim if args.interim is not None else (display.live or args.verbose) and not args.fast
    words = args.words or (output is not None and output.writer.fmt in ("srt", "vtt"))
    key = args.api_key or os.environ.get("HWS_API_KEY")
    finals = 0
    try:
        responses = client.stream_resumable(
            lambda connection: client.make_channel(addresses[connection % len(addresses)], args.tls, args.ca_cert),
            dataclasses.replace(source, chunks=feed),
            _config(args, words, interim),
            attempts=args.resume_attempts,
            timeout_s=args.timeout,
            metadata=client.auth_metadata(key) if key else None,
            on_retry=lambda exc, attempt, delay: _retrying(display, exc, attempt, delay),
        )
        for response in client.raising_stream_errors(responses):
            result = response.result if response.WhichOneof("response") == "result" else None
            if result is not None and result.is_final:
                display.final(result)
                finals += bool(result.text)
                if output is not None:
                    output.writer.write(result)
            elif result is not None:
                display.partial(result)
            if args.fast and (result is None or result.is_final):
                display.progress(response.final_offset_s, source.duration_s)
        display.clear()
    except client.StreamError as exc:
        display.clear()
        usage = exc.code.name == "INVALID_ARGUMENT"
        raise CliError(f"{exc.code.name}: {_in_flags(exc.details)}", USAGE if usage else FAILED) from None
    except KeyboardInterrupt:
        display.notice("aborted")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        feed.stop()
        if recorder is not None:
            recorder.stop()
    if feed.error is not None:
        raise CliError(f"error reading {args.input}: {feed.error}", FAILED)
    failure = recorder.failure() if recorder is not None and not interrupts.count else None
    if failure is not None:
        raise CliError(f"the microphone could not be recorded: {failure}", FAILED)
    if args.input == "-" and not feed.audio_bytes and not interrupts.count:
        raise CliError("standard input held no audio (it was empty)", USAGE)
    if not finals:
        display.notice(f"no speech found in {args.input or 'the microphone audio'}")
    return INTERRUPTED if interrupts.count else OK


def _connect(addresses: list[str], args: argparse.Namespace) -> None:
    """Fails with the first address's reason (all of them, when each fails) unless one can be connected to."""
    reasons = []
    try:
        for address in addresses:
            reason = client.connect_error(address, args.tls, args.ca_cert)
            if reason is None:
                return
            reasons.append(reason)
    except ValueError as exc:  # an unusable --ca-cert
        raise CliError(str(exc), USAGE) from None
    raise CliError("; ".join(reasons), FAILED)


def _retrying(display: Display, exc: grpc.RpcError, attempt: int, delay: float) -> None:
    if client.is_renewal(exc):  # routine: the server's age limit, resumed at once; nothing for the user to do
        if display.verbose:
            display.notice(f"the server renewed the stream at its age limit; resuming (attempt {attempt})")
        return
    display.notice(f"{exc.code().name}: {exc.details()}; resuming in {delay:.1f} s (attempt {attempt})")


def main(argv: list[str] | None = None) -> None:
    # gRPC's C core writes lines of its own to stderr (a failed TLS handshake: one per try), beside the one
    # line this command writes. Silenced before gRPC loads (hws.client loads it on first use; the core reads
    # the variable as it starts); set GRPC_VERBOSITY (ERROR, INFO, DEBUG) to see them again.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad flag: usage and exit 2
    _check_args(parser, args)
    try:
        code = run(args)
    except CliError as exc:
        print(f"hws-client: {exc}", file=sys.stderr)
        code = exc.code
    except client.SourceError as exc:
        print(f"hws-client: {exc}", file=sys.stderr)
        code = USAGE
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = FAILED
    except Exception as exc:  # a bug, said in one line rather than a traceback
        print(f"hws-client: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = FAILED
    raise SystemExit(code)


if __name__ == "__main__":
    main()

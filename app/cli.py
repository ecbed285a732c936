"""`hws-client`: stream a file, stdin or the microphone and print transcripts as they come.

On a terminal, partial results are redrawn in place on one line and each final
replaces its partial; elsewhere only finals are printed. `--output` also
writes the finals to a txt, srt, vtt or jsonl file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

import grpc

from app import client
from app.auth import auth_metadata
from app.formats import FORMATS, TranscriptWriter
from app.gen.hws.transcriber.v1 import transcriber_pb2 as pb


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hws-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", nargs="?", help="audio file (any format PyAV decodes), or - for raw PCM on stdin")
    parser.add_argument("--mic", action="store_true", help="stream the microphone (SoX `rec`)")
    parser.add_argument(
        "--addr",
        action="append",
        help="server address host:port (default localhost:50051); repeat to fail over when a stream is resumed",
    )
    parser.add_argument(
        "--resume-attempts",
        type=int,
        default=5,
        help="reconnect this many times when the connection drops or the server drains (default %(default)s; 0: never)",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (system roots unless --ca-cert)")
    parser.add_argument(
        "--api-key", help="API key, sent as 'authorization: Bearer KEY' (default: env HWS_API_KEY; none: no key)"
    )
    parser.add_argument("--ca-cert", help="PEM file of the CA that signed the server's certificate (implies --tls)")
    parser.add_argument("--timeout", type=float, default=None, help="deadline for the whole stream in seconds")
    parser.add_argument(
        "--fast", action="store_true", help="send a file as fast as the server takes it, not at real-time pace"
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
    parser.add_argument("--no-interim", action="store_true", help="ask for finals only")
    parser.add_argument("--endpoint-ms", type=int, default=0, help="silence that ends an utterance (0: server default)")
    parser.add_argument("--max-utterance-s", type=float, default=0.0, help="forced cut length (0: server default)")
    parser.add_argument(
        "--vad", type=int, choices=(0, 1, 2, 3), default=None, help="VAD aggressiveness (default: server's)"
    )
    parser.add_argument("--output", "-o", help="also write finals to this file")
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default: from the --output extension, else txt)"
    )
    return parser


def _config(args: argparse.Namespace) -> pb.StreamingConfig:
    recognition = pb.RecognitionConfig(
        language=args.language,
        word_timestamps=args.words,
        initial_prompt=args.prompt,
        hotwords=args.hotword,
        endpoint_silence_ms=args.endpoint_ms,
        max_utterance_s=args.max_utterance_s,
    )
    if args.vad is not None:
        recognition.vad_aggressiveness = args.vad
    return pb.StreamingConfig(recognition=recognition, interim_results=not args.no_interim)


class Display:
    """Partials redrawn in place on a TTY; finals printed as lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self._partial_shown = False

    def show(self, result: pb.SpeechResult) -> None:
        if result.is_final:
            self._clear()
            if result.text:
                self.out.write(f"[{result.start_s:7.2f} - {result.end_s:7.2f}] {result.text}\n")
        elif self.live:
            self._clear()
            stable, rest = result.stable_text, result.text[len(result.stable_text) :]
            self.out.write(f"\r\x1b[2K  … {stable}\x1b[2m{rest}\x1b[0m")
            self._partial_shown = True
        self.out.flush()

    def notice(self, text: str) -> None:
        self._clear()
        print(f"hws-client: {text}", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self._partial_shown:
            self.out.write("\r\x1b[2K")
            self._partial_shown = False


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.mic) == bool(args.input):
        parser.error("give an input file, - for stdin, or --mic")
    recorder: subprocess.Popen[bytes] | None = None
    if args.mic:
        source, recorder = client.microphone_source()
    elif args.input == "-":
        encoding = pb.MULAW if args.encoding == "mulaw" else pb.LINEAR16
        source = client.raw_source(sys.stdin.buffer, args.rate, encoding, args.channels)
    else:
        if not Path(args.input).is_file():
            parser.error(f"no such file: {args.input}")
        source = client.file_source(args.input, realtime=not args.fast)

    display = Display(sys.stdout)
    with contextlib.ExitStack() as stack:
        writer = None
        if args.output:
            fmt = args.format or (
                Path(args.output).suffix.lstrip(".") if Path(args.output).suffix.lstrip(".") in FORMATS else "txt"
            )
            writer = TranscriptWriter(stack.enter_context(open(args.output, "w", encoding="utf-8")), fmt)
        addresses = args.addr or ["localhost:50051"]

        def channel_for(attempt: int) -> grpc.Channel:
            return client.make_channel(addresses[attempt % len(addresses)], args.tls, args.ca_cert)

        def retrying(exc: grpc.RpcError, attempt: int, delay: float) -> None:
            display.notice(f"{exc.code().name}: {exc.details()}; resuming in {delay:.1f} s (attempt {attempt})")

        try:
            responses = client.stream_resumable(
                channel_for,
                source,
                _config(args),
                attempts=args.resume_attempts,
                timeout_s=args.timeout,
                metadata=auth_metadata(key) if (key := args.api_key or os.environ.get("HWS_API_KEY")) else None,
                on_retry=retrying,
            )
            for response in responses:
                if response.WhichOneof("response") == "result":
                    display.show(response.result)
                    if writer is not None:
                        writer.write(response.result)
        except grpc.RpcError as exc:
            print(f"\nhws-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        finally:
            if recorder is not None:
                recorder.terminate()


if __name__ == "__main__":
    main()

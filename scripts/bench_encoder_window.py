#!/usr/bin/env python3
"""Encoder window sweep: decode CPU and WER of the engine for each --encoder-padding-s.

The eval clips are cut into utterances by the service's own segmenter (default VAD
settings), then every utterance is decoded as a final by the engine, in-process, with
one padding per child process (a fresh model, so no run warms another's caches). Each
child decodes the set once unmeasured, then once measured (CPU from getrusage).
Reports CPU per audio second, corpus WER, and how many encoder passes and generate
calls the set took: more than one pass per utterance means Whisper left a segment
unfinished and decoded the rest in a second window; more generate calls than
passes are temperature fallbacks.

Then, for the batching question, the wall time per item of one encoder pass over a
batch of B equal windows (B = 1, 2, 4, 8; the median of 5 passes), for a short window
(jfk.flac with the default margin) and for Whisper's fixed 30 s window.

Run: .venv/bin/python scripts/bench_encoder_window.py [--paddings 30 10 5 3 2 1 0.5] [--model large-v3]
(the batch table always uses the embedded tiny.en on the CPU: it is the CPU batching figure)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hws.server.settings import EMBEDDED_MODEL  # noqa: E402
from scripts.benchlib import DEFAULT_RESULTS_DIR, own_cpu_seconds, rounded_wer  # noqa: E402
from tests.support import clip_audio, manifest, offline_model  # noqa: E402


class _Counting:
    """The CTranslate2 model, counting encoder passes and generate calls."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.encodes, self.generates = inner, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self.encodes += 1
        return self.inner.encode(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.generates += 1
        return self.inner.generate(*args, **kwargs)


def worker(padding_s: float, model: str) -> None:
    from hws.asr.scheduler import Engine, SchedulerSettings
    from hws.asr.types import DecodeOptions, JobKind
    from hws.asr.whisper.backend import WhisperBackend, WhisperSettings
    from hws.server.settings import Settings
    from hws.stream.vad import Segmenter, SpeechEnd, VadParams

    refs = manifest()
    utterances: dict[str, list[Any]] = {}
    audio_s = 0.0
    for name in refs:
        audio = clip_audio(name)
        audio_s += audio.shape[0] / 16_000
        segmenter = Segmenter(VadParams())
        events = segmenter.feed(audio) + segmenter.finish()
        utterances[name] = [e.audio for e in events if isinstance(e, SpeechEnd)]
    settings = Settings(model=model, encoder_padding_s=padding_s, log_format="json", log_level="warning")
    settings = settings.validate()
    backend = WhisperBackend(settings.pick(WhisperSettings))
    engine = Engine(settings.pick(SchedulerSettings), backend)
    engine.load()
    counting = _Counting(backend._model.model)
    backend._model.model = counting

    def decode_all() -> dict[str, str]:
        futures = {
            name: [engine.submit(name, JobKind.FINAL, u, DecodeOptions(language="en")) for u in utts]
            for name, utts in utterances.items()
        }
        return {name: " ".join(f.result().text for f in fs) for name, fs in futures.items()}  # type: ignore[union-attr]

    decode_all()
    counting.encodes = counting.generates = 0
    cpu_before, wall_before = own_cpu_seconds(), time.monotonic()
    texts = decode_all()
    cpu_s, wall_s = own_cpu_seconds() - cpu_before, time.monotonic() - wall_before
    engine.stop()
    print(
        json.dumps(
            {
                "encoder_padding_s": padding_s,
                "utterances": sum(len(u) for u in utterances.values()),
                "encoder_passes": counting.encodes,
                "generate_calls": counting.generates,
                "cpu_per_audio_s": round(cpu_s / audio_s, 4),
                "wall_s": round(wall_s, 2),
                "wer": rounded_wer([(refs[name], texts[name]) for name in refs]),
            }
        )
    )


def batch_worker() -> None:
    """Encoder wall time per item by batch size, short and fixed windows."""
    import statistics

    import numpy as np
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import get_ctranslate2_storage

    from hws.asr.whisper.windowed import WINDOW_FRAMES, encoder_frames
    from hws.server.settings import Settings

    model = offline_model(windowed=True)
    features = model.feature_extractor(clip_audio("jfk.flac"))[:, :-1]
    rows = []
    for frames in (encoder_frames(features.shape[-1], Settings().encoder_padding_s), WINDOW_FRAMES):
        window = pad_or_trim(features, frames)
        for batch in (1, 2, 4, 8):
            stacked = get_ctranslate2_storage(np.stack([window] * batch))
            model.model.encode(stacked)  # warm-up
            times = []
            for _ in range(5):
                started = time.monotonic()
                model.model.encode(stacked)
                times.append(time.monotonic() - started)
            rows.append({"window_s": frames / 100, "batch": batch, "s_per_item": statistics.median(times) / batch})
    print(json.dumps(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paddings", type=float, nargs="+", default=[30, 10, 5, 3, 2, 1, 0.5])
    parser.add_argument("--model", default=EMBEDDED_MODEL, help="as the server's --model (device: auto)")
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--batch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.model)
        return 0
    if args.batch_worker:
        batch_worker()
        return 0
    rows = []
    print(f"{'padding s':>10} {'utts':>5} {'passes':>7} {'generates':>10} {'CPU s/audio s':>14} {'WER':>7}")
    for padding in args.paddings:
        command = [sys.executable, __file__, "--worker", str(padding), "--model", args.model]
        reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        row = json.loads(reply.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{padding:>10g} {row['utterances']:>5} {row['encoder_passes']:>7} {row['generate_calls']:>10}"
            f" {row['cpu_per_audio_s']:>14.4f} {row['wer']:>7.4f}",
            flush=True,
        )
    command = [sys.executable, __file__, "--batch-worker"]
    reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    batches = json.loads(reply.stdout.strip().splitlines()[-1])
    print(f"\n{'window s':>9} {'batch':>6} {'encoder s per item':>19}")
    for row in batches:
        print(f"{row['window_s']:>9g} {row['batch']:>6} {row['s_per_item']:>19.3f}")
    results_dir = DEFAULT_RESULTS_DIR
    results_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = results_dir / f"encoder-window-{stamp}.json"
    out.write_text(json.dumps({"timestamp": stamp, "paddings": rows, "batched_encoder": batches}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

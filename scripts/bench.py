#!/usr/bin/env python3
"""Streaming benchmark: the real server process and model, clients streaming eval clips at real-time pace.

One run measures, against `python -m hws.server`:
- final latency: arrival of a final minus the wall time at which the client sent the audio at its end_s
  (includes the endpoint silence; the single-stream target is p50 <= endpoint + 1.0 s);
- partial cadence and time to first partial (interim results on);
- corpus WER of the streamed finals (interim off and on) against offline faster-whisper on the same clips;
- server CPU seconds per second of audio (interim off and on) against offline faster-whisper;
- capacity: the largest number of concurrent real-time streams (interim on) the server keeps up with,
  with batching off (--max-batch-size 1) and on, stepping N = 1, 2, 3, 4, 6, 8, ... to the first failure;
- with --isolation, a real-time victim stream beside 1 and 4 abusive clients (scripts/bench_isolation.py);
- with --compare-base, the real-speech, single-stream and capacity phases again on base-embedded
  (multilingual Whisper base, language detected per utterance), reported beside tiny.en.

Prints a table and writes bench-results/bench-<timestamp>.json and bench-results/latest.json.
Run: .venv/bin/python scripts/bench.py [--quick] [--skip-capacity] [--skip-offline] [--whisperlive] [--isolation]
     [--compare-base]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What the benchmarks share: streams, their figures, the server under test, the isolation phase.
from scripts.benchlib import (  # noqa: E402
    CHUNK_MS,
    DEFAULT_CLIPS,
    DEFAULT_RESULTS_DIR,
    TAIL_SILENCE_S,
    StreamRecord,
    bench_server,
    isolation_phase,
    own_cpu_seconds,
    playlist,
    ratio,
    rounded_wer,
    run_stream,
    silence,
    stream_figures,
    warm_up,
)

# The harness the tests use: the server process, the eval audio, WER, offline faster-whisper.
from tests.support import (  # noqa: E402
    CLIP_OFFLINE_OPTIONS,
    EVAL_DIR,
    OFFLINE_VARIANTS,
    RATE,
    ServerProcess,
    clip_audio,
    clip_pcm16,
    corpus_errors,
    from_pcm16,
    join_recordings,
    manifest,
    offline_model,
    offline_transcript,
    proc_cpu_seconds,
    real_audio,
    real_manifest,
    repeated_runs,
    to_pcm16,
    transcribe,
)

REAL_PAUSE_S = 1.5  # between recordings in the continuous real stream
QUICK_CLIPS = ["ls_61-70968-0000.flac"]
QUICK_REAL_RECORDINGS = 2
CAPACITY_STEPS = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32]
# A capacity step passes when every stream keeps real time:
CAPACITY_P95_LATENCY_S = 3.0  # final latency p95 over all streams
CAPACITY_DRAIN_S = 3.0  # the stream's last response arrives within this after the client half-closes
CAPACITY_MAX_SLIP_S = 0.5  # the client never falls this far behind its real-time send schedule
# Reported besides: the largest passing N whose captions also stay live (partial gap p95 within this).
CAPTION_PARTIAL_GAP_S = 2.0
BASE_MODEL = "base-embedded"  # --compare-base: the multilingual model, beside the default tiny.en


# -- small helpers -------------------------------------------------------------------------------------------


def within(pairs: Sequence[tuple[float | None, float | None]], bound: float) -> bool | None:
    """Whether every a/b <= bound (a zero b passes only a zero a); None when a figure is missing."""
    if any(a is None or b is None for a, b in pairs):
        return None
    return all((a <= bound * b) if b else a == 0 for a, b in pairs)  # type: ignore[operator]


def flag_value(args: Sequence[str], flag: str, default: int) -> int:
    """The value of `--flag N` / `--flag=N` in a server argument list (the last one wins)."""
    value = default
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = int(args[i + 1])
        elif arg.startswith(flag + "="):
            value = int(arg.split("=", 1)[1])
    return value


class Background:
    """CPU used by processes other than the server under test and this client during a phase, in cores.

    The bench owns the machine only if this stays near 0; anything else running skews every timing figure.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        return time.monotonic(), busy, proc_cpu_seconds(self.server_pid), own_cpu_seconds()

    def cores(self) -> float:
        end = self._sample()
        wall, busy, server, own = (b - a for a, b in zip(self.start, end, strict=True))
        return round(max(0.0, busy - server - own) / wall, 3)


# -- phases --------------------------------------------------------------------------------------------------


def single_stream_phase(server: ServerProcess, clips: Sequence[str], interim: bool) -> dict[str, Any]:
    """Clips one after the other, one stream each: latency, cadence, WER and server CPU per audio second."""
    refs = manifest()
    records: list[StreamRecord] = []
    audio_s = 0.0
    metrics_before = server.hws_series()
    background = Background(server.pid)
    cpu_before = server.cpu_seconds()
    for name in clips:
        pcm = clip_pcm16(name)
        audio_s += len(pcm) / 2 / RATE
        records.append(asyncio.run(run_stream(server.address, pcm + silence(TAIL_SILENCE_S), interim)))
    cpu = server.cpu_seconds() - cpu_before
    metrics_after = server.hws_series()
    per_clip = {
        name: {"text": r.text(), "latencies_s": [round(x, 3) for x in r.final_latencies()]}
        for name, r in zip(clips, records, strict=True)
    }
    return {
        "interim_results": interim,
        **stream_figures(records),
        "wer": rounded_wer([(refs[name], r.text()) for name, r in zip(clips, records, strict=True)]),
        "audio_s": round(audio_s, 2),
        "background_cores": background.cores(),
        "server_cpu_s": round(cpu, 2),
        "cpu_per_audio_s": round(cpu / audio_s, 4),
        "server_metrics_delta": {
            k: round(v - metrics_before.get(k, 0.0), 3)
            for k, v in metrics_after.items()
            if k.split("{")[0].endswith(("_total", "_sum", "_count")) and v - metrics_before.get(k, 0.0)
        },
        "per_clip": per_clip,
    }


def detection_ms(phase: dict[str, Any], kind: str) -> float | None:
    """Mean time of one language detection in a phase, from the server's metrics (None: no detection)."""
    delta = phase["server_metrics_delta"]
    count = delta.get(f'hws_language_detection_seconds_count{{kind="{kind}"}}')
    total = delta.get(f'hws_language_detection_seconds_sum{{kind="{kind}"}}', 0.0)
    return round(1000 * total / count, 1) if count else None


def base_phase(
    server_args: Sequence[str],
    clips: Sequence[str],
    capacity_clips: Sequence[str],
    steps: Sequence[int],
    seconds: float,
    args: argparse.Namespace,
    results_dir: Path,
) -> dict[str, Any]:
    """The tiny.en phases again on base-embedded, on the same audio (capacity with the default batching only)."""
    base_args = [*server_args, "--model", BASE_MODEL]
    out: dict[str, Any] = {"server_args": base_args}
    if not args.skip_real:
        out["real"] = real_speech_phases(base_args, args, "base-real", results_dir)
    print(f"single stream on {BASE_MODEL}: {len(clips)} clips, interim off then on", file=sys.stderr)
    out["single_stream"] = single_stream_phases(base_args, clips, "base-single", results_dir)
    out["language_detection_ms"] = {
        "final": detection_ms(out["single_stream"]["interim_off"], "final"),
        "partial": detection_ms(out["single_stream"]["interim_on"], "partial"),
    }
    if not args.skip_capacity:
        print(f"capacity [{BASE_MODEL}]: steps {list(steps)}", file=sys.stderr)
        out["capacity"] = capacity_phase(
            "base", base_args, capacity_clips, steps, seconds, args.capacity_budget_s, results_dir
        )
    return out


def single_stream_phases(
    server_args: Sequence[str], clips: Sequence[str], log_name: str, results_dir: Path
) -> dict[str, Any]:
    """The single-stream phase on a fresh server, interim off then on."""
    with bench_server(server_args, log_name, results_dir) as server:
        warm_up(server)
        return {
            "interim_off": single_stream_phase(server, clips, interim=False),
            "interim_on": single_stream_phase(server, clips, interim=True),
            "server_log_problems": server.log_problems(),
        }


def offline_phase(clips: Sequence[str]) -> dict[str, Any]:
    """Offline faster-whisper on the same clips in a dedicated process (CPU time from getrusage)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--offline-worker", *clips]
    reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    data = json.loads(reply.stdout.strip().splitlines()[-1])
    refs = manifest()
    data["wer"] = rounded_wer([(refs[name], data["texts"][name]) for name in clips])
    data["cpu_per_audio_s"] = round(data["cpu_s"] / data["audio_s"], 4)
    return data


def offline_worker(clips: Sequence[str]) -> None:
    """Child process: transcribe the clips as the server's model would, print one JSON line."""
    # Same model, device, compute type and thread count as the server (which uses one thread per core).
    model = offline_model(windowed=False, cpu_threads=os.cpu_count() or 1)
    transcribe(model, str(EVAL_DIR / "jfk.flac"), **CLIP_OFFLINE_OPTIONS)  # warm-up, not counted
    texts: dict[str, str] = {}
    audio_s = sum(clip_audio(name).shape[0] / RATE for name in clips)

    cpu_before, wall_before = own_cpu_seconds(), time.monotonic()
    for name in clips:
        texts[name] = transcribe(model, str(EVAL_DIR / name), **CLIP_OFFLINE_OPTIONS)
    cpu_s, wall_s = own_cpu_seconds() - cpu_before, time.monotonic() - wall_before
    print(json.dumps({"texts": texts, "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3), "audio_s": audio_s}))


def real_record_figures(records: Sequence[StreamRecord], references: Sequence[str]) -> dict[str, Any]:
    revised, with_stable = (sum(x) for x in zip(*(r.stable_text_revisions() for r in records), strict=True))
    finals = [f for r in records for f in r.finals]
    return {
        **corpus_errors([(ref, r.text()) for ref, r in zip(references, records, strict=True)]).figures(),
        "duplicated_runs": repeated_runs([f["text"] for f in finals], " ".join(references)),
        "flags": {
            flag: sum(flag in f["flags"] for f in finals) for flag in sorted({x for f in finals for x in f["flags"]})
        },
        "stable_text_revised": revised,
        "finals_with_stable_text": with_stable,
        **stream_figures(records),
    }


def real_speech_phase(server: ServerProcess, alone_concurrency: int, limit: int) -> dict[str, Any]:
    """Real recordings (../shared/eval/real): joined into one captioning stream, and each streamed alone.

    Real-time pace, 100 ms messages, word timings on, partials on then off. Alone, several recordings
    stream at once (each at real-time pace) to keep the run short: their WER does not depend on load.
    """
    names = [row["file"] for row in real_manifest(limit)]
    joined = join_recordings(names, REAL_PAUSE_S)
    pcm, reference = to_pcm16(joined.audio), joined.reference
    out: dict[str, Any] = {"recordings": len(names), "audio_s": round(len(pcm) / 2 / RATE, 1)}
    for interim in (True, False):
        mode = "interim_on" if interim else "interim_off"
        print(f"real speech, continuous [{mode}]: {out['audio_s']} s", file=sys.stderr)
        audio = pcm + silence(TAIL_SILENCE_S)
        timeout_s = len(audio) / 2 / RATE + 300.0
        record = asyncio.run(run_stream(server.address, audio, interim, timeout_s=timeout_s, word_timestamps=True))
        figures = real_record_figures([record], [reference])
        figures["words_after_speech"] = sum(
            1 for f in record.finals for start, end in f["words"] if not joined.spoken((start + end) / 2)
        )
        out[f"continuous_{mode}"] = figures

        print(f"real speech, each alone [{mode}], {alone_concurrency} at a time", file=sys.stderr)

        async def alone(interim: bool = interim) -> list[StreamRecord]:
            gate = asyncio.Semaphore(alone_concurrency)

            async def one(name: str) -> StreamRecord:
                async with gate:
                    audio = to_pcm16(real_audio(name)) + silence(TAIL_SILENCE_S)
                    return await run_stream(server.address, audio, interim, word_timestamps=True)

            return list(await asyncio.gather(*(one(name) for name in names)))

        records = asyncio.run(alone())
        figures = real_record_figures(records, joined.references)
        figures.pop("final_latency_s")  # concurrent streams: latency is the continuous stream's figure
        out[f"alone_{mode}"] = figures
    return out


def real_limit(args: argparse.Namespace) -> int:
    return QUICK_REAL_RECORDINGS if args.quick else args.real_recordings


def real_speech_phases(
    server_args: Sequence[str], args: argparse.Namespace, log_name: str, results_dir: Path
) -> dict[str, Any]:
    """The real-speech phase on a fresh server."""
    with bench_server(server_args, log_name, results_dir) as server:
        warm_up(server)
        out = real_speech_phase(server, args.real_alone_concurrency, real_limit(args))
        out["server_log_problems"] = server.log_problems()
        return out


def offline_real_phase(limit: int) -> dict[str, Any]:
    """Offline faster-whisper on the joined real stream and on each recording alone, in each of the
    harness's OFFLINE_VARIANTS (as a user runs it with beam 1 and 5, and with the server's settings)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--offline-real-worker", str(limit)]
    reply = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    data = json.loads(reply.stdout.strip().splitlines()[-1])
    references = [row["reference"] for row in real_manifest(limit)]
    result: dict[str, Any] = {}
    for variant in OFFLINE_VARIANTS:
        texts = data[variant]
        result[f"continuous_{variant}"] = corpus_errors([(" ".join(references), texts["continuous"])]).figures()
        result[f"continuous_{variant}"]["duplicated_runs"] = repeated_runs([texts["continuous"]], " ".join(references))
        result[f"alone_{variant}"] = corpus_errors(list(zip(references, texts["alone"], strict=True))).figures()
    return result


def offline_real_worker(limit: int) -> None:
    """Child process: offline faster-whisper on the real recordings (see offline_real_phase); one JSON line."""
    threads = os.cpu_count() or 1
    models = {windowed: offline_model(windowed, threads) for windowed in (False, True)}
    names = [row["file"] for row in real_manifest(limit)]
    # What the server is sent: LINEAR16.
    continuous = from_pcm16(to_pcm16(join_recordings(names, REAL_PAUSE_S).audio))
    alone = [from_pcm16(to_pcm16(real_audio(name))) for name in names]
    out = {}
    for variant, (windowed, _) in OFFLINE_VARIANTS.items():
        model = models[windowed]
        out[variant] = {
            "continuous": offline_transcript(continuous, variant, model),
            "alone": [offline_transcript(audio, variant, model) for audio in alone],
        }
    print(json.dumps(out))


def capacity_phase(
    label: str,
    server_args: Sequence[str],
    clips: Sequence[str],
    steps: Sequence[int],
    seconds: float,
    budget_s: float,
    results_dir: Path,
) -> dict[str, Any]:
    """Step N concurrent real-time streams (interim on) until a step fails or the time budget is spent."""
    refs = manifest()
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    capacity = 0
    with bench_server([*server_args, "--max-streams", str(max(steps) + 4)], label, results_dir) as server:
        warm_up(server)
        for n in steps:
            if time.monotonic() - started > budget_s:
                results.append({"n": n, "skipped": "time budget spent"})
                break
            lists = [playlist(clips, k, seconds) for k in range(n)]
            background = Background(server.pid)
            cpu_before = server.cpu_seconds()

            async def run_all(lists: list[tuple[bytes, list[str]]] = lists) -> list[StreamRecord]:
                # Staggered starts: real clients are not in lockstep.
                return await asyncio.gather(
                    *(run_stream(server.address, audio, True, (k * 0.37) % 1.0) for k, (audio, _) in enumerate(lists))
                )

            records = asyncio.run(run_all())
            audio_s = sum(len(audio) / 2 / RATE for audio, _ in lists)
            cpu = server.cpu_seconds() - cpu_before
            figures = stream_figures(records)
            p95 = figures["final_latency_s"]["p95"]
            passed = (
                not figures["errors"]
                and p95 is not None
                and p95 <= CAPACITY_P95_LATENCY_S
                and figures["max_drain_s"] <= CAPACITY_DRAIN_S
                and figures["max_send_slip_s"] <= CAPACITY_MAX_SLIP_S
            )
            pairs = [(" ".join(refs[x] for x in names), r.text()) for (_, names), r in zip(lists, records, strict=True)]
            results.append(
                {
                    "n": n,
                    "passed": passed,
                    **figures,
                    "wer": rounded_wer(pairs),
                    "cpu_per_audio_s": round(cpu / audio_s, 4),
                    "background_cores": background.cores(),
                }
            )
            print(
                f"  capacity[{label}] N={n}: {'pass' if passed else 'FAIL'} final p95={p95} "
                f"drain={figures['max_drain_s']} partial gap p95={figures['partial_gap_s']['p95']} "
                f"background={results[-1]['background_cores']} cores",
                file=sys.stderr,
            )
            if not passed:
                break
            capacity = n
        problems = server.log_problems()
    captioning = 0
    for step in results:
        gap = step.get("partial_gap_s", {}).get("p95")
        if not step.get("passed") or gap is None or gap > CAPTION_PARTIAL_GAP_S:
            break
        captioning = step["n"]
    return {
        "server_args": list(server_args),
        "capacity": capacity,
        "captioning_capacity": captioning,
        "capped": bool(results) and results[-1].get("passed", False) and capacity == max(steps),
        "steps": results,
        "seconds_per_client": seconds,
        "server_log_problems": problems,
    }


def whisperlive_phase(clips: Sequence[str], results_dir: Path, refs: dict[str, str] | None = None) -> dict[str, Any]:
    """scripts/bench_whisperlive.py in its own venv; WER is scored here with the same normaliser."""
    python = ROOT / ".venv-whisperlive" / "bin" / "python"
    if not python.exists():
        return {"error": f"{python} not found: run scripts/whisperlive_setup.sh"}
    out = results_dir / "whisperlive-raw.json"
    command = [str(python), str(ROOT / "scripts" / "bench_whisperlive.py"), "--json", str(out), "--clips", *clips]
    reply = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if reply.returncode != 0:
        return {"error": f"exit {reply.returncode}: {reply.stderr[-3000:]}"}
    data = json.loads(out.read_text())
    refs = refs or manifest()
    data["wer"] = rounded_wer([(refs[name], data["per_clip"][name]["text"]) for name in clips])
    # What its own client shows at the end: the completed segments plus the last, never completed one.
    data["wer_with_pending"] = rounded_wer([(refs[n], data["per_clip"][n]["text_with_pending"]) for n in clips])
    return data


def whisperlive_real_phase(limit: int, results_dir: Path) -> dict[str, Any]:
    """WhisperLive on the continuous real stream, written to a WAV file for its client."""
    import wave

    joined = join_recordings([row["file"] for row in real_manifest(limit)], REAL_PAUSE_S)
    pcm, references = to_pcm16(joined.audio), joined.references
    path = results_dir / "real-continuous.wav"
    results_dir.mkdir(exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    data = whisperlive_phase([str(path.resolve())], results_dir, {str(path.resolve()): " ".join(references)})
    if "error" not in data:
        texts = data["per_clip"][str(path.resolve())]
        data["errors"] = corpus_errors([(" ".join(references), texts["text_with_pending"])]).figures()
        data["duplicated_runs"] = repeated_runs([texts["text_with_pending"]], " ".join(references))
    return data


# -- report --------------------------------------------------------------------------------------------------
def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def spread(stats: dict[str, Any], keys: Sequence[str] = ("p50", "p95", "max")) -> str:
    return " / ".join(fmt(stats[k]) for k in keys) + " s"


def report(result: dict[str, Any]) -> str:
    meta, single = result["meta"], result.get("single_stream", {})
    endpoint = meta["endpoint_silence_ms"] / 1000
    rows: list[tuple[str, str, str]] = []
    real = result.get("real", {})
    offline = real.get("offline", {})

    def errs(e: dict[str, Any]) -> str:
        return f"{fmt(e['wer'])} (S {e['substitutions']} D {e['deletions']} I {e['insertions']})"

    for shape in ("continuous", "alone"):
        for mode in ("interim_on", "interim_off"):
            r = real.get(f"{shape}_{mode}")
            if not r:
                continue
            base, same = offline.get(f"{shape}_beam1"), offline.get(f"{shape}_server")
            note = f"offline beam 1 {errs(base)}: ratio {fmt(ratio(r['wer'], base['wer']))}" if base else ""
            if same:
                note += f"; server settings {errs(same)}: ratio {fmt(ratio(r['wer'], same['wer']))}"
            rows.append((f"real {shape} WER [{mode}]", errs(r), note))
            extra = f"duplicated runs {len(r['duplicated_runs'])}"
            if "words_after_speech" in r:
                extra += f", words in pauses {r['words_after_speech']}"
            if r["finals_with_stable_text"]:
                extra += f", stable text revised {r['stable_text_revised']}/{r['finals_with_stable_text']}"
            rows.append((f"real {shape} checks [{mode}]", extra, f"flags {r['flags']}"))
            if "final_latency_s" in r:
                target = f"p50 <= {endpoint + 0.5:.1f}, p95 <= {endpoint + 1.0:.1f}"
                rows.append((f"real {shape} final latency p50/p95/max [{mode}]", spread(r["final_latency_s"]), target))
            if mode == "interim_on":
                rows.append(
                    (
                        f"real {shape} partial gap / first partial p50",
                        f"{fmt(r['partial_gap_s']['p50'])} / {fmt(r['first_partial_s']['p50'])} s",
                        "",
                    )
                )
    for key in ("continuous_beam5", "alone_beam5"):
        if key in offline:
            rows.append((f"real offline {key.replace('_', ' ')}", errs(offline[key]), ""))
    wl_real = real.get("whisperlive")
    if wl_real and "errors" in wl_real:
        rows.append(
            (
                "real continuous WhisperLive",
                errs(wl_real["errors"]),
                f"latency p50/p95 {spread(wl_real['final_latency_s'], ('p50', 'p95'))}",
            )
        )
    for mode in ("interim_off", "interim_on"):
        if mode not in single:
            continue
        s = single[mode]
        target = f"p50 <= {endpoint + 1.0:.1f} s (endpoint {endpoint:.1f} s + 1.0)"
        rows.append((f"final latency p50/p95/max [{mode}]", spread(s["final_latency_s"]), target))
        if s["interim_results"]:
            interval = f"interval {meta['partial_interval_ms']} ms"
            rows.append(("partial gap p50/p95/max", spread(s["partial_gap_s"]), interval))
            rows.append(("time to first partial p50/p95/max", spread(s["first_partial_s"]), "from utterance start"))
        rows.append((f"WER streamed [{mode}]", fmt(s["wer"]), ""))
        rows.append(
            (
                f"server CPU s / audio s [{mode}]",
                fmt(s["cpu_per_audio_s"]),
                f"background load {s['background_cores']} cores",
            )
        )
    comp = result.get("comparison", {})
    if "offline" in result:
        rows.append(("WER offline faster-whisper", fmt(result["offline"]["wer"]), ""))
        rows.append(("offline CPU s / audio s", fmt(result["offline"]["cpu_per_audio_s"]), ""))
        off_on = [fmt(comp.get(f"wer_ratio_{m}")) for m in ("interim_off", "interim_on")]
        rows.append(("WER ratio streamed/offline off / on", " / ".join(off_on), "<= 1.10"))
        off_on = [fmt(comp.get(f"cpu_ratio_{m}")) for m in ("interim_off", "interim_on")]
        rows.append(("compute ratio vs offline off / on", " / ".join(off_on), "interim off <= 1.30"))
    capacity = result.get("capacity", {})
    for label, cap in capacity.items():
        if isinstance(cap, dict):
            steps = " ".join(f"{s['n']}:{'ok' if s.get('passed') else 'x'}" for s in cap["steps"])
            value = f"{cap['capacity']}{'+' if cap['capped'] else ''} ({cap['captioning_capacity']}) streams"
            rows.append((f"capacity [{label}]", value, f"{shlex.join(cap['server_args'])}  ({steps})"))
    if "batching_ratio" in capacity:
        rows.append(("capacity ratio batching on/off", fmt(capacity["batching_ratio"]), ""))
    for step in result.get("isolation", {}).get("steps", []):
        latency = step["victim_final_latency_s"]
        ended = ", ".join(f"{a['kind']}: {a['ended']}" for a in step["abusers"]) or "no abusers"
        rows.append(
            (
                f"isolation: victim beside {'+'.join(step['abuser_kinds']) or 'nobody'}",
                f"p50/p95 {fmt(latency['p50'])} / {fmt(latency['p95'])} s, ratio {fmt(step.get('p95_ratio_to_alone'))}",
                f"victim errors {len(step['victim_errors'])}; abusers ended {ended}",
            )
        )
    wl = result.get("whisperlive")
    if wl and "error" in wl:
        rows.append(("WhisperLive", "error", wl["error"][:100]))
    elif wl:
        rows.append(("WhisperLive final latency p50/p95/max", spread(wl["final_latency_s"]), "completed segments"))
        rows.append(("WhisperLive WER completed / +pending", f"{fmt(wl['wer'])} / {fmt(wl['wer_with_pending'])}", ""))
        rows.append(("WhisperLive update gap p50/p95/max", spread(wl["update_gap_s"]), "any segment message"))
        rows.append(("WhisperLive CPU s / audio s", fmt(wl["cpu_per_audio_s"]), ""))
    rows += base_rows(result)
    width = max((len(r[0]) for r in rows), default=10)
    vwidth = max((len(r[1]) for r in rows), default=10)
    return "\n".join(f"{name:<{width}}  {value:<{vwidth}}  {note}".rstrip() for name, value, note in rows)


def base_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """base-embedded beside tiny.en, figure by figure (--compare-base)."""
    base = result.get("base")
    if not base:
        return []
    rows = [(f"--- {BASE_MODEL} (tiny.en in the note)", "", shlex.join(base["server_args"]))]
    for shape in ("continuous", "alone"):
        for mode in ("interim_on", "interim_off"):
            b, t = base.get("real", {}).get(f"{shape}_{mode}"), result.get("real", {}).get(f"{shape}_{mode}")
            if b:
                rows.append((f"real {shape} WER [{mode}]", fmt(b["wer"]), f"tiny.en {fmt(t and t['wer'])}"))
    for mode in ("interim_off", "interim_on"):
        b, t = base["single_stream"][mode], result["single_stream"][mode]
        rows.append((f"WER streamed [{mode}]", fmt(b["wer"]), f"tiny.en {fmt(t['wer'])}"))
        rows.append(
            (
                f"final latency p50/p95 [{mode}]",
                spread(b["final_latency_s"], ("p50", "p95")),
                f"tiny.en {spread(t['final_latency_s'], ('p50', 'p95'))}",
            )
        )
        rows.append(
            (f"server CPU s / audio s [{mode}]", fmt(b["cpu_per_audio_s"]), f"tiny.en {fmt(t['cpu_per_audio_s'])}")
        )
        rows.append((f"finals by language [{mode}]", str(b["final_languages"]), "English clips"))
    detection = base["language_detection_ms"]
    rows.append(("language detection, ms per final / partial", f"{detection['final']} / {detection['partial']}", ""))
    cap, tiny = base.get("capacity"), result.get("capacity", {})
    if cap:
        tiny_cap = tiny.get("default") or tiny.get("batching_off")
        note = f"tiny.en {tiny_cap['capacity']} ({tiny_cap['captioning_capacity']})" if tiny_cap else ""
        rows.append(("capacity (captioning)", f"{cap['capacity']} ({cap['captioning_capacity']}) streams", note))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", help="eval clips for latency/WER/compute (default: a 7-clip set)")
    parser.add_argument("--max-n", type=int, default=32, help="largest concurrent stream count tried")
    parser.add_argument("--capacity-seconds", type=float, default=25.0, help="least audio per client per step")
    parser.add_argument("--capacity-budget-s", type=float, default=900.0, help="stop stepping a config after this")
    parser.add_argument("--quick", action="store_true", help="tiny run (1 short clip, N=1) for smoke tests")
    parser.add_argument("--server-args", default="", help="extra server flags for every server (one string)")
    parser.add_argument("--batching-on-args", default="--max-batch-size 8 --batch-wait-ms 20")
    parser.add_argument("--batching-off-args", default="--max-batch-size 1")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where JSON and server logs go")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--skip-batching", action="store_true", help="capacity with the server's default batching only")
    parser.add_argument("--whisperlive", action="store_true", help="also run scripts/bench_whisperlive.py")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-speech phase (../shared/eval/real)")
    parser.add_argument("--real-alone-concurrency", type=int, default=4, help="recordings streamed at once, alone")
    parser.add_argument("--offline-worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--real-recordings", type=int, default=0, help="only the N shortest real recordings (0: all)")
    parser.add_argument("--offline-real-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--isolation", action="store_true", help="also run scripts/bench_isolation.py (a victim beside abusers)"
    )
    parser.add_argument("--isolation-seconds", type=float, default=60.0, help="the victim's audio per isolation step")
    parser.add_argument(
        "--compare-base",
        action="store_true",
        help=f"also run the real-speech, single-stream and capacity phases on {BASE_MODEL}, beside tiny.en",
    )
    args = parser.parse_args(argv)
    results_dir: Path = args.results_dir
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the servers started here are stopped
    if args.offline_worker:
        offline_worker(args.offline_worker)
        return 0
    if args.offline_real_worker is not None:
        offline_real_worker(args.offline_real_worker)
        return 0

    clips = args.clips or (QUICK_CLIPS if args.quick else DEFAULT_CLIPS)
    missing = [c for c in clips if c not in manifest()]
    if missing:
        parser.error(f"not in {EVAL_DIR}/manifest.tsv: {', '.join(missing)}")
    max_n = 1 if args.quick else args.max_n
    steps = [n for n in CAPACITY_STEPS if n <= max_n]
    seconds = 4.0 if args.quick else args.capacity_seconds
    capacity_clips = clips if args.quick else DEFAULT_CLIPS[1:]  # the single utterance-rich clips rotate well
    server_args = shlex.split(args.server_args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    git_status = subprocess.run(["git", "status", "--porcelain", "app"], capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = {
        "meta": {
            "timestamp": stamp,
            "git_commit": commit.stdout.strip(),
            "app_dirty": bool(git_status.stdout),
            "cpu_count": os.cpu_count(),
            "server_args": server_args,
            "endpoint_silence_ms": flag_value(server_args, "--endpoint-silence-ms", 500),
            "partial_interval_ms": flag_value(server_args, "--partial-interval-ms", 700),
            "chunk_ms": CHUNK_MS,
            "tail_silence_s": TAIL_SILENCE_S,
            "clips": clips,
            "real_recordings": QUICK_REAL_RECORDINGS if args.quick else args.real_recordings or "all",
            "quick": args.quick,
            "compare_base": args.compare_base,
            "capacity_criteria": {
                "final_latency_p95_s": CAPACITY_P95_LATENCY_S,
                "drain_s": CAPACITY_DRAIN_S,
                "send_slip_s": CAPACITY_MAX_SLIP_S,
                "captioning_partial_gap_p95_s": CAPTION_PARTIAL_GAP_S,
            },
        }
    }
    started = time.monotonic()

    if not args.skip_real:
        limit = real_limit(args)
        result["real"] = real_speech_phases(server_args, args, "real", results_dir)
        if not args.skip_offline:
            print("offline faster-whisper on the real recordings", file=sys.stderr)
            result["real"]["offline"] = offline_real_phase(limit)
        if args.whisperlive:
            print("WhisperLive on the continuous real stream", file=sys.stderr)
            result["real"]["whisperlive"] = whisperlive_real_phase(limit, results_dir)

    print(f"single stream: {len(clips)} clips, interim off then on", file=sys.stderr)
    result["single_stream"] = single_stream_phases(server_args, clips, "single", results_dir)

    comparison: dict[str, Any] = {}
    if not args.skip_offline:
        print("offline faster-whisper", file=sys.stderr)
        result["offline"] = offline_phase(clips)
        for mode in ("interim_off", "interim_on"):
            s = result["single_stream"][mode]
            comparison[f"wer_ratio_{mode}"] = ratio(s["wer"], result["offline"]["wer"])
            comparison[f"cpu_ratio_{mode}"] = ratio(s["cpu_per_audio_s"], result["offline"]["cpu_per_audio_s"])
    result["comparison"] = comparison

    if not args.skip_capacity:
        configs = {"default": []} if args.skip_batching else {
            "batching_off": shlex.split(args.batching_off_args),
            "batching_on": shlex.split(args.batching_on_args),
        }  # fmt: skip
        result["capacity"] = {}
        for label, extra in configs.items():
            print(f"capacity [{label}]: steps {steps}", file=sys.stderr)
            result["capacity"][label] = capacity_phase(
                label, [*server_args, *extra], capacity_clips, steps, seconds, args.capacity_budget_s, results_dir
            )
        if not args.skip_batching:
            cap = result["capacity"]
            result["capacity"]["batching_ratio"] = ratio(
                cap["batching_on"]["capacity"], cap["batching_off"]["capacity"]
            )

    if args.compare_base:
        result["base"] = base_phase(server_args, clips, capacity_clips, steps, seconds, args, results_dir)

    if args.isolation:
        print("isolation: a real-time victim beside abusive clients", file=sys.stderr)
        result["isolation"] = isolation_phase(server_args, args.isolation_seconds, results_dir)

    if args.whisperlive:
        print("WhisperLive", file=sys.stderr)
        result["whisperlive"] = whisperlive_phase(clips, results_dir)

    single = result["single_stream"]
    endpoint = result["meta"]["endpoint_silence_ms"] / 1000
    p50 = single["interim_off"]["final_latency_s"]["p50"]
    result["targets"] = {
        "single_stream_final_p50_le_endpoint_plus_1s": None if p50 is None else p50 <= endpoint + 1.0,
        "wer_ratio_le_1_10": within(
            [(single[m]["wer"], result.get("offline", {}).get("wer")) for m in ("interim_off", "interim_on")], 1.10
        ),
        "cpu_interim_off_le_1_3x_offline": within(
            [(single["interim_off"]["cpu_per_audio_s"], result.get("offline", {}).get("cpu_per_audio_s"))], 1.3
        ),
    }
    result["meta"]["bench_seconds"] = round(time.monotonic() - started, 1)

    results_dir.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2)
    path = results_dir / f"bench-{stamp}.json"
    path.write_text(text)
    (results_dir / "latest.json").write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(report(result))
    print(f"\nJSON: {path}  (also {results_dir / 'latest.json'}); {result['meta']['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Isolation benchmark: an honest real-time stream beside abusive clients on the same server.

The victim streams eval clips at real-time pace with partials on (a captioning client), once
alone and then beside 1 and 4 abusers. Each abuser streams, as fast as 50x real time, one of:
- `noise`: loud white noise, which the VAD takes for speech: 25 s forced cuts that Whisper
  decodes slowly (temperature fallback through every temperature);
- `speech`: the eval clips with their pauses, 50x faster than they were spoken;
- `forced_cuts`: two clips mixed into continuous babble with no pause, so every utterance is cut
  at 25 s.
An abuser that the server ends (RESOURCE_EXHAUSTED, with its retry hint) reconnects after the hint,
as a careless client would, until the victim is done.

Reported per step: the victim's final latency p50 / p95 and its ratio to the victim alone (the
target is at most 2x), the victim's errors (it must get none while it keeps real time), and what
the abusers got (finals, and the statuses that ended their streams).

With --soak-minutes N, a soak instead: 3 honest real-time captioning streams, each restarting
with fresh audio as it ends, for N minutes, beside 6 abusers at once:
- `noise` and `speech` at 50x, as above;
- `cancel`: speech at 20x with partials and word timings, the call cancelled after a random
  0.5-6 s and opened again at once;
- `trickle`: a config and then 2 bytes of audio every 0.5 s, which the server ends with
  DEADLINE_EXCEEDED ("real time") after --audio-pace-window-s (30 s); it reconnects after 1 s;
- `compat_trickle`: the same on the original AudioTranscriberService;
- `config_flood`: speech at 10x in 100 ms messages, each followed by a config update (interim
  results toggled), every update answered by a ConfigUpdate.
Every 10 s it samples the server's RSS, open file descriptors and threads, and from /metrics
hws_scheduler_streams and hws_active_streams. It checks that every honest stream got exactly the
finals its audio calls for (the server's own segmenter, run here) with no error, and that the
server stays flat: after a warm-up (the first minute, or a fifth of a shorter soak), the last
third of the samples against the first, RSS within +10 % or +30 MiB, fds and threads within +5,
the scheduler's streams never above the 9 concurrent clients, and none open or scheduled once the
clients are done. Results in bench-results/soak.json; a summary on stderr; exit status 1 when a
check fails.

Run: .venv/bin/python scripts/bench_isolation.py [--seconds 60] [--soak-minutes 10]
(the isolation steps also run from scripts/bench.py --isolation)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The isolation steps and the soak live in the benchmark library (scripts/bench.py --isolation runs the steps too).
from scripts.benchlib import DEFAULT_RESULTS_DIR, isolation_phase, soak_phase  # noqa: E402
from scripts.benchlib.isolation import soak_summary  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="the victim's audio per step")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="run the soak for this long instead")
    parser.add_argument("--json", type=Path, default=DEFAULT_RESULTS_DIR / "isolation.json")
    args = parser.parse_args()
    if args.soak_minutes:
        result = soak_phase([], args.soak_minutes, DEFAULT_RESULTS_DIR)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.with_name("soak.json").write_text(json.dumps(result, indent=2))
        for h in result["honest_runs"]:
            print(
                f"honest client {h['client']} run {h['run']}: {h['finals']} finals, all: {h['all_finals']}, "
                f"p95 {h['final_latency_p95_s']} s, error {h['error']}"
            )
        print("\n".join(soak_summary(result)), file=sys.stderr)
        return 0 if result["honest_ok"] and result["verdict"]["flat"] else 1
    result = isolation_phase([], args.seconds, DEFAULT_RESULTS_DIR)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    for s in result["steps"]:
        print(
            f"{'+'.join(s['abuser_kinds']) or 'alone':42s} victim final p50/p95 "
            f"{s['victim_final_latency_s']['p50']} / {s['victim_final_latency_s']['p95']} s"
            f"  ratio {s.get('p95_ratio_to_alone', '-')}  victim errors {len(s['victim_errors'])}"
            f"  abusers ended {[a['ended'] for a in s['abusers']]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

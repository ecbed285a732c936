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
with fresh audio as it ends, beside 2 abusers (noise and speech at 50x) for N minutes; reports
the server's RSS, open file descriptors and threads every 10 s, and checks that every honest
stream got exactly the finals its audio calls for (the server's own segmenter, run here).

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
        first, last = result["process"][0], result["process"][-1]
        print(f"process first {first} last {last}; abusers ended {[a['ended'] for a in result['abusers']]}")
        print(f"every honest final delivered, no honest error: {result['honest_ok']}")
        return 0
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

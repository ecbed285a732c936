"""ITU-T G.711 mu-law, written from the Recommendation as plain integer arithmetic.

A reference for the server's table-driven decoder (app/hws/audio.py) and the encoder of the tests'
MULAW audio; `audioop`, which the tests used before, is gone from Python 3.13.

A code is sent with every bit inverted; inverted, it is a sign bit (1: negative), a 3-bit segment s
and a 4-bit step q. In 14-bit units, segment s holds the biased magnitudes 2**(s+5) .. 2**(s+6) - 1
(bias 33) in 16 steps of 2**(s+1), and a code decodes to the middle of its step:
(2q + 33) * 2**s - 33. 16-bit samples are those times 4.
"""

from __future__ import annotations

import struct

BIAS = 33
TOP = 2**13 - 1  # the largest biased magnitude, in segment 7's last step: larger ones are clipped to it


def ulaw_to_linear(code: int) -> int:
    """The 16-bit sample a mu-law code stands for."""
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x07
    step = inverted & 0x0F
    magnitude = ((2 * step + BIAS) * 2**segment - BIAS) * 4
    return -magnitude if inverted & 0x80 else magnitude


def linear_to_ulaw(sample: int) -> int:
    """The mu-law code of a 16-bit sample (its 14 top bits, as G.711 encodes them)."""
    value = sample >> 2
    magnitude = min(abs(value) + BIAS, TOP)
    segment = magnitude.bit_length() - 6  # 2**(segment + 5) <= magnitude < 2**(segment + 6)
    step = (magnitude >> (segment + 1)) & 0x0F
    return ((segment << 4) | step) ^ (0x7F if value < 0 else 0xFF)


def encode(pcm16: bytes) -> bytes:
    """Little-endian 16-bit PCM to mu-law, a byte per sample."""
    return bytes(linear_to_ulaw(sample) for (sample,) in struct.iter_unpack("<h", pcm16))


def decode(codes: bytes) -> list[int]:
    """Mu-law codes to 16-bit samples."""
    return [ulaw_to_linear(code) for code in codes]

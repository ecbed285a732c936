"""Fault injection, a testing aid: a Backend wrapper that fails or stalls the decodes that ask for it.

Only requests whose prompt holds FAULT_MARKER are touched, so a test picks its victims and every other
stream decodes as usual. The scheduler never knows: it sees a backend whose decode raised or ran long.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hws.asr.types import Backend, DecodeRequest, DecodeResult, ModelInfo

FAULT_MARKER = "HWS-FAULT"


class InjectedFault(RuntimeError):
    """Raised by the fault-injection testing aid, never otherwise."""


class FaultInjectingBackend:
    """`inner`, except that a marked decode raises InjectedFault ("raise") or first sleeps ("hang:SECONDS")."""

    def __init__(self, inner: Backend, mode: str) -> None:
        self.inner = inner
        self.mode = mode
        self.language_codes = inner.language_codes

    @property
    def workers(self) -> int:
        return self.inner.workers

    @property
    def max_batch_size(self) -> int:
        return self.inner.max_batch_size

    def load(self) -> ModelInfo:
        return self.inner.load()

    def prompt(self, initial_prompt: str, hotwords: Sequence[str]) -> str | None:
        return self.inner.prompt(initial_prompt, hotwords)

    def features(self, audio: Any) -> Any:
        return self.inner.features(audio)

    def window(self, features: Any, padding_s: float) -> int:
        return self.inner.window(features, padding_s)

    def encode(self, features: Sequence[Any], frames: int) -> list[Any]:
        return self.inner.encode(features, frames)

    def decode(self, request: DecodeRequest, features: Any, encoder_output: Any) -> DecodeResult:
        if FAULT_MARKER in (request.options.prompt or ""):
            if self.mode == "raise":
                raise InjectedFault("injected decode failure (fault_injection=raise)")
            time.sleep(float(self.mode.split(":", 1)[1]))
        return self.inner.decode(request, features, encoder_output)

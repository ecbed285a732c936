"""Builds and runs the grpc.aio server: servicers, health, reflection, metrics, signals and draining.

Start-up: settings that can be checked are (a model folder that does not
exist, CUDA without a device, a port in use: one line, exit status 2); the
port opens at once with health NOT_SERVING, the model loads in a thread
then health turns SERVING. A model that fails to load (a download with no
network) stops the server with the reason in one line, exit status 2; with
--model-load-wait true it is retried with backoff instead, the reason logged
and told to clients. SIGTERM or SIGINT: health NOT_SERVING, new streams refused,
open streams stop reading, receive the finals for the audio they sent and end
with UNAVAILABLE; the process exits once they are done or the grace period
has passed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from threadpoolctl import threadpool_info, threadpool_limits

from hws import logs, metrics
from hws.asr.faults import FaultInjectingBackend
from hws.asr.scheduler import Engine, SchedulerSettings
from hws.asr.types import Backend
from hws.asr.whisper.backend import (
    DeviceUnusable,
    ModelSettingError,
    WhisperBackend,
    WhisperSettings,
    check_model_settings,
)
from hws.asr.whisper.embedded import NAMES as EMBEDDED_MODELS
from hws.gen.hws.transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
from hws.server import emf
from hws.server.auth import ApiKeyInterceptor, api_keys
from hws.server.compat import add_compat_services
from hws.server.grpc_metrics import MetricsInterceptor
from hws.server.health import BoundedHealthServicer
from hws.server.metrics_http import MetricsServer
from hws.server.readiness import ServingState
from hws.server.reflection import add_reflection
from hws.server.servicer import TranscriberServicer
from hws.server.sessions import SessionFactory
from hws.server.settings import ConfigError, Settings, changed_settings, load_settings, setting_error, version
from hws.tls import server_credentials

log = structlog.get_logger("hws.server")

TRANSCRIBER_SERVICE = transcriber_pb2.DESCRIPTOR.services_by_name["Transcriber"].full_name
MODEL_RETRY_MAX_S = 60.0


class StartupError(RuntimeError):
    """The server cannot start (a port in use): said in one line, exit status 2."""


def grpc_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Ping idle connections so half-open ones (a client gone behind a load balancer) are noticed.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC sets SO_REUSEPORT by default: a second server would share the port silently.
        ("grpc.so_reuseport", 0),
    ]


class TranscriptionServer:
    """One server: the gRPC services, health and metrics around one engine, its model load and its drain."""

    def __init__(
        self,
        settings: Settings,
        keys: list[str] | None = None,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        backend: Backend = WhisperBackend(settings.pick(WhisperSettings))
        if settings.fault_injection:
            backend = FaultInjectingBackend(backend, settings.fault_injection)
        self.engine = Engine(settings.pick(SchedulerSettings), backend)
        self.health = BoundedHealthServicer()
        self.state = ServingState(settings.max_streams, on_change=self._set_health)
        self.sessions = SessionFactory(settings, self.engine, self.state)
        # The first interceptor is the outermost: metrics also count the calls the key check refuses.
        interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor()]
        self.auth = ApiKeyInterceptor(keys) if keys is not None else None
        if self.auth is not None:
            interceptors.append(self.auth)
        self.server = grpc.aio.server(interceptors=interceptors, options=grpc_options(settings))
        self._stopped = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self.fatal: StartupError | None = None  # set when the server must stop as a bad setting would
        self._emf: asyncio.Task[None] | None = None
        self.metrics_server = MetricsServer()

    async def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", TRANSCRIBER_SERVICE):
            await self.health.set(service, status)
        metrics.READY.set(1 if serving else 0)

    async def start(self, starting: Mapping[str, object] | None = None) -> int:
        """Bind both ports, log `starting` (these fields) once they are bound, then serve and load the model.

        A port that cannot be bound raises StartupError before anything is logged: its one line is all
        that a failed start writes on stderr.
        """
        transcriber_pb2_grpc.add_TranscriberServicer_to_server(TranscriberServicer(self.sessions), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        await self._set_health(False)
        names = [TRANSCRIBER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        if self.settings.compat:
            names += add_compat_services(self.server, self.sessions)
        if self.settings.reflection:
            add_reflection(names, self.server)
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            if self.credentials is not None:
                port = self.server.add_secure_port(address, self.credentials)
            else:
                port = self.server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(
                f"cannot listen for gRPC on {address}: the port is in use, or the address is not this host's"
            )
        if self.settings.metrics_port:
            metrics_address = (self.settings.metrics_host or self.settings.host, self.settings.metrics_port)
            try:
                await self.metrics_server.start(*metrics_address)
            except OSError as exc:
                raise StartupError(
                    f"cannot serve metrics on {metrics_address[0]}:{metrics_address[1]}: {exc.strerror or exc}"
                ) from None
        if starting is not None:
            log.info("starting", **starting)
        await self.server.start()
        log.info("listening", grpc_port=port, metrics_port=self.settings.metrics_port, version=version())
        self._loop = asyncio.get_running_loop()
        self.engine.on_stall = self._engine_stalled
        self._loader = asyncio.create_task(self._load_model())
        self._emf = emf.start(self.settings)
        return port

    def _engine_stalled(self, stalled: bool) -> None:
        """From the watchdog thread: health follows the engine."""

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self.state.set_stalled(stalled)))

    async def _load_model(self) -> None:
        delay = 1.0
        while not self.state.draining:
            try:
                info = await asyncio.to_thread(self.engine.load)
            except DeviceUnusable as exc:  # no retry heals it: stop, as a bad setting does
                log.error("model_load_failed", model=self.settings.model, error=str(exc))
                self.fatal = StartupError(f"--device {self.settings.device}: {exc}")
                self.request_drain()
                return
            except Exception as exc:  # a failed download, a model that cannot load
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                if not self.settings.model_load_wait:  # a first run with no network must not wait for ever
                    log.error("model_load_failed", model=self.settings.model, error=reason)
                    self.fatal = StartupError(
                        f"--model {self.settings.model} cannot be loaded ({reason}); the models that need no"
                        f" network: {', '.join(EMBEDDED_MODELS)}; --model-load-wait true retries instead"
                    )
                    self.request_drain()
                    return
                # Waiting: stay NOT_SERVING and retry, as a download can heal.
                await self.state.model_failed(reason)
                log.error(
                    "model_load_failed",
                    model=self.settings.model,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MODEL_RETRY_MAX_S)
                continue
            metrics.BUILD_INFO.labels(
                version=version(), model=info.name, device=info.device, compute_type=info.compute_type
            ).set(1)
            if info.device == "cuda":
                metrics.track_gpu_memory()
            await self.state.model_loaded()
            if not self.state.draining:
                log.info("serving", model=info.name, device=info.device, compute_type=info.compute_type)
            return

    def request_drain(self) -> None:
        if not self.state.draining:
            asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        grace = self.settings.grace_period_s
        log.info("draining", open_streams=self.state.active, grace_period_s=grace)
        await self.state.start_draining()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        try:
            await asyncio.wait_for(self.state.idle.wait(), grace)
        except TimeoutError:
            log.warning("grace_period_over", open_streams=self.state.active)
        await self.server.stop(grace=max(0.0, min(1.0, deadline - loop.time())))
        if self._loader is not None:
            self._loader.cancel()
        if self._emf is not None:
            self._emf.cancel()
        await asyncio.to_thread(self.engine.stop)
        await self.metrics_server.stop()
        if self.auth is not None:  # the refusals not yet summed up in the log
            self.auth.refusals.flush()
        log.info("stopped")
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(
    settings: Settings,
    keys: list[str] | None = None,
    credentials: grpc.ServerCredentials | None = None,
    starting: Mapping[str, object] | None = None,
) -> None:
    server = TranscriptionServer(settings, keys, credentials)
    await server.start(starting)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_drain)
    await server.wait()
    if server.fatal is not None:
        raise server.fatal


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = load_settings(argv)
        try:  # what every load would fail on (a missing folder, no CUDA device)
            check_model_settings(settings.pick(WhisperSettings))
        except ModelSettingError as exc:
            raise setting_error(exc.setting, exc.rule) from None
        keys = api_keys(settings.api_keys_file)  # the file, else HWS_API_KEYS; None: no authentication
        credentials = server_credentials(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
    except (ConfigError, ValueError) as exc:  # a bad setting, or an unusable key file or certificate
        print(f"hws-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(settings.log_format, settings.log_level)
    # numpy's BLAS (OpenBLAS in its wheels) starts a thread per core, which busy-wait between the small
    # matrix products of each decode's features: decodes already run one per core on a CPU and one
    # batch at a time on a GPU, so those threads only burn CPU (docs/benchmarks.md).
    threadpool_limits(limits=1, user_api="blas")
    blas = {lib["internal_api"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    # Logged once the ports are bound: a port in use is then the only line a failed start writes. A summary and
    # the settings changed from their defaults; --help has the defaults.
    metrics_at = f"{settings.metrics_host or settings.host}:{settings.metrics_port}" if settings.metrics_port else "off"
    starting = {
        "version": version(),
        "grpc": f"{settings.host}:{settings.port}",
        "metrics": metrics_at,
        "model": settings.model,
        "device": settings.device,
        "max_streams": settings.max_streams,
        "authentication": keys is not None,
        "tls": credentials is not None,
        "blas_threads": blas,
        "changed": changed_settings(settings),
    }
    try:
        asyncio.run(serve(settings, keys, credentials, starting))
    except StartupError as exc:
        print(f"hws-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

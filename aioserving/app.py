"""Assembling aioserving into an aiohttp application.

``create_app(config)`` returns a ready ``web.Application``; ``setup(app, config)``
mounts the same thing into a host application.  Every long-lived resource is
created inside the running loop by one ``cleanup_ctx`` entry and torn down in
reverse order after its ``yield`` (HOUSE_STYLE §1).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator

import grpc
from aiohttp import web

from .config import (ServerConfig, load_model_server_config, model_configs_from_proto, ModelConfig,
                     VersionPolicy)
from .core import ServingCore
from .errors import Code, ServingError
from .grpc_service import add_services
from .manager import Lease, ManagerOptions, ModelManager, VersionEntry
from .observe import ObserverGroup
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .rest import JSON, RestApi, error_body
from .security import UNAUTHENTICATED_MESSAGE, AuthCheck
from .servable import Servable, load_servable

__all__ = ["Server", "SERVER_KEY", "create_app", "setup"]

log = logging.getLogger(__name__)

_MAX_MESSAGE = 2**31 - 1
_GRPC_FINAL_GRACE_S = 1.0


def _parse_channel_args(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        try:
            out.append((key.strip(), int(value)))
        except ValueError:
            out.append((key.strip(), value.strip()))
    return out


def _configure_tensorflow(config: ServerConfig) -> None:
    import tensorflow as tf

    intra = config.tensorflow_intra_op_parallelism or config.tensorflow_session_parallelism
    inter = config.tensorflow_inter_op_parallelism or config.tensorflow_session_parallelism
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:  # TF already initialised (embedded after other TF use)
        log.warning("TensorFlow runtime already initialised; thread/GPU options not applied: %s", exc)


class Server:
    """Everything one aioserving instance owns at run time."""

    def __init__(self, config: ServerConfig, *, auth_check: AuthCheck | None = None) -> None:
        self.config = config
        self.observer = ObserverGroup()
        self._loop = asyncio.get_running_loop()
        self.draining = False
        self._unloads_in_progress = 0
        self.grpc_server: grpc.aio.Server | None = None
        self.grpc_port: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.infer_executor = ThreadPoolExecutor(config.inference_threads, thread_name_prefix="aioserving-infer")
        self.load_executor = ThreadPoolExecutor(config.load_threads, thread_name_prefix="aioserving-load")
        self.scheduler: Any = None
        batching = None
        if config.enable_batching:
            from .batching import BatchingParameters, BatchScheduler

            if config.batching_parameters_file:
                batching = BatchingParameters.from_file(config.batching_parameters_file,
                                                        adaptive=config.batching_mode == "adaptive")
            else:
                # No parameters file: the adaptive window (no tuning needed); "fixed"
                # keeps TF Serving's defaults.
                batching = (BatchingParameters() if config.batching_mode == "fixed"
                            else BatchingParameters(max_batch_size=256, max_enqueued_batches=1000, adaptive=True,
                                                    max_batch_bytes=1 << 20))
            self.scheduler = BatchScheduler(self.infer_executor)
        self.manager = ModelManager(
            self.load_executor,
            self._load,
            ManagerOptions(
                tags=config.tags,
                max_num_load_retries=config.max_num_load_retries,
                load_retry_interval_s=config.load_retry_interval_micros / 1e6,
                allow_version_labels_for_unavailable_models=config.allow_version_labels_for_unavailable_models,
                unload_drain_timeout_s=config.drain_timeout_seconds,
            ),
            on_unload=self._on_unload,
            warmup=self._warmup if config.enable_model_warmup else None,
            on_event=self._on_version_event,
        )
        #: grpc.health.v1.Health (--enable_grpc_healthcheck_service), fed by version events.
        self.health: Any = None
        if config.enable_grpc_healthcheck_service:
            from .health import HealthReporter

            self.health = HealthReporter(self.manager, self.is_ready)
        self.core = ServingCore(
            self.manager, self.infer_executor, scheduler=self.scheduler, batching=batching,
            per_model_batching=self._per_model_batching if config.enable_per_model_batching_parameters else None,
            method_name_check=config.enable_signature_method_name_check)
        self.rest = RestApi(self.core, self.observer, timeout_ms=config.rest_api_timeout_in_ms,
                            max_body=config.rest_max_request_bytes, executor=self.load_executor)
        if config.rest_api_enable_cors_support:
            self.rest.cors_origins = tuple(
                o.strip() for o in config.rest_api_cors_allowed_origins.split(",") if o.strip())
        self._setup_observability(auth_check)
        self.rest.add_route("GET", "/v1/health/live", self._live)
        self.rest.add_route("GET", "/v1/health/ready", self._ready)
        from .admin import Admin

        self.admin = Admin(self.manager, self.reload_config, config_file=config.model_config_file,
                           executor=self.load_executor)
        self.admin.register_rest(self.rest)

    # ------------------------------------------------------------------ loading hooks
    def _load(self, name: str, version: int, path: str) -> Servable:
        from .tflite import TfLiteOptions

        model = self.manager.models.get(name)
        platform = model.config.model_platform if model is not None else "tensorflow"
        servable = load_servable(
            name, version, path, tags=self.config.tags,
            prefer_tflite=self.config.prefer_tflite_model or platform == "tflite",
            tflite_options=TfLiteOptions(self.config.num_tflite_pools,
                                         self.config.num_tflite_interpreters_per_pool))
        if self.config.enable_per_model_batching_parameters:
            p = os.path.join(path, "batching_params.pbtxt")
            if os.path.exists(p):
                from .batching import BatchingParameters

                servable.batching_params = BatchingParameters.from_file(p)  # type: ignore[attr-defined]
        return servable

    def _warmup(self, servable: Servable) -> None:
        from .warmup import warmup_servable

        start = time.perf_counter()
        if warmup_servable(servable, iterations=self.config.num_request_iterations_for_warmup) and self.metrics:
            self._loop.call_soon_threadsafe(self.metrics.observe_warmup, servable.path, time.perf_counter() - start)

    def _setup_observability(self, auth_check: AuthCheck | None) -> None:
        """Metrics, access log, payload log, auth, TLS material and REST read limits (issue 6)."""
        from .metrics import ServerMetrics, load_monitoring_config
        from .payload_log import PayloadLogger
        from .security import load_ssl_config, make_authenticator

        cfg = self.config
        #: Prometheus (--monitoring_config_file); None when off.
        self.metrics: ServerMetrics | None = None
        self.metrics_path = ""
        if cfg.monitoring_config_file:
            enabled, self.metrics_path = load_monitoring_config(cfg.monitoring_config_file)
            if enabled:
                self.metrics = ServerMetrics(self.manager, self.scheduler)
                self.observer.add(self.metrics)
                if self.scheduler is not None:
                    self.scheduler.observer = self.metrics
        if cfg.access_log:
            from .accesslog import AccessLog

            self.observer.add(AccessLog(cfg.log_format))
        metrics = self.metrics
        self.payload_log = PayloadLogger(
            self.core.payload_hooks,
            on_drop=(lambda model: metrics.count("payload_log_dropped", "Payload log records dropped (queue full).",
                                                 ["model_name"], (model,))) if metrics else None)
        self.auth = make_authenticator(cfg, auth_check)
        self.rest.auth = self.auth
        self.rest.read_timeout_s = cfg.rest_read_timeout_seconds if cfg.rest_read_timeout_seconds > 0 else None
        self.ssl_config = load_ssl_config(cfg.ssl_config_file) if cfg.ssl_config_file else None

    def _on_version_event(self, kind: str, entry: VersionEntry) -> None:
        if self.config.gc_freeze:
            self._gc_on_version_event(kind)
        if self.metrics is not None:
            self.metrics.on_model_event(kind, entry)
        if kind == "start":
            model = self.manager.models.get(entry.model)
            self.payload_log.configure(entry.model, model.config.proto if model is not None else None)
        if self.health is not None:
            self.health.mark_stale()

    def _gc_on_version_event(self, kind: str) -> None:
        """Keep loaded models out of the cyclic collector's full passes.

        A JSON body of a few thousand nested lists survives enough young
        collections to force full ones, and a full pass over TensorFlow's
        hundreds of thousands of objects costs milliseconds per request.  Frozen
        objects are skipped.  An unloading version must be collectable again, so
        the heap is unfrozen while any unload is in progress.
        """
        if kind == "unloading":
            self._unloads_in_progress += 1
            gc.unfreeze()
        elif kind == "end" and self._unloads_in_progress:
            self._unloads_in_progress -= 1
        if kind in ("available", "end") and not self._unloads_in_progress:
            gc.freeze()

    def _per_model_batching(self, lease: Lease) -> Any:
        return getattr(lease.servable, "batching_params", None)

    async def _on_unload(self, entry: Any) -> None:
        if self.scheduler is not None:
            key_id = id(entry)
            await self.scheduler.close_queues(lambda key: isinstance(key, tuple) and key and key[0] == key_id)

    # ------------------------------------------------------------------ health
    async def _live(self, request: web.Request, rec: Any) -> web.Response:
        rec.api = "Health"
        return web.Response(body=b'{"status": "live"}', content_type=JSON)

    def is_ready(self) -> bool:
        return not self.draining and self.manager.ready() and bool(self.manager.models)

    async def _ready(self, request: web.Request, rec: Any) -> web.Response:
        rec.api = "Health"
        if self.is_ready():
            return web.Response(body=b'{"status": "ready"}', content_type=JSON)
        pending = sorted(n for n, m in self.manager.models.items() if not m.serving)
        body = {"status": "draining" if self.draining else "not ready", "models_not_available": pending}
        import orjson

        return web.Response(status=503, body=orjson.dumps(body), content_type=JSON)

    # ------------------------------------------------------------------ config
    def _initial_models(self) -> list[ModelConfig]:
        if self.config.model_config_file:
            return model_configs_from_proto(load_model_server_config(self.config.model_config_file))
        return [ModelConfig(name=self.config.model_name, base_path=self.config.model_base_path,
                            policy=VersionPolicy())]

    async def reload_config(self, model_server_config: Any) -> None:
        """HandleReloadConfigRequest: full replacement; returns once new models are available."""
        if model_server_config.WhichOneof("config") != "model_config_list":
            raise ServingError(Code.INVALID_ARGUMENT,
                               "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                               "Only ModelConfigList is currently supported")
        configs = model_configs_from_proto(model_server_config)
        await self.manager.set_models(configs, wait=True)
        missing = [c.name for c in configs if not self.manager.models[c.name].serving]
        if missing:
            raise ServingError(Code.UNKNOWN, f"Failed to load models: {', '.join(missing)}")

    async def _poll_config_file(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        last: Any = None
        while True:
            await asyncio.sleep(interval)
            try:
                msg = await loop.run_in_executor(self.load_executor, load_model_server_config,
                                                 self.config.model_config_file)
                if last is not None and msg == last:
                    continue
                last = msg
                await self.manager.set_models(model_configs_from_proto(msg))
                await self.manager.poll_once()
            except asyncio.CancelledError:
                raise
            except ServingError as exc:
                log.error("Not reloading %s: %s", self.config.model_config_file, exc.message)
            except Exception:  # noqa: BLE001 - the poller must survive
                log.exception("config file poll failed")

    # ------------------------------------------------------------------ lifecycle
    def _task(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.load_executor, _configure_tensorflow, self.config)
        models = await loop.run_in_executor(self.load_executor, self._initial_models)
        await self.manager.set_models(models)
        await self._start_grpc()
        self._task(self._initial_load(), "aioserving-initial-load")
        if self.config.model_config_file and self.config.model_config_file_poll_wait_seconds > 0:
            self._task(self._poll_config_file(self.config.model_config_file_poll_wait_seconds),
                       "aioserving-config-poller")

    async def _initial_load(self) -> None:
        try:
            await self.manager.poll_once()
        except Exception:  # noqa: BLE001
            log.exception("initial model load failed")
        if self.config.file_system_poll_wait_seconds > 0:
            await self.manager.run_poller(self.config.file_system_poll_wait_seconds)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the first scan has made every configured model available."""
        async def _wait() -> None:
            while not self.is_ready():
                await asyncio.sleep(0.02)
        await asyncio.wait_for(_wait(), timeout)

    async def _start_grpc(self) -> None:
        cfg = self.config
        if cfg.port == 0 and not cfg.grpc_socket_path:
            return
        # --grpc_channel_arguments override the defaults (gRPC would take the first of two).
        merged = {"grpc.max_send_message_length": _MAX_MESSAGE, "grpc.max_receive_message_length": _MAX_MESSAGE}
        merged.update(_parse_channel_args(cfg.grpc_channel_arguments))
        options = list(merged.items())
        interceptors = []
        if self.auth is not None:
            from .security import GrpcAuthInterceptor

            interceptors.append(GrpcAuthInterceptor(self.auth, self.observer))
        server = grpc.aio.server(options=options, interceptors=interceptors,
                                 maximum_concurrent_rpcs=cfg.grpc_max_concurrent_rpcs or None)
        from .admin import AdminServicer

        AdminServicer(self.admin, self.observer).add_to_server(server)
        if self.health is not None:
            await self.health.refresh()  # NOT_SERVING until the models are available
            self.health.add_to_server(server)
            self._task(self.health.run(), "aioserving-grpc-health")
        add_services(server, self.core, self.observer, self.reload_config,
                     tensor_content=cfg.enable_serialization_as_tensor_content)
        if cfg.port:
            address = f"{cfg.host}:{cfg.port}" if cfg.port > 0 else f"{cfg.host}:0"
            if self.ssl_config is not None:
                from .security import grpc_server_credentials

                self.grpc_port = server.add_secure_port(address, grpc_server_credentials(self.ssl_config))
            else:
                self.grpc_port = server.add_insecure_port(address)
        if cfg.grpc_socket_path:
            server.add_insecure_port(f"unix:{cfg.grpc_socket_path}")
        await server.start()
        self.grpc_server = server

    async def drain(self, timeout: float | None = None) -> bool:
        """Graceful drain for embedders (the CLI runs it on SIGTERM/SIGINT).

        Readiness turns false (REST ``/v1/health/ready`` and gRPC health), the
        gRPC listener stops accepting calls, and in-flight requests on every
        transport get up to ``timeout`` seconds (default ``--drain_timeout_seconds``)
        to finish.  Returns True when everything finished in time.  Stopping the
        REST listener belongs to whoever owns it (``AppRunner.cleanup``).
        """
        timeout = self.config.drain_timeout_seconds if timeout is None else timeout
        self.draining = True
        if self.health is not None:
            await self.health.shutdown()
        server, self.grpc_server = self.grpc_server, None
        # stop() refuses new RPCs at once and gives running ones the grace period.
        stopping = asyncio.create_task(server.stop(timeout), name="aioserving-grpc-stop") if server else None
        finished = True
        try:
            await asyncio.wait_for(self.manager.wait_idle(), timeout)
        except TimeoutError:
            finished = False
            log.warning("Drain timed out after %.1fs with %d requests in flight", timeout, self.manager.inflight())
        if server is not None and stopping is not None:
            # Inference is done; what remains are endless streams (health Watch) and
            # replies being written: a short grace ends them (a shorter grace wins).
            await server.stop(_GRPC_FINAL_GRACE_S if finished else 0)
            await stopping
        return finished

    async def stop(self, grace_s: float | None = None) -> None:
        self.draining = True
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace_s if grace_s is not None else self.config.drain_timeout_seconds)
            self.grpc_server = None
        for t in reversed(self._tasks):
            t.cancel()
        for t in reversed(self._tasks):
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001
                log.exception("background task %s failed", t.get_name())
        self._tasks.clear()
        if self.scheduler is not None:
            await self.scheduler.close()
        await self.manager.close()
        await self.payload_log.close()
        self.infer_executor.shutdown(wait=False, cancel_futures=True)
        self.load_executor.shutdown(wait=False, cancel_futures=True)


SERVER_KEY = web.AppKey("aioserving_server", Server)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    return await request.config_dict[SERVER_KEY].rest.dispatch(request)


async def _metrics(request: web.Request) -> web.StreamResponse:
    server = request.config_dict[SERVER_KEY]
    if server.auth is not None and not await server.auth.allowed("REST", request.path, request.headers):
        return web.Response(status=401, body=error_body(UNAUTHENTICATED_MESSAGE), content_type=JSON,
                            headers={"WWW-Authenticate": "Bearer"})
    if server.metrics is None:
        raise web.HTTPNotFound()
    return web.Response(body=server.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def setup(app: web.Application, config: ServerConfig, *, auth_check: AuthCheck | None = None) -> None:
    """Mount aioserving (REST routes, gRPC server, model lifecycle) into ``app``.

    ``auth_check(transport, target, headers) -> bool`` (or awaitable) replaces
    ``--auth_token_file``'s bearer tokens for every route but health.
    """
    config.validate()
    if config.monitoring_config_file:
        from .metrics import load_monitoring_config

        enabled, path = load_monitoring_config(config.monitoring_config_file)
        if enabled:
            app.router.add_get(path, _metrics)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        server = Server(config, auth_check=auth_check)
        await server.start()
        app[SERVER_KEY] = server
        try:
            yield
        finally:
            await server.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", r"/{v1:[vV]1}{tail:(/.*)?}", _dispatch)


def create_app(config: ServerConfig, *, auth_check: AuthCheck | None = None) -> web.Application:
    """A standalone aiohttp application serving ``config``.

    Run it with ``web.AppRunner(app, **security.runner_options(config))`` and
    ``ssl_context=security.rest_ssl_context(config)`` for the connection limits and HTTPS.
    """
    app = web.Application(client_max_size=config.rest_max_request_bytes)
    setup(app, config, auth_check=auth_check)
    return app

"""Wiring: CLI, function pools, the HTTP front, the Kafka pollers, signals and graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import uvloop

from . import kafka_source, metrics
from .environment import function_environment
from .events import ApiInfo
from .http_api import HttpApiApp, JsonErrorsHttpToolsProtocol, RouteTable
from .logs import JsonLogFormatter
from .sam_model import IMPLICIT_HTTP_API, Template
from .template import load_template
from .workers import DEFAULT_INSTANCE_WAIT_S, FunctionPool

log = logging.getLogger("runner")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class BufferedStderrHandler(logging.StreamHandler):
    """One write per 0.2 s instead of one per log line (the per-invocation INFO line is on the hot path).

    WARNING and above, and anything logged when no event loop flushes, are written at once.
    """

    FLUSH_INTERVAL_S = 0.2

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.call_later(self.FLUSH_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self.flush()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_later(self.FLUSH_INTERVAL_S, self._tick)

    def detach(self) -> None:
        self._loop = None
        self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self._lock:
            self._lines.append(line)
        if record.levelno >= logging.WARNING or self._loop is None or len(self._lines) > 1000:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self.stream.write("".join(lines))
            self.stream.flush()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner decides how to shut down."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Runner:
    def __init__(
        self,
        template: Template,
        *,
        log_handler: BufferedStderrHandler | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        workers: int = 2,
        prewarm: int = 1,
        instance_wait_s: float = DEFAULT_INSTANCE_WAIT_S,
        kafka: bool = True,
        kafka_consumers: int | None = None,
        instance_id: str | None = None,
        log_level: str = "INFO",
        metrics_path: str | None = "/metrics",
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.template = template
        self.host = host
        self.port = port
        self.workers = workers
        self.prewarm = prewarm
        self.instance_wait_s = instance_wait_s
        self.kafka = kafka
        self.kafka_consumers = kafka_consumers
        self.instance_id = instance_id
        self.log_level = log_level
        self.metrics_path = metrics_path or None
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.pools: dict[str, FunctionPool] = {}
        self.kafka_processes: list[kafka_source.KafkaSourceProcess] = []
        self.server: _Server | None = None
        self._stop: asyncio.Event | None = None
        self._signals = 0
        self.log_handler = log_handler

    # ------------------------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        if self.log_handler is not None:
            self.log_handler.attach(loop)
        try:
            return await self._run(loop)
        finally:
            if self.log_handler is not None:
                self.log_handler.detach()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> int:
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        metrics.enable_multiprocess()  # before any metric exists, and inherited by processes started from here on
        self._start_pools(loop)
        if self.kafka:
            self._start_pollers()  # their instances start while the provisioned ones do, not under the first requests
        await self._provision()
        self.server = _Server(self._server_config(self._http_app()))
        serve = asyncio.create_task(self._serve(self.server))
        while not self.server.started and not serve.done():
            await asyncio.sleep(0.01)
        if serve.done():
            log.error("the HTTP server did not start on %s:%s", self.host, self.port)
            await self._shut_down(serve)
            return 1
        self._announce()
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait({serve, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        await self._shut_down(serve)
        stop_wait.cancel()
        return 0

    def _start_pools(self, loop: asyncio.AbstractEventLoop) -> None:
        """A pool of instances for each function with HttpApi routes (Kafka event sources run their own)."""
        tpl = self.template
        for fid, spec in tpl.functions.items():
            if not spec.http_routes:
                if not spec.kafka_sources:
                    log.info("%s has no HttpApi or Kafka event; not started", fid)
                continue
            env = function_environment(spec, base_env=self.base_env, region=tpl.region, account_id=tpl.account_id)
            # ReservedConcurrentExecutions caps the instances, as on AWS; --workers caps the others.
            cap = self.workers if spec.reserved_concurrency is None else spec.reserved_concurrency
            pool = FunctionPool(spec, env, region=tpl.region, account_id=tpl.account_id, max_workers=cap, loop=loop)
            pool.prewarm(self.prewarm)
            self.pools[fid] = pool

    async def _provision(self) -> None:
        """Each function's provisioned concurrency, initialized before the front takes any request."""
        provisioned = [pool for pool in self.pools.values() if pool.spec.provisioned_concurrency]
        for pool in provisioned:
            log.info("%s: initializing %d provisioned instances", pool.name, pool.spec.provisioned_concurrency)
        await asyncio.gather(*(pool.provision(pool.spec.provisioned_concurrency) for pool in provisioned))

    def _http_app(self) -> HttpApiApp:
        tpl = self.template
        api_name = tpl.http_api_ids[0] if tpl.http_api_ids else IMPLICIT_HTTP_API
        api_id = hashlib.sha1(f"{tpl.stack_name}/{api_name}".encode()).hexdigest()[:10]
        routes = RouteTable(tpl.routes)
        if self.metrics_path and routes.match("GET", self.metrics_path):
            log.warning("the template routes GET %s: the runner's metrics endpoint is off", self.metrics_path)
            self.metrics_path = None
        return HttpApiApp(
            routes,
            self.pools,
            ApiInfo(api_id=api_id, account_id=tpl.account_id),
            instance_wait_s=self.instance_wait_s,
            metrics_path=self.metrics_path,
        )

    def _server_config(self, app: HttpApiApp) -> uvicorn.Config:
        longest = max((spec.timeout_s for spec in self.template.functions.values()), default=30.0)
        return uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            http=JsonErrorsHttpToolsProtocol,
            loop="none",  # the loop main() runs: uvloop
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,  # the runner is the API gateway: sourceIp is the peer address
            timeout_graceful_shutdown=int(longest + 5),
            backlog=4096,
        )

    def _announce(self) -> None:
        """The line that says the runner accepts requests, then the metrics endpoint and the routes."""
        assert self.server is not None
        sock = self.server.servers[0].sockets[0].getsockname()
        url = f"http://{self.host}:{sock[1]}"
        print(f"Lambda runner serving {url} (template {self.template.path})", flush=True)
        if self.metrics_path:
            log.info("Prometheus metrics at %s%s", url, self.metrics_path)
        for route in self.template.routes:
            log.info("route %-28s -> %s", route.route_key, route.function_id)

    async def _shut_down(self, serve: asyncio.Task[None]) -> None:
        """No new requests; in-flight requests and Kafka batches finish; then the instances stop."""
        assert self.server is not None
        log.info("shutting down: no new requests; finishing in-flight requests and batches")
        self.server.should_exit = True
        for process in self.kafka_processes:
            process.terminate()  # SIGTERM: the in-flight batch finishes and commits
        await asyncio.gather(serve, asyncio.to_thread(self._join_pollers), return_exceptions=True)
        await self._shutdown_pools()
        log.info("stopped")

    @staticmethod
    async def _serve(server: _Server) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's answer to a failed bind; it has logged why
            await server.serve()

    def _start_pollers(self) -> None:
        """Each enabled Kafka event source runs in its own process, with its own instances of the function."""
        tpl = self.template
        for fid, spec in tpl.functions.items():
            env = function_environment(spec, base_env=self.base_env, region=tpl.region, account_id=tpl.account_id)
            for source in spec.kafka_sources:
                if not source.enabled:
                    log.info("%s/%s is disabled (Enabled: false)", fid, source.event_id)
                    continue
                bootstrap = (
                    self.base_env.get("KAFKA_BOOTSTRAP_SERVERS") or source.bootstrap_servers or DEFAULT_BOOTSTRAP
                )
                job = kafka_source.KafkaSourceJob(
                    spec=spec,
                    source=source,
                    env=env,
                    region=tpl.region,
                    account_id=tpl.account_id,
                    bootstrap_servers=bootstrap,
                    consumers=self.kafka_consumers or source.minimum_pollers,
                    prewarm=self.prewarm,
                    instance_id=self.instance_id,
                    log_level=self.log_level,
                )
                self.kafka_processes.append(kafka_source.KafkaSourceProcess(job))

    def _join_pollers(self) -> None:
        for process in self.kafka_processes:
            process.join()
            metrics.process_exited(process.pid)

    async def _shutdown_pools(self) -> None:
        await asyncio.gather(*(pool.shutdown() for pool in self.pools.values()))

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("received %s", signal.Signals(sig).name)
            assert self._stop is not None
            self._stop.set()
            return
        log.warning("received %s again: stopping now", signal.Signals(sig).name)
        for pool in self.pools.values():
            pool.kill_all()
        for process in self.kafka_processes:
            process.kill()
        if self.log_handler is not None:
            self.log_handler.detach()
        os._exit(1)


# ---------------------------------------------------------------------------------------------------- CLI
def _default_template() -> str:
    if Path("template.yaml").is_file():
        return "template.yaml"
    return str(Path(__file__).resolve().parents[2] / "template.yaml")


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        for pair in item.split():
            key, sep, value = pair.partition("=")
            if not sep:
                raise SystemExit(f"--parameter-overrides: expected Key=Value, got {pair!r}")
            out[key.removeprefix("ParameterKey=")] = value
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="runner.py",
        description="Run the functions of a SAM template locally: HttpApi routes over HTTP (API Gateway payload "
        "2.0) and MSK / SelfManagedKafka event sources against a real Kafka.",
    )
    parser.add_argument("--template", default=env.get("RUNNER_TEMPLATE") or _default_template())
    parser.add_argument("--host", default=env.get("RUNNER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("RUNNER_PORT", "8080")), help="0: any free port")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env.get("RUNNER_WORKERS", str(max(2, os.cpu_count() or 2)))),
        help="maximum concurrent instances (worker processes) of a function without ReservedConcurrentExecutions",
    )
    parser.add_argument(
        "--instance-wait-ms",
        type=float,
        default=float(env.get("RUNNER_INSTANCE_WAIT_MS", str(DEFAULT_INSTANCE_WAIT_S * 1000))),
        help="how long an invocation waits for a busy instance at the concurrency cap before it is throttled",
    )
    parser.add_argument(
        "--prewarm", type=int, default=int(env.get("RUNNER_PREWARM", "1")), help="instances started per function"
    )
    parser.add_argument(
        "--kafka-consumers",
        type=int,
        default=int(env["RUNNER_KAFKA_CONSUMERS"]) if env.get("RUNNER_KAFKA_CONSUMERS") else None,
        help="consumers per Kafka event source, each taking a share of the partitions "
        "(default: the event source's ProvisionedPollerConfig.MinimumPollers, else 1)",
    )
    parser.add_argument(
        "--instance-id",
        default=env.get("RUNNER_INSTANCE_ID"),
        help="this runner's stable name: its Kafka consumers become static group members, so a restart with the "
        "same id takes their partitions back at once",
    )
    parser.add_argument("--no-kafka", action="store_true", help="do not poll Kafka event sources")
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], help="template parameters, Key=Value (like sam)"
    )
    parser.add_argument(
        "--metrics-path",
        default=env.get("RUNNER_METRICS_PATH", "/metrics"),
        help="GET here serves the runner's Prometheus metrics unless a template route matches it ('' turns it off)",
    )
    parser.add_argument("--log-level", default=env.get("RUNNER_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["invoke"]:
        from . import invoke

        return invoke.main(argv[1:], default_template=_default_template(), overrides={})
    args = parse_args(argv)
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    template = load_template(args.template, parameter_overrides=_overrides(args.parameter_overrides))
    runner = Runner(
        template,
        log_handler=handler,
        host=args.host,
        port=args.port,
        workers=args.workers,
        prewarm=args.prewarm,
        instance_wait_s=args.instance_wait_ms / 1000,
        kafka=not args.no_kafka,
        kafka_consumers=args.kafka_consumers,
        instance_id=args.instance_id,
        log_level=args.log_level,
        metrics_path=args.metrics_path,
    )
    threading.current_thread().name = "runner"
    # uvloop: the HTTP front's event loop in C (the stdlib loop costs more CPU per request than routing it).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        return loop_runner.run(runner.run())

"""Prometheus from the system's package (Debian: ``prometheus``), scraping the runner's ``/metrics``; and the
dashboard page that draws the Grafana dashboard's panels from it (Grafana is not packaged by Debian).

Only ``services.py observe`` (``make observe``) starts these two; ``up``, ``make test`` and CI do not need them.

- Prometheus: config generated in <state>/prometheus/prometheus.yml from local/prometheus/prometheus.yml (the
  file docker-compose mounts), with the runner's address (``LOGPIPE_RUNNER_ADDRESS``, default 127.0.0.1:8080)
  in place of ``host.docker.internal:8080``; data in <state>/prometheus/data (2 days), log
  <state>/prometheus/prometheus.log, port ``LOGPIPE_PROMETHEUS_PORT`` (9090). A changed config is reloaded
  (SIGHUP) when ``observe`` runs again.
- Dashboard: ``local/dashboard/serve.py`` on port ``LOGPIPE_DASHBOARD_PORT`` (3000), proxying ``/api/v1/`` to
  that Prometheus; log <state>/dashboard/dashboard.log.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from .process import (
    HOST,
    ServiceError,
    apt_install,
    fail_with_log,
    pid_alive,
    read_pid,
    say,
    spawn_daemon,
    stop_pid,
    url_address,
    write_if_changed,
)
from .service import Service
from .settings import REPO, _int_env

COMPOSE_CONFIG = REPO / "local" / "prometheus" / "prometheus.yml"
COMPOSE_RUNNER_TARGET = "host.docker.internal:8080"
COMPOSE_SELF_TARGET = "127.0.0.1:9090"
DASHBOARD_SERVER = REPO / "local" / "dashboard" / "serve.py"
START_TIMEOUT = 30


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def runner_address() -> str:
    return os.environ.get("LOGPIPE_RUNNER_ADDRESS") or f"{HOST}:8080"


class _Daemon(Service):
    """A server we run in the background with a pidfile, ready when ``ready_path`` answers 200."""

    needle: str
    ready_path: str
    default_port: int

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.home = cfg.state / self.name
        self.pidfile = self.home / f"{self.name}.pid"
        self.log = self.home / f"{self.name}.log"

    @property
    def external(self) -> str | None:
        return os.environ.get(self.url_variable) or None

    @property
    def port(self) -> int:
        return _int_env(self.port_variable, self.default_port)

    @property
    def url(self) -> str:
        return self.external or f"http://{HOST}:{self.port}"

    def external_address(self) -> tuple[str, int]:
        return url_address(self.url, self.default_port)

    def our_pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid and pid_alive(pid, self.needle) else None

    def running_port(self, pid: int) -> int | None:
        try:
            return int((self.home / "port").read_text())
        except (OSError, ValueError):
            return None

    def answers(self, host: str, port: int) -> bool:
        return http_ok(f"http://{host}:{port}{self.ready_path}")

    def details(self) -> str:
        return f"log {self.log}"

    def check_external(self) -> None:
        if not http_ok(self.url.rstrip("/") + self.ready_path, 5):
            raise ServiceError(f"{self.name}: {self.url_variable}={self.url} does not answer {self.ready_path}")

    def wait_ours(self, pid: int) -> None:
        self.wait_ready(lambda: pid_alive(pid, self.needle))

    def check_foreign(self) -> None:
        if not self.answers(HOST, self.port):
            raise ServiceError(
                f"{self.name}: {HOST}:{self.port} is taken by something else; set {self.port_variable} to a free port"
            )

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> int:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        proc = spawn_daemon(cmd, self.home, self.log, self.pidfile)
        (self.home / "port").write_text(str(self.port))
        # Our own child: poll() tells whether it exited (its command line may not show the needle before exec).
        self.wait_ready(lambda: proc.poll() is None)
        return proc.pid

    def wait_ready(self, running: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.answers(HOST, self.port):
                return
            if not running():
                raise fail_with_log(self.name, "exited during start-up", self.log)
            time.sleep(0.2)
        raise fail_with_log(self.name, f"did not answer {self.ready_path} within {START_TIMEOUT}s", self.log)

    def stop(self, pid: int) -> None:
        stop_pid(self.name, pid, self.needle)
        self.pidfile.unlink(missing_ok=True)


class Prometheus(_Daemon):
    name = "prometheus"
    url_variable = "PROMETHEUS_URL"
    port_variable = "LOGPIPE_PROMETHEUS_PORT"
    needle = "prometheus"
    ready_path = "/-/ready"
    default_port = 9090

    @property
    def config(self) -> Path:
        return self.home / "prometheus.yml"

    def config_text(self) -> str:
        """docker-compose's config with the native addresses: one scrape configuration for both."""
        text = COMPOSE_CONFIG.read_text()
        document = yaml.safe_load(text)
        for job in document["scrape_configs"]:
            for static in job.get("static_configs", []):
                static["targets"] = [
                    runner_address()
                    if t == COMPOSE_RUNNER_TARGET
                    else f"{HOST}:{self.port}"
                    if t == COMPOSE_SELF_TARGET
                    else t
                    for t in static["targets"]
                ]
        return "# Written by local/services.py observe from local/prometheus/prometheus.yml.\n" + yaml.safe_dump(
            document, sort_keys=False
        )

    def command(self) -> list[str]:
        binary = shutil.which("prometheus")
        if not binary:
            apt_install(["prometheus"], "prometheus: not found (Debian package: prometheus)")
            binary = shutil.which("prometheus")
            if not binary:
                raise ServiceError("prometheus: still not found after installing it")
        write_if_changed(self.config, self.config_text())
        return [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={HOST}:{self.port}",
        ]

    def ready(self) -> None:
        pid = self.our_pid()
        if pid and write_if_changed(self.config, self.config_text()):
            os.kill(pid, signal.SIGHUP)
            say(f"prometheus: config changed (scraping {runner_address()}); reloaded")


class Dashboard(_Daemon):
    name = "dashboard"
    url_variable = "LOGPIPE_DASHBOARD_URL"
    port_variable = "LOGPIPE_DASHBOARD_PORT"
    needle = "serve.py"
    ready_path = "/healthz"
    default_port = 3000

    def __init__(self, cfg, prometheus: Prometheus) -> None:
        super().__init__(cfg)
        self.prometheus = prometheus

    def command(self) -> list[str]:
        return [sys.executable, str(DASHBOARD_SERVER), "--port", str(self.port), "--prometheus", self.prometheus.url]

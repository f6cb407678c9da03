"""The harness's own stack: Kafka, PostgreSQL and Redis on private ports and state folder (the faults kill them, so
never the shared ones), started and stopped with local/backing_services, and local/runner.py on a port of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import REPO, children, worker_function
from backing_services.settings import Config
from lambda_runner.testing import RunnerProcess

STATE = REPO / "local" / ".state-chaos"
PRIVATE = {
    "LOGPIPE_STATE_DIR": str(STATE),
    "LOGPIPE_KAFKA_PORT": "19092",
    "LOGPIPE_KAFKA_CONTROLLER_PORT": "19093",
    "LOGPIPE_PG_PORT": "15432",
    "LOGPIPE_REDIS_PORT": "16379",
    "LOGPIPE_KAFKA_HEAP": "-Xms128m -Xmx512m",
}
NAMED_SERVICES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")  # the shared stack's: never ours
RUNNER_ID = "chaos"  # static consumer-group members: a restarted runner takes its partitions back at once
SERVICES_CLI = REPO / "local" / "services.py"


def use_private_services() -> Config:
    """Point this process (and every process it starts) at the private stack."""
    for name in NAMED_SERVICES:
        os.environ.pop(name, None)
    os.environ.update(PRIVATE)
    return Config.from_env()


def up(cfg: Config) -> dict[str, str]:
    """Start the private services (topics created, migrations applied); returns their environment."""
    shared_libs = REPO / "local" / ".state" / "kafka" / "libs"
    if shared_libs.is_dir() and not (cfg.state / "kafka" / "libs").exists():  # spare a Maven resolution
        shutil.copytree(shared_libs, cfg.state / "kafka" / "libs")
    out = subprocess.run([sys.executable, str(SERVICES_CLI), "up"], check=True, stdout=subprocess.PIPE, text=True)
    for line in out.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = value.strip("'\"")
    return dict(os.environ)


def down() -> None:
    """Stop the private services; --purge: a PostgreSQL cluster kept outside the clone (root) goes too."""
    subprocess.run([sys.executable, str(SERVICES_CLI), "down", "--purge"], check=False)


def consumer_group() -> str:
    """The consumer function's group, as template.yaml names it."""
    found = re.search(r"ConsumerGroupId:\s*(\S+)", (REPO / "template.yaml").read_text())
    assert found, "template.yaml names no ConsumerGroupId"
    return found.group(1)


# ----------------------------------------------------------------------------------------------- processes
def wait_gone(pid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if _zombie(pid):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pid {pid} still runs {timeout_s:.0f} s after SIGKILL")


def _zombie(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


# ------------------------------------------------------------------------------------------------ the runner
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Runner:
    """local/runner.py serving template.yaml, with the Kafka consumer polling, on one port across restarts."""

    env: dict[str, str]
    port: int = field(default_factory=lambda: free_port())  # kept across restarts: the clients' URL
    process: RunnerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = RunnerProcess(
            REPO / "template.yaml",
            args=["--instance-id", RUNNER_ID, "--log-level", "INFO"],
            env=self.env,
            cwd=REPO,
            port=self.port,
            start_timeout=180,
        ).start()

    def kill(self) -> None:
        """SIGKILL the runner; its instances and its Kafka source must die with it."""
        assert self.process is not None and self.process.proc is not None
        pid = self.process.proc.pid
        descendants = self.descendants()
        self.process.stop(signal.SIGKILL)
        for child in descendants:
            wait_gone(child)
        wait_gone(pid)

    def stop(self) -> None:
        if self.process is not None and self.process.proc is not None and self.process.proc.poll() is None:
            self.process.stop()

    def descendants(self) -> list[int]:
        assert self.process is not None and self.process.proc is not None
        found, todo = [], [self.process.proc.pid]
        while todo:
            for child in children(todo.pop()):
                found.append(child)
                todo.append(child)
        return found

    def instances(self, function: str) -> list[int]:
        """The worker processes serving a function (their working directory is its CodeUri)."""
        return [pid for pid in self.descendants() if worker_function(pid) == function]

    def log_tail(self, lines: int = 40) -> str:
        return "" if self.process is None else "\n".join(self.process.lines[-lines:])

    def save_log(self, path: Path) -> None:
        if self.process is not None:
            path.write_text(self.process.output() + "\n")

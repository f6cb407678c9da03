"""Redis from the system's ``redis-server`` (Debian package), appendonly, config in <state>/redis/redis.conf."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
from pathlib import Path

from .process import (
    HOST,
    ServiceError,
    apt_install,
    fail_with_log,
    pid_alive,
    read_pid,
    run,
    say,
    stop_pid,
    url_address,
    write_if_changed,
)
from .service import Service

START_TIMEOUT = 20
SEARCHED = ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")


def redis_ping(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Send PING; return the first reply line ('+PONG', '-NOAUTH ...') or None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            first = data.decode("utf-8", "replace").strip().splitlines()
            return first[0][:120] if first else None
    except OSError:
        return None


def server_binary() -> str | None:
    return shutil.which("redis-server") or next((p for p in SEARCHED if os.access(p, os.X_OK)), None)


class Redis(Service):
    name = "redis"
    url_variable = "REDIS_URL"
    port_variable = "LOGPIPE_REDIS_PORT"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.home = cfg.state / "redis"
        self.data = self.home / "data"
        self.conf = self.home / "redis.conf"
        self.pidfile = self.home / "redis.pid"
        self.log = self.home / "redis.log"

    @property
    def external(self) -> str | None:
        return self.cfg.redis_external

    @property
    def port(self) -> int:
        return self.cfg.redis_port

    def external_address(self) -> tuple[str, int]:
        return url_address(self.cfg.redis_url, 6379)

    def our_pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        if not pid or not pid_alive(pid, "redis-server"):
            return None
        # Redis' command line does not name its config; a daemonized redis-server runs in its `dir`,
        # so the working directory tells our server from another checkout's
        try:
            return pid if Path(f"/proc/{pid}/cwd").resolve() == self.data.resolve() else None
        except OSError:
            return None if Path("/proc/self").exists() else pid

    def running_port(self, pid: int) -> int | None:
        try:  # the process title is `redis-server 127.0.0.1:<port>`
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        found = re.search(r"redis-server \S*:(\d+)", title)
        return int(found.group(1)) if found else None

    def answers(self, host: str, port: int) -> bool:
        return redis_ping(host, port) is not None

    def details(self) -> str:
        return f"log {self.log}"

    def check_external(self) -> None:
        host, port = self.external_address()
        if redis_ping(host, port, 5) is None:
            raise ServiceError(f"redis: {self.url_variable} is not reachable ({host}:{port})")

    def wait_ours(self, pid: int) -> None:
        self.wait_ready()
        with contextlib.suppress(OSError):
            if self.conf.read_text() != self.config_text():
                say("redis: services.py's settings changed; run `down` then `up` to apply them")

    def check_foreign(self) -> None:
        reply = redis_ping(HOST, self.port)
        if reply == "+PONG":
            return
        if reply is None:
            raise ServiceError(
                f"redis: {HOST}:{self.port} is taken by something that is not Redis; set {self.port_variable}"
            )
        raise ServiceError(
            f"redis: {HOST}:{self.port} answers PING with {reply!r}; "
            f"set REDIS_URL (with credentials) to use it, or {self.port_variable} to a free port"
        )

    def config_text(self) -> str:
        return f"""# Written by local/services.py whenever it starts Redis.
bind {HOST}
protected-mode yes
port {self.port}
daemonize yes
pidfile {self.pidfile}
logfile {self.log}
loglevel notice
dir {self.data}
appendonly yes
appendfsync everysec
# The append-only file alone: an RDB snapshot forks and writes the whole dataset every minute under load, a core
# taken from the pipeline Redis serves.
save ""
"""

    def start(self) -> int | None:
        binary = server_binary()
        if not binary:
            apt_install(["redis-server"], "redis: redis-server not found (Debian package: redis-server)")
            binary = server_binary()
            if not binary:
                raise ServiceError("redis: still no redis-server after installing it")
        self.data.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.conf, self.config_text())
        self.pidfile.unlink(missing_ok=True)
        run([binary, self.conf], timeout=30, what="redis: redis-server", cwd=self.home, new_session=True)
        self.wait_ready()
        return read_pid(self.pidfile)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if redis_ping(HOST, self.port) == "+PONG":  # '-LOADING': still replaying the append-only file
                return
            time.sleep(0.2)
        raise fail_with_log(self.name, f"did not answer PING on {HOST}:{self.port} within {START_TIMEOUT}s", self.log)

    def stop(self, pid: int) -> None:
        stop_pid(self.name, pid, "redis-server")  # SIGTERM: Redis fsyncs the AOF and exits cleanly

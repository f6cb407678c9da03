"""The one lifecycle every local service follows: use a named one, reuse ours or a usable one, else start it."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from .process import HOST, ServiceError, port_open, say
from .settings import Config


class Service(ABC):
    """A backing service on 127.0.0.1, started and stopped by us, or named by its URL variable, or reused."""

    name: str
    url_variable: str  # e.g. REDIS_URL: the user names a running service
    port_variable: str  # e.g. LOGPIPE_REDIS_PORT: the port we start ours on

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    # -- what each service provides ------------------------------------------------------------------
    @property
    @abstractmethod
    def external(self) -> str | None:
        """The URL the user named (None: we provide the service)."""

    @property
    @abstractmethod
    def port(self) -> int:
        """The port ours listens on."""

    @abstractmethod
    def external_address(self) -> tuple[str, int]: ...

    @abstractmethod
    def our_pid(self) -> int | None:
        """The pid of the server this state folder started, if it runs."""

    @abstractmethod
    def running_port(self, pid: int) -> int | None:
        """The port our running server was started with."""

    @abstractmethod
    def answers(self, host: str, port: int) -> bool:
        """Whether a usable server of this kind answers there."""

    @abstractmethod
    def check_external(self) -> None:
        """Raise unless the named service is usable."""

    @abstractmethod
    def wait_ours(self, pid: int) -> None:
        """Wait until our running server answers (it may still be starting)."""

    @abstractmethod
    def check_foreign(self) -> None:
        """Raise, saying what to do, unless the server on our port (not ours) is usable."""

    @abstractmethod
    def start(self) -> int | None:
        """Start ours and wait until it answers; returns its pid."""

    @abstractmethod
    def stop(self, pid: int) -> None: ...

    def ready(self) -> None:  # noqa: B027 - most services need nothing more
        """After the service is up, whoever runs it: create what the project needs in it (topics, roles)."""

    def details(self) -> str:
        """Where our server keeps its logs and data, for `status`."""
        return ""

    # -- the lifecycle ----------------------------------------------------------------------------------
    def up(self) -> None:
        started = time.monotonic()
        if self.external:
            self.check_external()
            say(f"{self.name}: using {self.url_variable}")
        elif pid := self.our_pid():
            actual = self.running_port(pid)
            if actual is not None and actual != self.port:
                raise ServiceError(
                    f"{self.name}: our server (pid {pid}) listens on port {actual}, but {self.port_variable} asks "
                    f"for {self.port}; run `python local/services.py down` with the old {self.port_variable} first "
                    f"(or unset {self.port_variable})"
                )
            self.wait_ours(pid)
            say(f"{self.name}: already running (pid {pid}) on {HOST}:{self.port}")
        elif port_open(HOST, self.port):
            self.check_foreign()
            say(f"{self.name}: reusing the server already answering on {HOST}:{self.port} (not started by services.py)")
        else:
            pid = self.start()
            say(
                f"{self.name}: started (pid {pid}) on {HOST}:{self.port} in {time.monotonic() - started:.1f}s"
                f"{', ' + self.details() if self.details() else ''}"
            )
        self.ready()

    def status(self) -> tuple[bool, str]:
        if self.external:
            host, port = self.external_address()
            return port_open(host, port), f"external {self.url_variable}"
        if pid := self.our_pid():
            port = self.running_port(pid) or self.port
            up = self.answers(HOST, port)
            return up, f"ours, pid {pid}, {HOST}:{port}, {self.details()}" + ("" if up else " (not answering)")
        if self.answers(HOST, self.port):
            return True, f"not started by services.py, answering on {HOST}:{self.port}"
        return False, f"{HOST}:{self.port}"

    def down(self) -> None:
        pid = self.our_pid()
        if not pid:
            say(f"{self.name}: not running (nothing of ours to stop)")
            return
        started = time.monotonic()
        self.stop(pid)
        say(f"{self.name}: stopped (pid {pid}) in {time.monotonic() - started:.1f}s")

    def purge(self) -> None:  # noqa: B027 - most services keep everything in the state folder
        """Remove what this service keeps outside the state folder (nothing, unless it says otherwise)."""

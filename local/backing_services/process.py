"""Process, port and file helpers shared by every service: no service knows another's internals."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
STOP_TIMEOUT = 60
LOCK_TIMEOUT = 900
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ServiceError(Exception):
    """A failure the user must act on; the message says what and where to look."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user to run a command as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"    (cannot read {path}: {exc.strerror})"
    return "\n".join("    " + line for line in data.splitlines()[-lines:])


def fail_with_log(service: str, what: str, log: Path) -> ServiceError:
    return ServiceError(f"{service}: {what}. Read {log}; its last lines:\n{tail(log)}")


def write_if_changed(path: Path, content: str, mode: int | None = None) -> bool:
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)
    return True


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    value = value.strip()
    if "://" in value:
        value = value.split("://", 1)[1]
    if value.startswith("["):  # [ipv6]:port
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port)


def url_address(url: str, default_port: int) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or HOST, parts.port or default_port


def redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def pid_alive(pid: int, needle: str | None = None) -> bool:
    """True when ``pid`` runs and (on Linux) its command line contains ``needle`` (guards pid reuse)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if needle:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except FileNotFoundError:
            return False
        except OSError:
            return True
        if "<defunct>" in cmdline or not cmdline:
            return False
        return needle in cmdline
    return True


def spawn_daemon(cmd: Sequence[str], cwd: Path, log: Path, pidfile: Path) -> subprocess.Popen:
    """Start a long-running service in its own session, its output appended to ``log`` after a header line,
    and record its pid."""
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(service: str, pid: int, needle: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait for exit, SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, needle, timeout):
        return
    say(f"{service}: pid {pid} still running after {timeout:.0f}s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, needle, 10):
        raise ServiceError(f"{service}: pid {pid} survived SIGKILL")


def _wait_gone(pid: int, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, needle):
            return True
        time.sleep(0.2)
    return False


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: RunAs | None = None,
    stdin_text: str | None = None,
    new_session: bool = False,
) -> str:
    """Run a command, capture its output in a temp file (no pipes a daemon could inherit and hold open),
    raise ServiceError with the full output when it fails or times out."""
    with tempfile.TemporaryFile() as out:
        kwargs: dict = {}
        if user is not None:
            kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=new_session,
                **kwargs,
            )
        except OSError as exc:
            raise ServiceError(f"{what}: cannot run {cmd[0]}: {exc}") from None
        try:
            _wait_with_progress(proc, stdin_text, timeout, what)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
            raise ServiceError(f"{what}: timed out after {timeout:.0f}s: {shlex.join(map(str, cmd))}\n{text}") from None
        out.seek(0)
        text = ANSI_ESCAPE.sub("", out.read().decode("utf-8", "replace"))
    if proc.returncode != 0:
        raise ServiceError(f"{what} failed (exit {proc.returncode}): {shlex.join(map(str, cmd))}\n{text.rstrip()}")
    return text


PROGRESS_EVERY = 15.0


def _wait_with_progress(proc: subprocess.Popen, stdin_text: str | None, timeout: float, what: str) -> None:
    """Wait for ``proc``; a slow step (mvn resolving Kafka, initdb, apt) says every 15 s that it still runs."""
    started = time.monotonic()
    if stdin_text is not None:
        proc.communicate(stdin_text.encode(), timeout=timeout)
        return
    while True:
        remaining = timeout - (time.monotonic() - started)
        try:
            proc.wait(timeout=max(0.0, min(PROGRESS_EVERY, remaining)))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() - started >= timeout:
                raise
            say(f"{what}: still running ({time.monotonic() - started:.0f}s of at most {timeout:.0f}s)")


class StateLock:
    """Serialises concurrent `up`/`down` runs on the same state folder (flock, with a timeout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = None

    def __enter__(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")  # held for the lifetime of the command
        deadline = time.monotonic() + LOCK_TIMEOUT
        announced = False
        while True:
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"another local/services.py holds {self.path} for more than {LOCK_TIMEOUT}s"
                    ) from None
                if not announced:
                    say("waiting for another local/services.py run to finish ...")
                    announced = True
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


APT_TIMEOUT = 900


def apt_install(packages: list[str], reason: str) -> None:
    """Install Debian packages when root; otherwise fail naming them."""
    if os.geteuid() != 0:
        raise ServiceError(
            f"{reason}. Install it first, e.g.: sudo apt-get install -y {' '.join(packages)} "
            "(or point the matching *_URL variable at a running service)"
        )
    if not shutil.which("apt-get"):
        raise ServiceError(f"{reason}, and apt-get is not available: install {' '.join(packages)} yourself")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    say(f"{reason}: running {shlex.join(cmd)}")
    try:
        run(cmd, timeout=APT_TIMEOUT, what="apt-get install", env=env)
    except ServiceError:
        say("apt-get install failed; running apt-get update and retrying")
        run(["apt-get", "update", "-q"], timeout=APT_TIMEOUT, what="apt-get update", env=env)
        run(cmd, timeout=APT_TIMEOUT, what="apt-get install", env=env)

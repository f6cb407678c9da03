"""Test helper: run ``local/runner.py`` as a subprocess, find its URL, read its log, stop it with a signal.

with RunnerProcess("template.yaml", args=["--workers", "2"]) as runner:
    requests.get(runner.url + "/health")
assert runner.returncode == 0
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

RUNNER = Path(__file__).resolve().parents[1] / "runner.py"
_URL_RE = re.compile(r"Lambda runner serving (http://\S+)")


class RunnerProcess:
    def __init__(
        self,
        template: str | os.PathLike[str],
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        port: int = 0,
        start_timeout: float = 30.0,
    ) -> None:
        self.command = [sys.executable, str(RUNNER), "--template", str(template), "--port", str(port), *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.url = ""
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None

    # lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> RunnerProcess:
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        line = self.wait_for_log(_URL_RE, timeout=self.start_timeout)
        match = _URL_RE.search(line)
        assert match is not None
        self.url = match.group(1)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code (the process is killed if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise
        return self.returncode

    def __enter__(self) -> RunnerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        elif self.proc is not None:
            self.returncode = self.proc.returncode

    # log ----------------------------------------------------------------------------------------------------
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str | re.Pattern[str], *, timeout: float = 30.0, start: int = 0) -> str:
        """The first log line from index ``start`` on that matches ``pattern`` (a substring or a regex)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    line = self.lines[index]
                    index += 1
                    if _matches(pattern, line):
                        return line
                remaining = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if remaining <= 0 or (exited and index >= len(self.lines)):
                    raise AssertionError(
                        f"no log line matching {pattern!r} within {timeout}s"
                        f"{' (runner exited)' if exited else ''}; log:\n" + "\n".join(self.lines[-60:])
                    )
                self._cond.wait(min(remaining, 0.2))


def _matches(pattern: str | re.Pattern[str], line: str) -> bool:
    return bool(pattern.search(line)) if isinstance(pattern, re.Pattern) else pattern in line

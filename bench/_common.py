"""What the bench scenarios share: the runner, vegeta (open-loop load from a separate process), CPU from /proc.

Nothing here is timed against a target: scenarios measure and report, `bench/run.py` collects the figures.
"""

from __future__ import annotations

import base64
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "local" / "runner.py"
RESULTS = REPO / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
VEGETA_VERSION = "v12.13.0"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def services_env() -> dict[str, str]:
    """The running stack's settings: exported by `make bench`, or asked from local/services.py."""
    if all(os.environ.get(name) for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")):
        return dict(os.environ)
    out = subprocess.run(
        [sys.executable, str(REPO / "local" / "services.py"), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'\"")
    return env


# ------------------------------------------------------------------------------------------------- vegeta
def vegeta_binary() -> str:
    for candidate in (REPO / ".venv" / "bin" / "vegeta", shutil.which("vegeta")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SystemExit(f"vegeta not found: `make bench` installs it (github.com/tsenart/vegeta/v12@{VEGETA_VERSION})")


@dataclass
class Result:
    code: int
    latency_ms: float
    value: Any = None  # what the attack's ``read_body`` made of the response body


@dataclass
class Attack:
    """The results of one vegeta attack, decoded, and the CPU vegeta used."""

    rate: float
    duration_s: float
    results: list[Result] = field(default_factory=list)
    load_generator_cpu_s: float = 0.0

    def count(self, code: int) -> int:
        return sum(1 for r in self.results if r.code == code)

    def codes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[str(r.code)] = out.get(str(r.code), 0) + 1
        return dict(sorted(out.items()))

    def latency(self, pct: float, code: int | None = None) -> float | None:
        values = sorted(r.latency_ms for r in self.results if code is None or r.code == code)
        return percentile(values, pct)

    def summary(self) -> dict[str, Any]:
        return {
            "offered_rate": self.rate,
            "seconds": self.duration_s,
            "requests": len(self.results),
            "codes": self.codes(),
            "p50_ms": self.latency(50),
            "p99_ms": self.latency(99),
            "max_ms": self.latency(100),
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return round(sorted_values[index], 2)


def accepted_id(code: int, body: bytes) -> str | None:
    """The event id of a 202 answer to POST /api/logs."""
    return json.loads(body)["id"] if code == 202 else None


def attack(
    url: str,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    read_body: Callable[[int, bytes], Any] = accepted_id,
    timeout_s: float = 10,
    connections: int | None = None,
    headers: dict[str, str] | None = None,
) -> Attack:
    """POSTs from vegeta at a constant rate, open loop (rate 0: as fast as ``connections`` allow, closed loop).

    Results are decoded as they stream out of ``vegeta encode``; ``read_body(code, body)`` keeps what matters of
    each answer (by default the accepted event id), so large answers are never all held in memory.
    """
    with tempfile.TemporaryDirectory(prefix="logpipe-bench-") as tmp:
        target = {
            "method": "POST",
            "url": url,
            "body": base64.b64encode(body).decode(),
            "header": {"Content-Type": ["application/json"], **{k: [v] for k, v in (headers or {}).items()}},
        }
        targets = Path(tmp) / "targets.json"
        targets.write_text(json.dumps(target) + "\n")
        results = Path(tmp) / "results.bin"
        command = [
            vegeta_binary(),
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate:g}/s" if rate else "-rate=0",
            f"-duration={duration_s:g}s",
            f"-timeout={timeout_s:g}s",
            f"-output={results}",
        ]
        # Open loop: enough connections for the rate, and a cap so that a slow server is not buried in new ones.
        workers = connections or max(16, min(512, int(rate * 0.05)))
        command += [f"-workers={workers}", f"-max-workers={workers if connections else workers * 4}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = Attack(rate=rate, duration_s=duration_s)
        out.load_generator_cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        with subprocess.Popen([vegeta_binary(), "encode", "--to=json", str(results)], stdout=subprocess.PIPE) as enc:
            assert enc.stdout is not None
            for line in enc.stdout:
                record = json.loads(line)
                code = record["code"]
                value = read_body(code, base64.b64decode(record.get("body") or "")) if code else None
                out.results.append(Result(code, record["latency"] / 1e6, value))
    return out


# ----------------------------------------------------------------------------------------------- CPU /proc
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/<pid>/stat; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:<port> (a service of this machine), found through its socket inode."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(entry.name)
        except OSError:
            continue
    return None


def worker_function(pid: int) -> str:
    """Which function a runner worker serves: its working directory is the function's CodeUri."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).name
    except OSError:
        return "?"


@dataclass
class CpuMeter:
    """CPU seconds of named groups of processes between start() and stop()."""

    groups: dict[str, list[int]]
    _start: dict[int, float] = field(default_factory=dict)
    used_s: dict[str, float] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self._start = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return self

    def stop(self) -> dict[str, float]:
        self.used_s = {
            name: sum(max(0.0, cpu_seconds(pid) - self._start.get(pid, 0.0)) for pid in pids)
            for name, pids in self.groups.items()
        }
        return self.used_s

    def per_event_ms(self, events: int) -> dict[str, float | None]:
        return {name: round(used * 1000 / events, 3) if events else None for name, used in self.used_s.items()}

    def per_event_us(self, events: int) -> dict[str, float | None]:
        return {name: round(used * 1e6 / events, 1) if events else None for name, used in self.used_s.items()}


def runner_process_groups(runner: Runner, service_ports: dict[str, int]) -> dict[str, list[int]]:
    """runner front, its instances grouped by function, and the local services' main processes by port."""
    front = runner.proc.pid
    groups: dict[str, list[int]] = {"runner_front": [front]}
    for pid in children(front):
        groups.setdefault(f"instances_{worker_function(pid)}", []).append(pid)
    for name, port in service_ports.items():
        pid = listener_pid(port)
        if pid is not None:
            groups[name] = [pid, *children(pid)]  # PostgreSQL: the postmaster and its backends
    return groups


def service_ports(env: dict[str, str]) -> dict[str, int]:
    def port(value: str, default: int) -> int:
        tail = value.rsplit(":", 1)[-1].split("/", 1)[0]
        return int(tail) if tail.isdigit() else default

    return {
        "kafka_broker": port(env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")[0], 9092),
        "postgresql": port(env.get("DATABASE_URL", "").split("@")[-1], 5432),
        "redis": port(env.get("REDIS_URL", "").split("@")[-1], 6379),
    }


@dataclass
class Runner:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@contextmanager
def runner(template: Path, env: dict[str, str], args: Iterable[str] = ()) -> Iterator[Runner]:
    """local/runner.py serving ``template`` on a free port, its output in a log file (not a pipe this process reads:
    a reader woken for every line an instance prints would be load the bench itself adds). Ctrl-C stops it."""
    template = template.resolve()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = RESULTS / f"runner-{'project' if template.parent == REPO else template.parent.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(RUNNER), "--template", str(template), "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=template.parent, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 180
        while "Lambda runner serving" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the runner did not start; see {log}")
            time.sleep(0.2)
        yield Runner(proc, f"http://127.0.0.1:{port}", log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def warm_runner(
    template: Path, env: dict[str, str], args: Iterable[str] = ()
) -> Iterator[tuple[Runner, dict[str, list[int]]]]:
    """``runner``, once its instances' cold starts are over, with the process groups to meter (its own and the
    local services')."""
    with runner(template, env, args) as process:
        progress("waiting for the instances' cold starts")
        wait_until_idle(children(process.proc.pid))
        yield process, runner_process_groups(process, service_ports(env))


def emit(figures: dict) -> None:
    """The contract with bench/run.py: one JSON object on the last stdout line."""
    print(json.dumps(figures, separators=(",", ":")), flush=True)


def wait_until_idle(pids: Iterable[int], *, cpu_share: float = 0.1, timeout_s: float = 180) -> None:
    """Wait until processes (instances doing their cold start) use less than ``cpu_share`` of a core for 1 s."""
    pids = list(pids)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(1)
        if sum(cpu_seconds(pid) for pid in pids) - before < cpu_share:
            return
    progress(f"instances still busy after {timeout_s:.0f} s; measuring anyway")

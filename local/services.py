#!/usr/bin/env python3
"""Bring logpipe's backing services up natively (no Docker): Kafka, PostgreSQL, Redis.

Usage::

    python local/services.py up       # start what is missing, create topics, apply migrations
    python local/services.py env      # print the export lines for the running stack
    python local/services.py status   # show each service up/down (exit 1 if any is down)
    python local/services.py down     # stop what *we* started; data stays in place

    eval "$(python local/services.py up)"   # progress goes to stderr, only export lines to stdout

Run it with the project's virtualenv interpreter: topic creation uses ``confluent_kafka`` and
migrations run as ``<same python> -m logpipe.migrate``. Everything else is standard library.

Services
  Kafka       Apache Kafka 4.1 (KRaft, one node = broker + controller) from Maven Central, resolved with
              ``mvn`` from local/kafka/pom.xml into <state>/kafka/libs (re-resolved only when the pom
              changes), run with the machine's Java 17+. Config: local/kafka/server.properties.template,
              logging: local/kafka/log4j2.properties -> <state>/kafka/logs/server.log.
              Topics: ``log-events`` (6 partitions) and ``log-events-dlq`` (1 partition: dead letters are
              rare and one partition keeps them in arrival order for inspection/redrive), RF 1.
  PostgreSQL  the system's packages (Debian ``postgresql``); private cluster, database/user/password
              ``logpipe``; superuser ``postgres`` with a random password in <pg home>/superuser-password.
  Redis       the system's ``redis-server``; appendonly, config generated in <state>/redis/redis.conf.

All listen on 127.0.0.1 only. Missing PostgreSQL/Redis binaries are installed with apt-get when run as
root; otherwise the command stops and names the package to install. Missing java/mvn is an error.

Environment
  KAFKA_BOOTSTRAP_SERVERS   use this Kafka instead of starting one (must be reachable)
  DATABASE_URL              use this PostgreSQL instead of starting one (must be reachable)
  REDIS_URL                 use this Redis instead of starting one (must be reachable)
                            Topics are created and migrations applied against given services too.
  LOGPIPE_KAFKA_PORT            broker port (default 9092)
  LOGPIPE_KAFKA_CONTROLLER_PORT KRaft controller port (default 9093)
  LOGPIPE_PG_PORT               PostgreSQL port (default 5432)
  LOGPIPE_REDIS_PORT            Redis port (default 6379)
  LOGPIPE_TOPIC_PARTITIONS      partitions of log-events (default 6; an existing topic is grown, never shrunk)
  LOGPIPE_DLQ_PARTITIONS        partitions of log-events-dlq (default 1)
  KAFKA_TOPIC, KAFKA_DLQ_TOPIC  topic names (default log-events, log-events-dlq, as in template.yaml)
  LOGPIPE_KAFKA_HEAP            JVM heap options (default "-Xms256m -Xmx768m")
  LOGPIPE_STATE_DIR             state folder (default <repo>/local/.state)
  LOGPIPE_PG_BINDIR             directory holding initdb/pg_ctl/psql (default: pg_config --bindir,
                                else the highest /usr/lib/postgresql/*/bin, else PATH)

Reuse rules, per service: a service named by its URL variable is only checked and used; else if our
own pid file shows it running and its port answers, it is reused; else if the port already answers
with a usable service (a developer's own Redis or Kafka, a PostgreSQL accepting logpipe/logpipe), it
is reused and never stopped by ``down``; else we start it. A port held by something unusable is an
error that says which variable to set.

State (git-ignored, LOGPIPE_STATE_DIR overrides): <repo>/local/.state/
  kafka/     libs/ (jars + pom hash stamp), data/, logs/server.log, logs/kafka.out, kafka.pid,
             server.properties (rendered at start), cluster-id
  postgres/  data/ (settings in data/logpipe.conf), postgres.log, run/ (unix socket), superuser-password
  redis/     data/ (appendonly), redis.conf, redis.log, redis.pid
  .lock      concurrent `up`/`down` runs wait for each other

Root: PostgreSQL refuses to run as root. When run as root, initdb/pg_ctl run as the ``postgres``
system user (if there is none, a system user ``logpipe`` is created with useradd). If that user cannot
traverse the state folder (e.g. the repo lives under /root), the cluster lives in
/var/tmp/logpipe-<hash of the state path>/postgres instead; the chosen place is recorded in
<state>/postgres/location and shown by ``status``. Kafka and Redis run as the invoking user.

Every wait has a timeout; a service that fails prints the tail of its log and the command exits
non-zero. ``up`` while everything runs changes nothing and takes a few seconds.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / "local"
STATE = Path(os.environ.get("LOGPIPE_STATE_DIR") or LOCAL / ".state").resolve()
KAFKA_POM = LOCAL / "kafka" / "pom.xml"
KAFKA_TEMPLATE = LOCAL / "kafka" / "server.properties.template"
KAFKA_LOG4J = LOCAL / "kafka" / "log4j2.properties"
MIGRATE_MODULE = REPO / "layers" / "logpipe" / "logpipe" / "migrate.py"

HOST = "127.0.0.1"
PG_DB = PG_USER = PG_PASSWORD = "logpipe"
PG_SUPERUSER = "postgres"
PG_RUN_USERS = ("postgres", "logpipe")  # when root: the first that exists runs PostgreSQL, else logpipe is made

KAFKA_START_TIMEOUT = 60
PG_START_TIMEOUT = 60
REDIS_START_TIMEOUT = 20
STOP_TIMEOUT = 60
MVN_TIMEOUT = 900
APT_TIMEOUT = 900
MIGRATE_TIMEOUT = 300
LOCK_TIMEOUT = 900


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ServiceError(Exception):
    """A failure the user must act on; the message says what and where to look."""


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ServiceError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Config:
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    redis_port: int
    topic: str
    dlq_topic: str
    topic_partitions: int
    dlq_partitions: int
    kafka_heap: list[str]
    # URLs named by the user (None = we provide the service)
    kafka_external: str | None
    database_external: str | None
    redis_external: str | None

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            kafka_port=_int_env("LOGPIPE_KAFKA_PORT", 9092),
            kafka_controller_port=_int_env("LOGPIPE_KAFKA_CONTROLLER_PORT", 9093),
            pg_port=_int_env("LOGPIPE_PG_PORT", 5432),
            redis_port=_int_env("LOGPIPE_REDIS_PORT", 6379),
            topic=os.environ.get("KAFKA_TOPIC") or "log-events",
            dlq_topic=os.environ.get("KAFKA_DLQ_TOPIC") or "log-events-dlq",
            topic_partitions=_int_env("LOGPIPE_TOPIC_PARTITIONS", 6),
            dlq_partitions=_int_env("LOGPIPE_DLQ_PARTITIONS", 1),
            kafka_heap=shlex.split(os.environ.get("LOGPIPE_KAFKA_HEAP") or "-Xms256m -Xmx768m"),
            kafka_external=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            database_external=os.environ.get("DATABASE_URL") or None,
            redis_external=os.environ.get("REDIS_URL") or None,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_external or f"{HOST}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return self.database_external or f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.pg_port}/{PG_DB}"

    @property
    def redis_url(self) -> str:
        return self.redis_external or f"redis://{HOST}:{self.redis_port}/0"


# --------------------------------------------------------------------------------------------------
# small helpers


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


def check_running_port(service: str, pid: int, actual: int | None, wanted: int, var: str) -> None:
    """Our own server keeps the port it was started with; refuse to pretend it moved."""
    if actual is not None and actual != wanted:
        raise ServiceError(
            f"{service}: our server (pid {pid}) listens on port {actual}, but {var} asks for {wanted}; "
            f"run `python local/services.py down` with the old {var} first (or unset {var})"
        )


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(service: str, pid: int, needle: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait for exit, SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, needle):
            return
        time.sleep(0.2)
    say(f"{service}: pid {pid} still running after {timeout:.0f}s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not pid_alive(pid, needle):
            return
        time.sleep(0.2)
    raise ServiceError(f"{service}: pid {pid} survived SIGKILL")


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: PgUser | None = None,
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
            proc.communicate(stdin_text.encode() if stdin_text is not None else None, timeout=timeout)
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
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"another local/services.py holds {self.path} for more than {LOCK_TIMEOUT}s"
                    ) from None
                if not announced:
                    say("waiting for another local/services.py run to finish ...")
                    announced = True
                time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


# --------------------------------------------------------------------------------------------------
# system packages


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


# --------------------------------------------------------------------------------------------------
# Kafka


class Kafka:
    name = "kafka"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.home = STATE / "kafka"
        self.libs = self.home / "libs"
        self.stamp = self.libs / ".pom.sha256"
        self.data = self.home / "data"
        self.logs = self.home / "logs"
        self.pidfile = self.home / "kafka.pid"
        self.props = self.home / "server.properties"
        self.cluster_id_file = self.home / "cluster-id"
        self.out_log = self.logs / "kafka.out"
        self.server_log = self.logs / "server.log"
        self.started_at: float | None = None  # wall clock of a start by this command
        # our broker's command line names our server.properties: a copy of the repo never claims
        # (or stops) another checkout's broker
        self.needle = str(self.props)

    # -- state ------------------------------------------------------------------------------------
    def our_pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid and pid_alive(pid, self.needle) else None

    def running_port(self) -> int | None:
        """Port of our running broker: server.properties is rendered only when the broker starts."""
        try:
            m = re.search(r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", self.props.read_text(), re.M)
        except OSError:
            return None
        return int(m.group(1)) if m else None

    def status(self) -> tuple[bool, str]:
        if self.cfg.kafka_external:
            host, port = split_hostport(self.cfg.kafka_external.split(",")[0], 9092)
            up = port_open(host, port)
            return up, f"external KAFKA_BOOTSTRAP_SERVERS={self.cfg.kafka_external}"
        pid = self.our_pid()
        if pid:
            port = self.running_port() or self.cfg.kafka_port
            up = port_open(HOST, port)
            return up, f"ours, pid {pid}, {HOST}:{port}, logs {self.logs}" + (
                "" if up else " (process alive but port not answering)"
            )
        up = port_open(HOST, self.cfg.kafka_port)
        if up:
            return True, f"not started by services.py, answering on {HOST}:{self.cfg.kafka_port}"
        return False, f"{HOST}:{self.cfg.kafka_port}"

    # -- admin ------------------------------------------------------------------------------------
    def admin(self, bootstrap: str):
        try:
            import logging

            from confluent_kafka.admin import AdminClient
        except ImportError:
            raise ServiceError(
                "confluent_kafka is not importable by this interpreter "
                f"({sys.executable}); run services.py with the project's virtualenv python"
            ) from None
        quiet = logging.getLogger("services.librdkafka")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "logger": quiet, "log_level": 0})

    def answers(self, admin, timeout: float = 5.0) -> bool:
        try:
            md = admin.list_topics(timeout=timeout)
        except Exception:
            return False
        return bool(md.brokers)

    def wait_ready(self, bootstrap: str, timeout: float, proc_pid: int | None = None) -> None:
        admin = self.admin(bootstrap)
        first_host, first_port = split_hostport(bootstrap.split(",")[0], 9092)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc_pid is not None and not pid_alive(proc_pid, self.needle):
                raise fail_with_log(
                    self.name, f"the broker (pid {proc_pid}) exited during start-up", self.log_to_read()
                )
            if port_open(first_host, first_port, 1.0) and self.answers(admin, 3.0):
                return
            time.sleep(0.5)
        if proc_pid is not None:
            raise fail_with_log(
                self.name, f"broker did not answer on {bootstrap} within {timeout:.0f}s", self.log_to_read()
            )
        raise ServiceError(f"kafka: nothing usable answers on {bootstrap} (waited {timeout:.0f}s)")

    def log_to_read(self) -> Path:
        """server.log carries the broker's own errors; when this start never reached log4j (JVM options,
        classpath), only kafka.out (the JVM's stdout/stderr) has the story."""
        try:
            if self.server_log.stat().st_mtime >= (self.started_at or 0):
                return self.server_log
        except OSError:
            pass
        return self.out_log

    # -- provisioning -----------------------------------------------------------------------------
    def java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise ServiceError(
                "kafka: `java` not found on PATH; install a Java 17+ runtime (Debian: openjdk-17-jre-headless)"
            )
        out = run([java, "-version"], timeout=60, what="java -version")
        m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if m:
            major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)
            if major < 17:
                raise ServiceError(f"kafka: Kafka 4 needs Java 17 or newer; `{java}` is Java {major}")
        return java

    def resolve_libs(self) -> None:
        digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
        if self.stamp.exists() and self.stamp.read_text().strip() == digest and any(self.libs.glob("kafka_2.13-*.jar")):
            return
        mvn = shutil.which("mvn")
        if not mvn:
            raise ServiceError(
                "kafka: `mvn` not found on PATH; install Apache Maven (Debian: maven) so the broker can be "
                "resolved from Maven Central, or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka"
            )
        staging = self.home / "libs.new"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]  # fmt: skip
        say(f"kafka: resolving the broker from Maven Central ({shlex.join(cmd)})")
        t0 = time.monotonic()
        try:
            run(cmd, timeout=MVN_TIMEOUT, what="kafka: mvn dependency resolution")
        except ServiceError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise ServiceError(f"kafka: mvn succeeded but {staging} holds no kafka_2.13 jar")
        (staging / ".pom.sha256").write_text(digest + "\n")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        say(f"kafka: {len(list(self.libs.glob('*.jar')))} jars in {self.libs} ({time.monotonic() - t0:.1f}s)")

    def render_config(self) -> None:
        text = string.Template(KAFKA_TEMPLATE.read_text()).substitute(
            port=self.cfg.kafka_port,
            controller_port=self.cfg.kafka_controller_port,
            data_dir=self.data,
        )
        write_if_changed(self.props, text)

    def cluster_id(self) -> str:
        try:
            cid = self.cluster_id_file.read_text().strip()
            if cid:
                return cid
        except OSError:
            pass
        while True:  # Kafka's Uuid: base64url of 16 random bytes, never starting with '-'
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            if not cid.startswith("-"):
                break
        self.cluster_id_file.write_text(cid + "\n")
        return cid

    def format_storage(self, java: str) -> None:
        if (self.data / "meta.properties").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [
            java, "-Xmx256m", "-cp", f"{self.libs}/*", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
            f"-Dkafka.logs.dir={self.logs}", "kafka.tools.StorageTool", "format", "--ignore-formatted",
            "-t", self.cluster_id(), "-c", str(self.props),
        ]  # fmt: skip
        run(cmd, timeout=120, what="kafka: storage format", cwd=self.home)

    def start(self) -> int:
        java = self.java()
        self.resolve_libs()
        self.render_config()
        self.format_storage(java)
        cmd = [
            java, *self.cfg.kafka_heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={self.logs}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.props),
        ]  # fmt: skip
        self.started_at = time.time()
        with open(self.out_log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                cmd, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def up(self) -> None:
        cfg = self.cfg
        t0 = time.monotonic()
        if cfg.kafka_external:
            say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={cfg.kafka_external}")
            self.wait_ready(cfg.kafka_external, timeout=15)
        else:
            for d in (self.home, self.logs):
                d.mkdir(parents=True, exist_ok=True)
            bootstrap = cfg.bootstrap_servers
            pid = self.our_pid()
            if pid:
                check_running_port(self.name, pid, self.running_port(), cfg.kafka_port, "LOGPIPE_KAFKA_PORT")
                self.wait_ready(bootstrap, timeout=KAFKA_START_TIMEOUT, proc_pid=pid)
                say(f"kafka: already running (pid {pid}) on {bootstrap}")
            elif port_open(HOST, cfg.kafka_port):
                try:
                    self.wait_ready(bootstrap, timeout=10)
                except ServiceError:
                    raise ServiceError(
                        f"kafka: {bootstrap} is taken by something that is not a usable Kafka broker; "
                        "stop it, or set LOGPIPE_KAFKA_PORT (and LOGPIPE_KAFKA_CONTROLLER_PORT) to free "
                        "ports, or KAFKA_BOOTSTRAP_SERVERS to the broker to use"
                    ) from None
                say(f"kafka: reusing the broker already answering on {bootstrap} (not started by services.py)")
            else:
                if port_open(HOST, cfg.kafka_controller_port):
                    raise ServiceError(
                        f"kafka: controller port {HOST}:{cfg.kafka_controller_port} is already in use; "
                        "set LOGPIPE_KAFKA_CONTROLLER_PORT to a free port"
                    )
                pid = self.start()
                self.wait_ready(bootstrap, timeout=KAFKA_START_TIMEOUT, proc_pid=pid)
                say(f"kafka: started (pid {pid}) on {bootstrap} in {time.monotonic() - t0:.1f}s, logs {self.logs}")
        self.ensure_topics()

    def ensure_topics(self) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewPartitions, NewTopic

        cfg = self.cfg
        admin = self.admin(cfg.bootstrap_servers)
        wanted = {cfg.topic: cfg.topic_partitions, cfg.dlq_topic: cfg.dlq_partitions}
        deadline = time.monotonic() + 30
        while True:
            try:
                md = admin.list_topics(timeout=10)
                break
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"kafka: cannot list topics on {cfg.bootstrap_servers}: {exc}") from None
                time.sleep(1)
        existing = {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}
        missing = [NewTopic(n, num_partitions=p, replication_factor=1) for n, p in wanted.items() if n not in existing]
        created = []
        deadline = time.monotonic() + 60
        while missing:  # a broker that just started may answer "not controller"/timeouts for a moment
            retry = []
            for topic, fut in admin.create_topics(missing, operation_timeout=30, request_timeout=30).items():
                try:
                    fut.result(timeout=40)
                    created.append(topic)
                except KafkaException as exc:
                    err = exc.args[0]
                    if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                        continue
                    if err.retriable() and time.monotonic() < deadline:
                        retry.append(next(t for t in missing if t.topic == topic))
                        continue
                    raise ServiceError(f"kafka: creating topic {topic} failed: {exc}") from None
            missing = retry
            if missing:
                time.sleep(1)
        grow = [NewPartitions(n, wanted[n]) for n, have in existing.items() if n in wanted and have < wanted[n]]
        for n, have in existing.items():
            if n in wanted and have > wanted[n]:
                say(
                    f"kafka: topic {n} has {have} partitions (> {wanted[n]} wanted); "
                    "Kafka cannot shrink a topic, left as is"
                )
        if grow:
            for topic, fut in admin.create_partitions(grow, operation_timeout=30, request_timeout=30).items():
                try:
                    fut.result(timeout=40)
                    say(f"kafka: topic {topic} grown to {wanted[topic]} partitions")
                except KafkaException as exc:
                    raise ServiceError(f"kafka: growing topic {topic} failed: {exc}") from None
        desc = ", ".join(f"{n} ({p} partition{'s' if p > 1 else ''})" for n, p in wanted.items())
        say(f"kafka: topics {'created' if created else 'present'}: {desc}")

    def down(self) -> None:
        pid = self.our_pid()
        if not pid:
            say("kafka: not running (nothing of ours to stop)")
            self.pidfile.unlink(missing_ok=True)
            return
        t0 = time.monotonic()
        stop_pid(self.name, pid, self.needle)
        self.pidfile.unlink(missing_ok=True)
        say(f"kafka: stopped (pid {pid}) in {time.monotonic() - t0:.1f}s")


# --------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class PgUser:
    name: str
    uid: int
    gid: int


class Postgres:
    name = "postgresql"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = STATE / "postgres"
        self.location_file = self.state / "location"
        self._bindir: Path | None = None

    # -- places -----------------------------------------------------------------------------------
    @property
    def fallback_home(self) -> Path:
        digest = hashlib.sha256(str(STATE).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"logpipe-{digest}" / "postgres"

    @property
    def home(self) -> Path:
        """Where data, socket, log and superuser password live: <state>/postgres, or the fallback
        under /var/tmp when `choose_home` recorded it (only a record matching this state folder counts,
        so a copied repo does not share the original's cluster)."""
        try:
            if Path(self.location_file.read_text().strip()) == self.fallback_home:
                return self.fallback_home
        except OSError:
            pass
        return self.state

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    @property
    def sockets(self) -> Path:
        return self.home / "run"

    @property
    def pwfile(self) -> Path:
        return self.home / "superuser-password"

    def run_user(self) -> PgUser | None:
        """None when not root (run as ourselves); else the unprivileged user that owns the cluster:
        the owner of an existing data directory, else the first of PG_RUN_USERS (created if none exists)."""
        if os.geteuid() != 0:
            return None
        with contextlib.suppress(OSError, KeyError):
            st = (self.data / "PG_VERSION").stat()
            if st.st_uid != 0:
                return PgUser(pwd.getpwuid(st.st_uid).pw_name, st.st_uid, st.st_gid)
        for name in PG_RUN_USERS:
            try:
                pw = pwd.getpwnam(name)
                return PgUser(name, pw.pw_uid, pw.pw_gid)
            except KeyError:
                continue
        say("postgresql: creating system user `logpipe` to run PostgreSQL (it refuses to run as root)")
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "logpipe",
            ],
            timeout=60,
            what="useradd logpipe",
        )
        pw = pwd.getpwnam("logpipe")
        return PgUser("logpipe", pw.pw_uid, pw.pw_gid)

    def can_traverse(self, user: PgUser, path: Path) -> bool:
        try:
            run(["test", "-x", str(path)], timeout=30, what="traverse check", user=user, cwd=Path("/"))
            return True
        except ServiceError:
            return False

    def choose_home(self, user: PgUser | None) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        if self.home != self.state or (self.state / "data" / "PG_VERSION").exists():
            return self.home  # decided on an earlier run
        home = self.state
        if user is not None:
            self.state.chmod(0o755)
            if not self.can_traverse(user, self.state):
                home = self.fallback_home
                home.parent.mkdir(mode=0o755, exist_ok=True)
                home.parent.chmod(0o755)
                say(
                    f"postgresql: user {user.name} cannot traverse {self.state}; "
                    f"the cluster lives in {home} instead (recorded in {self.location_file})"
                )
                write_if_changed(self.location_file, f"{home}\n")
        home.mkdir(parents=True, exist_ok=True)
        return home

    def bindir(self) -> Path:
        if self._bindir:
            return self._bindir
        candidates: list[Path] = []
        if os.environ.get("LOGPIPE_PG_BINDIR"):
            candidates.append(Path(os.environ["LOGPIPE_PG_BINDIR"]))
        try:
            pg_version = (self.data / "PG_VERSION").read_text().strip()
        except OSError:
            pg_version = None
        if pg_version:  # an existing cluster must be run by the same major version
            candidates.append(Path(f"/usr/lib/postgresql/{pg_version}/bin"))
        if shutil.which("pg_config"):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30).stdout
                candidates.append(Path(out.strip()))

        def version_key(p: Path) -> tuple[int, ...]:
            return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True)
        if shutil.which("initdb"):
            candidates.append(Path(shutil.which("initdb")).parent)
        for c in candidates:
            if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "psql").exists():
                self._bindir = c
                return c
        return None  # type: ignore[return-value]

    def ensure_binaries(self) -> Path:
        if not self.bindir():
            apt_install(["postgresql"], "postgresql: initdb/pg_ctl not found (Debian package: postgresql)")
            self._bindir = None
            if not self.bindir():
                raise ServiceError("postgresql: still no initdb/pg_ctl after installing; set LOGPIPE_PG_BINDIR")
        bindir = self.bindir()
        try:
            pg_version = (self.data / "PG_VERSION").read_text().strip()
        except OSError:
            pg_version = None
        if pg_version:
            out = run([bindir / "pg_ctl", "--version"], timeout=30, what="pg_ctl --version")
            major = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
            if major and major.group(1) != pg_version:
                raise ServiceError(
                    f"postgresql: the cluster in {self.data} is version {pg_version} but {bindir} "
                    f"is {out.strip()}; install postgresql-{pg_version} or remove {self.data} to start afresh"
                )
        return bindir

    def clean_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8" if _has_c_utf8() else "C"
        return env

    # -- state ------------------------------------------------------------------------------------
    def our_pid(self) -> int | None:
        # the postmaster's command line is `.../postgres -D <data>`: only our own cluster matches
        pid = read_pid(self.data / "postmaster.pid")
        return pid if pid and pid_alive(pid, f"-D {self.data}") else None

    def running_port(self) -> int | None:
        try:  # postmaster.pid: pid, data dir, start time, port, ...
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> tuple[bool, str]:
        if self.cfg.database_external:
            u = urllib.parse.urlsplit(self.cfg.database_external)
            up = port_open(u.hostname or HOST, u.port or 5432)
            return up, "external DATABASE_URL"
        pid = self.our_pid()
        if pid:
            port = self.running_port() or self.cfg.pg_port
            return port_open(HOST, port), f"ours, pid {pid}, {HOST}:{port}, data {self.data}, log {self.log}"
        up = port_open(HOST, self.cfg.pg_port)
        if up:
            return True, f"not started by services.py, answering on {HOST}:{self.cfg.pg_port}"
        return False, f"{HOST}:{self.cfg.pg_port}"

    def psql(self, url: str, sql: str, *, what: str, password: str | None = None, timeout: float = 60) -> str:
        env = self.clean_env()
        env["PGCONNECT_TIMEOUT"] = "5"
        if password is not None:
            env["PGPASSWORD"] = password
        return run(
            [self.bindir() / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
            timeout=timeout, what=what, env=env, stdin_text=sql,
        )  # fmt: skip

    # -- provisioning -----------------------------------------------------------------------------
    def config_text(self) -> str:
        return f"""# Written by local/services.py whenever it starts the cluster; included by postgresql.conf.
listen_addresses = '{HOST}'
port = {self.cfg.pg_port}
unix_socket_directories = '{self.sockets}'
max_connections = 200            # several runners with pools + test sessions
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 128MB
effective_cache_size = 1GB
max_wal_size = 2GB               # bulk COPY batches: fewer forced checkpoints
checkpoint_timeout = 15min
# fsync and synchronous_commit stay ON: the consumer commits Kafka offsets only after PostgreSQL
# has committed a batch, so an acknowledged-but-lost commit would silently drop events. Batches are
# large, so the per-commit flush is cheap anyway.
fsync = on
synchronous_commit = on
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
"""

    def initdb(self, user: PgUser | None, bindir: Path) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        say(f"postgresql: initdb in {self.data}" + (f" (as user {user.name})" if user else ""))
        shutil.rmtree(self.data, ignore_errors=True)  # a half-made cluster from an interrupted run
        self.data.mkdir(mode=0o700, parents=True)
        self.sockets.mkdir(mode=0o755, exist_ok=True)
        if not self.pwfile.exists():
            self.pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        self.pwfile.chmod(0o600)
        if user is not None:
            for p in (self.home, self.data, self.sockets, self.pwfile):
                os.chown(p, user.uid, user.gid)
        locale = "C.UTF-8" if _has_c_utf8() else "C"
        run(
            [bindir / "initdb", "-D", self.data, "-U", PG_SUPERUSER, f"--pwfile={self.pwfile}",
             "-A", "scram-sha-256", "-E", "UTF8", f"--locale={locale}", "--no-instructions"],
            timeout=180, what="postgresql: initdb", env=self.clean_env(), cwd=self.home, user=user,
        )  # fmt: skip
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as fh:
            fh.write("\n# local/services.py settings\ninclude 'logpipe.conf'\n")

    def write_config(self, user: PgUser | None) -> bool:
        path = self.data / "logpipe.conf"
        changed = write_if_changed(path, self.config_text(), mode=0o600)
        if changed and user is not None:
            os.chown(path, user.uid, user.gid)
        return changed

    def start(self, user: PgUser | None, bindir: Path) -> None:
        self.sockets.mkdir(mode=0o755, exist_ok=True)
        if not self.log.exists():
            self.log.touch()
        if user is not None:
            os.chown(self.sockets, user.uid, user.gid)
            os.chown(self.log, user.uid, user.gid)
        try:
            run(
                [bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", str(PG_START_TIMEOUT),
                 "-s", "start"],
                timeout=PG_START_TIMEOUT + 15, what="postgresql: pg_ctl start", env=self.clean_env(),
                cwd=self.home, user=user, new_session=True,
            )  # fmt: skip
        except ServiceError as exc:
            raise fail_with_log(self.name, f"failed to start ({str(exc).splitlines()[0]})", self.log) from None

    def bootstrap_sql(self) -> None:
        """Create role and database idempotently, as the superuser over TCP."""
        password = self.pwfile.read_text().strip()
        url = f"postgresql://{PG_SUPERUSER}@{HOST}:{self.cfg.pg_port}/postgres"
        sql = f"""
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', '{PG_USER}', '{PG_PASSWORD}')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}')\\gexec
SELECT format('CREATE DATABASE %I OWNER %I', '{PG_DB}', '{PG_USER}')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{PG_DB}')\\gexec
"""
        self.psql(url, sql, what="postgresql: creating role/database logpipe", password=password)

    def check_usable(self, url: str) -> None:
        if not self.bindir():
            return  # no psql here: the migration step will tell
        self.psql(url, "SELECT 1;", what=f"postgresql: connecting to {_redact(url)}", timeout=20)

    def up(self) -> None:
        cfg = self.cfg
        t0 = time.monotonic()
        if cfg.database_external:
            u = urllib.parse.urlsplit(cfg.database_external)
            host, port = u.hostname or HOST, u.port or 5432
            if not port_open(host, port, 5):
                raise ServiceError(f"postgresql: DATABASE_URL={_redact(cfg.database_external)} is not reachable")
            self.check_usable(cfg.database_external)
            say(f"postgresql: using DATABASE_URL={_redact(cfg.database_external)}")
            return
        pid = self.our_pid()
        if pid:
            check_running_port(self.name, pid, self.running_port(), cfg.pg_port, "LOGPIPE_PG_PORT")
            deadline = time.monotonic() + PG_START_TIMEOUT
            while not port_open(HOST, cfg.pg_port):
                if time.monotonic() > deadline or not pid_alive(pid, f"-D {self.data}"):
                    raise fail_with_log(
                        self.name,
                        f"our server (pid {pid}) runs but does not answer on {HOST}:{cfg.pg_port}",
                        self.log,
                    )
                time.sleep(0.5)
            with contextlib.suppress(OSError):
                if (self.data / "logpipe.conf").read_text() != self.config_text():
                    say("postgresql: services.py's settings changed; run `down` then `up` to apply them")
            self.ensure_binaries()
            self.bootstrap_sql()
            say(f"postgresql: already running (pid {pid}) on {HOST}:{cfg.pg_port}")
            return
        if not pid and port_open(HOST, cfg.pg_port):
            try:
                self.check_usable(cfg.database_url)  # with psql when installed; else migrations will tell
            except ServiceError as exc:
                raise ServiceError(
                    f"postgresql: {HOST}:{cfg.pg_port} is taken by a server that does not accept "
                    f"{PG_USER}/{PG_PASSWORD} on database {PG_DB} ({str(exc).splitlines()[-1]}). Create that "
                    "role/database there, stop that server, set LOGPIPE_PG_PORT to a free port, "
                    "or set DATABASE_URL"
                ) from None
            say(
                f"postgresql: reusing the server already answering on {HOST}:{cfg.pg_port} (not started by services.py)"
            )
            return
        bindir = self.ensure_binaries()
        user = self.run_user()
        self.choose_home(user)
        self.initdb(user, bindir)
        self.write_config(user)
        self.start(user, bindir)
        self.bootstrap_sql()
        say(
            f"postgresql: started on {HOST}:{cfg.pg_port} in {time.monotonic() - t0:.1f}s, "
            f"data {self.data}, log {self.log}"
        )

    def down(self) -> None:
        pid = self.our_pid()
        if not pid:
            say("postgresql: not running (nothing of ours to stop)")
            return
        t0 = time.monotonic()
        bindir = self.bindir()
        user = self.run_user()
        if bindir:
            try:
                run(
                    [bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT),
                     "-s", "stop"],
                    timeout=STOP_TIMEOUT + 15, what="postgresql: pg_ctl stop", env=self.clean_env(),
                    cwd=self.home, user=user,
                )  # fmt: skip
            except ServiceError as exc:
                say(f"{exc}\npostgresql: falling back to signals")
        if pid_alive(pid, f"-D {self.data}"):
            stop_pid(self.name, pid, f"-D {self.data}")  # SIGTERM = smart shutdown, SIGKILL as last resort
        say(f"postgresql: stopped (pid {pid}) in {time.monotonic() - t0:.1f}s")


_C_UTF8: bool | None = None


def _has_c_utf8() -> bool:
    global _C_UTF8
    if _C_UTF8 is None:
        try:
            out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
            _C_UTF8 = any(x.lower() in ("c.utf8", "c.utf-8") for x in out.split())
        except (OSError, subprocess.SubprocessError):
            _C_UTF8 = False
    return _C_UTF8


def _redact(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    if u.password:
        netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
        return urllib.parse.urlunsplit(u._replace(netloc=netloc))
    return url


# --------------------------------------------------------------------------------------------------
# Redis


def redis_ping(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Send PING; return the first reply line ('+PONG', '-NOAUTH ...') or None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            first = data.decode("utf-8", "replace").strip().splitlines()
            return first[0][:120] if first else None
    except OSError:
        return None


class Redis:
    name = "redis"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.home = STATE / "redis"
        self.data = self.home / "data"
        self.conf = self.home / "redis.conf"
        self.pidfile = self.home / "redis.pid"
        self.log = self.home / "redis.log"

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
        m = re.search(r"redis-server \S*:(\d+)", title)
        return int(m.group(1)) if m else None

    def status(self) -> tuple[bool, str]:
        if self.cfg.redis_external:
            u = urllib.parse.urlsplit(self.cfg.redis_external)
            up = port_open(u.hostname or HOST, u.port or 6379)
            return up, f"external REDIS_URL={_redact(self.cfg.redis_external)}"
        pid = self.our_pid()
        if pid:
            port = self.running_port(pid) or self.cfg.redis_port
            return redis_ping(HOST, port) is not None, f"ours, pid {pid}, {HOST}:{port}, log {self.log}"
        up = redis_ping(HOST, self.cfg.redis_port) is not None
        if up:
            return True, f"not started by services.py, answering on {HOST}:{self.cfg.redis_port}"
        return False, f"{HOST}:{self.cfg.redis_port}"

    def config_text(self) -> str:
        return f"""# Written by local/services.py whenever it starts Redis.
bind {HOST}
protected-mode yes
port {self.cfg.redis_port}
daemonize yes
pidfile {self.pidfile}
logfile {self.log}
loglevel notice
dir {self.data}
appendonly yes
appendfsync everysec
save 3600 1 300 100 60 10000
"""

    def server_binary(self) -> str:
        found = shutil.which("redis-server") or next(
            (
                p
                for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")
                if os.access(p, os.X_OK)
            ),
            None,
        )
        if found:
            return found
        apt_install(["redis-server"], "redis: redis-server not found (Debian package: redis-server)")
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
        )
        if not found:
            raise ServiceError("redis: still no redis-server after installing it")
        return found

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = redis_ping(HOST, self.cfg.redis_port)
            if reply == "+PONG":
                return
            if reply and reply.startswith("-LOADING"):
                pass  # replaying the append-only file
            time.sleep(0.2)
        raise fail_with_log(
            self.name, f"did not answer PING on {HOST}:{self.cfg.redis_port} within {timeout:.0f}s", self.log
        )

    def up(self) -> None:
        cfg = self.cfg
        t0 = time.monotonic()
        if cfg.redis_external:
            u = urllib.parse.urlsplit(cfg.redis_external)
            host, port = u.hostname or HOST, u.port or 6379
            if redis_ping(host, port, 5) is None and not port_open(host, port, 5):
                raise ServiceError(f"redis: REDIS_URL={_redact(cfg.redis_external)} is not reachable")
            say(f"redis: using REDIS_URL={_redact(cfg.redis_external)}")
            return
        self.data.mkdir(parents=True, exist_ok=True)
        pid = self.our_pid()
        if pid:
            check_running_port(self.name, pid, self.running_port(pid), cfg.redis_port, "LOGPIPE_REDIS_PORT")
            self.wait_ready(REDIS_START_TIMEOUT)
            with contextlib.suppress(OSError):
                if self.conf.read_text() != self.config_text():
                    say("redis: services.py's settings changed; run `down` then `up` to apply them")
            say(f"redis: already running (pid {pid}) on {HOST}:{cfg.redis_port}")
            return
        reply = redis_ping(HOST, cfg.redis_port)
        if reply is not None:
            if reply == "+PONG":
                say(
                    f"redis: reusing the server already answering on {HOST}:{cfg.redis_port} "
                    "(not started by services.py)"
                )
                return
            raise ServiceError(
                f"redis: {HOST}:{cfg.redis_port} answers PING with {reply!r}; "
                "set REDIS_URL (with credentials) to use it, or LOGPIPE_REDIS_PORT to a free port"
            )
        if port_open(HOST, cfg.redis_port):
            raise ServiceError(
                f"redis: {HOST}:{cfg.redis_port} is taken by something that is not Redis; set LOGPIPE_REDIS_PORT"
            )
        binary = self.server_binary()
        write_if_changed(self.conf, self.config_text())
        self.pidfile.unlink(missing_ok=True)
        run([binary, self.conf], timeout=30, what="redis: redis-server", cwd=self.home, new_session=True)
        self.wait_ready(REDIS_START_TIMEOUT)
        say(
            f"redis: started (pid {read_pid(self.pidfile)}) on {HOST}:{cfg.redis_port} "
            f"in {time.monotonic() - t0:.1f}s, log {self.log}"
        )

    def down(self) -> None:
        pid = self.our_pid()
        if not pid:
            say("redis: not running (nothing of ours to stop)")
            return
        t0 = time.monotonic()
        stop_pid(self.name, pid, "redis-server")  # SIGTERM: Redis fsyncs the AOF and exits cleanly
        say(f"redis: stopped (pid {pid}) in {time.monotonic() - t0:.1f}s")


# --------------------------------------------------------------------------------------------------
# migrations and commands


def migrate(cfg: Config) -> None:
    if not MIGRATE_MODULE.exists():
        say(f"WARNING: migrations skipped: {MIGRATE_MODULE.relative_to(REPO)} does not exist yet")
        return
    layer = str(REPO / "layers" / "logpipe")
    env = dict(os.environ, DATABASE_URL=cfg.database_url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (layer, os.environ.get("PYTHONPATH")) if p)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "logpipe.migrate"]
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sys.stderr, timeout=MIGRATE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"migrations: `{shlex.join(cmd)}` timed out after {MIGRATE_TIMEOUT}s") from None
    if proc.returncode != 0:
        raise ServiceError(
            f"migrations failed (exit {proc.returncode}; output above): PYTHONPATH={layer} "
            f"DATABASE_URL={_redact(cfg.database_url)} {shlex.join(cmd)}"
        )
    say(f"migrations: done ({time.monotonic() - t0:.1f}s)")


def env_lines(cfg: Config) -> list[str]:
    u = urllib.parse.urlsplit(cfg.database_url)
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers,
        "DATABASE_URL": cfg.database_url,
        "REDIS_URL": cfg.redis_url,
        "PGHOST": u.hostname or HOST,
        "PGPORT": str(u.port or 5432),
        "PGUSER": urllib.parse.unquote(u.username or ""),
        "PGPASSWORD": urllib.parse.unquote(u.password or ""),
        "PGDATABASE": urllib.parse.unquote(u.path.lstrip("/")),
    }
    return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


def services(cfg: Config) -> list:
    return [Kafka(cfg), Postgres(cfg), Redis(cfg)]


def cmd_up(cfg: Config) -> int:
    t0 = time.monotonic()
    try:  # fail before starting anything rather than after the broker is up
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise ServiceError(
            f"confluent_kafka is not importable by {sys.executable}; run `up` with the project's virtualenv "
            "python (e.g. .venv/bin/python local/services.py up; `make setup` creates it)"
        ) from None
    with StateLock(STATE / ".lock"):
        kafka, pg, redis = services(cfg)
        # Sequential on purpose: simple to follow, and every step has its own timeout.
        redis.up()
        kafka.up()
        pg.up()
        migrate(cfg)
    say(f"all services up in {time.monotonic() - t0:.1f}s")
    print("\n".join(env_lines(cfg)), flush=True)
    return 0


def cmd_down(cfg: Config) -> int:
    t0 = time.monotonic()
    with StateLock(STATE / ".lock"):
        errors = []
        for svc in reversed(services(cfg)):
            try:
                svc.down()
            except ServiceError as exc:
                errors.append(str(exc))
    if errors:
        raise ServiceError("\n".join(errors))
    say(f"down in {time.monotonic() - t0:.1f}s (data kept in {STATE})")
    return 0


def cmd_status(cfg: Config) -> int:
    all_up = True
    for svc in services(cfg):
        up, detail = svc.status()
        all_up &= up
        print(f"{svc.name:<11} {'up' if up else 'down':<5} {detail}")
    pg = Postgres(cfg)
    if pg.home != pg.state:
        print(f"{'':<11} {'':<5} PostgreSQL cluster location: {pg.home} (see {pg.location_file})")
    return 0 if all_up else 1


def cmd_env(cfg: Config) -> int:
    for svc in services(cfg):
        up, _ = svc.status()
        if not up:
            say(f"warning: {svc.name} is not running; start it with: python local/services.py up")
    print("\n".join(env_lines(cfg)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="services.py",
        description="Start/stop logpipe's Kafka, PostgreSQL and Redis natively (see the module docstring).",
    )
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    try:
        cfg = Config.from_env()
        return {"up": cmd_up, "down": cmd_down, "env": cmd_env, "status": cmd_status}[args.command](cfg)
    except ServiceError as exc:
        say(f"ERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Apache Kafka 4.1 (KRaft, one node = broker + controller) from Maven Central, run on the machine's Java 17+.

Resolved with ``mvn`` from local/kafka/pom.xml into <state>/kafka/libs (re-resolved only when the pom changes).
Config: local/kafka/server.properties.template, logging: local/kafka/log4j2.properties -> <state>/kafka/logs.
Topics: template.yaml's EventsTopic and DeadLetterTopic with their partition counts, replication factor 1.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shlex
import shutil
import string
import sys
import time
import uuid
from pathlib import Path

from .process import (
    HOST,
    ServiceError,
    fail_with_log,
    pid_alive,
    port_open,
    read_pid,
    run,
    say,
    spawn_daemon,
    split_hostport,
    stop_pid,
    write_if_changed,
)
from .service import Service
from .settings import REPO

KAFKA_DIR = REPO / "local" / "kafka"
POM = KAFKA_DIR / "pom.xml"
PROPERTIES_TEMPLATE = KAFKA_DIR / "server.properties.template"
LOG4J = KAFKA_DIR / "log4j2.properties"
START_TIMEOUT = 60
MVN_TIMEOUT = 900
DOCKER_HOST = "host.docker.internal"


def admin_client(bootstrap: str):
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        raise ServiceError(
            f"confluent_kafka is not importable by this interpreter ({sys.executable}); "
            "run services.py with the project's virtualenv python"
        ) from None
    quiet = logging.getLogger("services.librdkafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "logger": quiet, "log_level": 0})


def broker_answers(admin, timeout: float = 5.0) -> bool:
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:
        return False


class Kafka(Service):
    name = "kafka"
    url_variable = "KAFKA_BOOTSTRAP_SERVERS"
    port_variable = "LOGPIPE_KAFKA_PORT"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.home = cfg.state / "kafka"
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

    @property
    def external(self) -> str | None:
        return self.cfg.kafka_external

    @property
    def port(self) -> int:
        return self.cfg.kafka_port

    def external_address(self) -> tuple[str, int]:
        return split_hostport(self.cfg.bootstrap_servers.split(",")[0], 9092)

    def our_pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid and pid_alive(pid, self.needle) else None

    def running_port(self, pid: int) -> int | None:
        """server.properties is rendered only when the broker starts."""
        try:
            found = re.search(r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", self.props.read_text(), re.M)
        except OSError:
            return None
        return int(found.group(1)) if found else None

    def answers(self, host: str, port: int) -> bool:
        return port_open(host, port)

    def details(self) -> str:
        return f"logs {self.logs}"

    def check_external(self) -> None:
        self.wait_ready(self.cfg.bootstrap_servers, timeout=15)

    def wait_ours(self, pid: int) -> None:
        self.wait_ready(self.cfg.bootstrap_servers, timeout=START_TIMEOUT, proc_pid=pid)

    def check_foreign(self) -> None:
        try:
            self.wait_ready(self.cfg.bootstrap_servers, timeout=10)
        except ServiceError:
            raise ServiceError(
                f"kafka: {self.cfg.bootstrap_servers} is taken by something that is not a usable Kafka broker; "
                "stop it, or set LOGPIPE_KAFKA_PORT (and LOGPIPE_KAFKA_CONTROLLER_PORT) to free "
                "ports, or KAFKA_BOOTSTRAP_SERVERS to the broker to use"
            ) from None

    def wait_ready(self, bootstrap: str, timeout: float, proc_pid: int | None = None) -> None:
        admin = admin_client(bootstrap)
        host, port = split_hostport(bootstrap.split(",")[0], 9092)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc_pid is not None and not pid_alive(proc_pid, self.needle):
                raise fail_with_log(
                    self.name, f"the broker (pid {proc_pid}) exited during start-up", self.log_to_read()
                )
            if port_open(host, port, 1.0) and broker_answers(admin, 3.0):
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

    # -- provisioning -----------------------------------------------------------------------------------
    def java(self) -> str:
        java = shutil.which("java")
        if not java:
            raise ServiceError(
                "kafka: `java` not found on PATH; install a Java 17+ runtime (Debian: openjdk-17-jre-headless)"
            )
        out = run([java, "-version"], timeout=60, what="java -version")
        found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if found:
            major = int(found.group(1)) if found.group(1) != "1" else int(found.group(2) or 0)
            if major < 17:
                raise ServiceError(f"kafka: Kafka 4 needs Java 17 or newer; `{java}` is Java {major}")
        return java

    def resolve_libs(self) -> None:
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()
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
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]  # fmt: skip
        say(f"kafka: resolving the broker from Maven Central ({shlex.join(cmd)})")
        started = time.monotonic()
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
        say(f"kafka: {len(list(self.libs.glob('*.jar')))} jars in {self.libs} ({time.monotonic() - started:.1f}s)")

    def render_config(self) -> None:
        docker_port = self.cfg.kafka_docker_port
        text = string.Template(PROPERTIES_TEMPLATE.read_text()).substitute(
            port=self.cfg.kafka_port,
            controller_port=self.cfg.kafka_controller_port,
            data_dir=self.data,
            docker_listener=f",DOCKER://0.0.0.0:{docker_port}" if docker_port else "",
            docker_advertised_listener=f",DOCKER://{DOCKER_HOST}:{docker_port}" if docker_port else "",
        )
        write_if_changed(self.props, text)

    def cluster_id(self) -> str:
        try:
            if cid := self.cluster_id_file.read_text().strip():
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
            java, "-Xmx256m", "-cp", f"{self.libs}/*", f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={self.logs}", "kafka.tools.StorageTool", "format", "--ignore-formatted",
            "-t", self.cluster_id(), "-c", str(self.props),
        ]  # fmt: skip
        run(cmd, timeout=120, what="kafka: storage format", cwd=self.home)

    def start(self) -> int:
        if port_open(HOST, self.cfg.kafka_controller_port):
            raise ServiceError(
                f"kafka: controller port {HOST}:{self.cfg.kafka_controller_port} is already in use; "
                "set LOGPIPE_KAFKA_CONTROLLER_PORT to a free port"
            )
        for folder in (self.home, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        java = self.java()
        self.resolve_libs()
        self.render_config()
        self.format_storage(java)
        cmd = [
            java, *self.cfg.kafka_heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}", f"-Dkafka.logs.dir={self.logs}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.props),
        ]  # fmt: skip
        self.started_at = time.time()
        proc = spawn_daemon(cmd, self.home, self.out_log, self.pidfile)
        self.wait_ready(self.cfg.bootstrap_servers, timeout=START_TIMEOUT, proc_pid=proc.pid)
        return proc.pid

    def stop(self, pid: int) -> None:
        stop_pid(self.name, pid, self.needle)
        self.pidfile.unlink(missing_ok=True)

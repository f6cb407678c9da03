"""`local/services.py` against the running stack: `env` is usable, `up` on a running stack is quick and
idempotent, `status` agrees. The environment the tests run with (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
REDIS_URL) is passed through, so `up` checks and reuses exactly the services the other tests use."""

import shlex
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = REPO_ROOT / "local" / "services.py"


def run_services(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SERVICES), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=env,
    )


def parse_exports(stdout: str) -> dict[str, str]:
    values = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, f"not an export line: {line!r}"
        name, _, value = words[1].partition("=")
        values[name] = value
    return values


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def exports() -> dict[str, str]:
    result = run_services("env", timeout=60)
    assert result.returncode == 0, result.stderr
    return parse_exports(result.stdout)


def test_env_prints_every_connection_setting(exports: dict[str, str]) -> None:
    assert set(exports) == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "KAFKA_DLQ_TOPIC",
        "KAFKA_AUTH",
        "DATABASE_SECRET_ARN",
        "REDIS_SECRET_ARN",
        "DATABASE_URL",
        "REDIS_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
    }
    db = urllib.parse.urlsplit(exports["DATABASE_URL"])
    assert (exports["PGHOST"], int(exports["PGPORT"])) == (db.hostname, db.port or 5432)
    assert (exports["PGUSER"], exports["PGPASSWORD"]) == (db.username, db.password)
    assert exports["PGDATABASE"] == db.path.lstrip("/")


def test_env_points_at_reachable_services(exports: dict[str, str]) -> None:
    host, _, port = exports["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0].rpartition(":")
    assert reachable(host, int(port)), exports["KAFKA_BOOTSTRAP_SERVERS"]
    for url, default_port in ((exports["DATABASE_URL"], 5432), (exports["REDIS_URL"], 6379)):
        parts = urllib.parse.urlsplit(url)
        assert reachable(parts.hostname, parts.port or default_port), parts.hostname


def test_up_on_a_running_stack_is_quick_and_changes_nothing(exports: dict[str, str]) -> None:
    first = run_services("up")
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second = run_services("up", timeout=60)
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert elapsed < 20, f"a second `up` took {elapsed:.1f}s:\n{second.stderr}"
    assert "started" not in second.stderr, second.stderr
    assert parse_exports(second.stdout) == exports  # `up` ends with exactly what `env` prints


def test_status_reports_every_service_up() -> None:
    result = run_services("status", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line[:1].strip())
    assert {name: detail.split()[0] for name, detail in lines.items()} == {
        "kafka": "up",
        "postgresql": "up",
        "redis": "up",
    }


def test_env_quotes_values_for_the_shell(exports: dict[str, str]) -> None:
    env = {k: v for k, v in exports.items() if not k.startswith("PG")}
    env["PATH"] = "/usr/bin:/bin"
    env["DATABASE_URL"] = "postgresql://someone:p%40ss%20w%27rd@localhost:6543/other"
    result = run_services("env", timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    values = parse_exports(result.stdout)
    assert values["DATABASE_URL"] == env["DATABASE_URL"]
    assert (values["PGHOST"], values["PGPORT"], values["PGUSER"]) == ("localhost", "6543", "someone")
    assert values["PGPASSWORD"] == "p@ss w'rd"
    assert values["PGDATABASE"] == "other"


def test_the_topics_are_template_yamls(exports: dict[str, str]) -> None:
    """One definition of the topics: template.yaml's parameters, created with their partition counts."""
    from confluent_kafka.admin import AdminClient

    from local.lambda_runner.cfn_yaml import load_yaml

    parameters = load_yaml(REPO_ROOT / "template.yaml")["Parameters"]
    assert (exports["KAFKA_TOPIC"], exports["KAFKA_DLQ_TOPIC"]) == (
        parameters["EventsTopic"]["Default"],
        parameters["DeadLetterTopic"]["Default"],
    )
    topics = AdminClient({"bootstrap.servers": exports["KAFKA_BOOTSTRAP_SERVERS"]}).list_topics(timeout=10).topics
    assert len(topics[exports["KAFKA_TOPIC"]].partitions) >= parameters["EventsTopicPartitions"]["Default"]
    assert len(topics[exports["KAFKA_DLQ_TOPIC"]].partitions) >= parameters["DeadLetterTopicPartitions"]["Default"]

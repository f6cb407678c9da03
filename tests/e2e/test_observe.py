"""Observability through the real pipeline: /metrics counts, native Prometheus scraping the runner, the dashboard.

Each runner here reads its own fresh topic (``EventsTopic`` overridden, ``KAFKA_TOPIC`` set), so its counters see
exactly the events the test sent, whatever else runs on the broker.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig, CircuitState
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from local.backing_services.process import apt_install
from local.backing_services.prometheus import Dashboard, Prometheus
from local.backing_services.settings import Config
from local.lambda_runner.testing import RunnerProcess
from logpipe.access import keys
from logpipe.access.models import Scope
from logpipe.adapters import circuit_breaker
from logpipe.config import get_settings

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((REPO_ROOT / "local" / "grafana" / "dashboards" / "logpipe.json").read_text())
INGEST = "POST /api/logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_topic() -> str:
    topic = f"observe-e2e-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    return topic


def runner_on(topic: str) -> RunnerProcess:
    return RunnerProcess(
        REPO_ROOT / "template.yaml",
        args=["--parameter-overrides", f"EventsTopic={topic}"],
        env={"KAFKA_TOPIC": topic},
        cwd=REPO_ROOT,
        start_timeout=60,
    )


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.5)


@functools.cache
def ingest_headers(organization: str) -> dict[str, str]:
    """A real ingest key of the organization (module-scoped fixtures cannot use the function-scoped one)."""
    return {"Authorization": f"Bearer {keys.create_key(organization, [Scope.INGEST]).key}"}


def post_events(url: str, organization: str, accepted: int, rejected: int) -> None:
    headers = ingest_headers(organization)
    for index in range(accepted):
        body = {"organizationId": organization, "level": "INFO", "message": f"m{index}", "source": "observe"}
        assert requests.post(f"{url}/api/logs", json=body, headers=headers, timeout=15).status_code == 202
    for _ in range(rejected):
        body = {"organizationId": organization, "level": "LOUD", "message": "m", "source": "observe"}
        assert requests.post(f"{url}/api/logs", json=body, headers=headers, timeout=15).status_code == 422


def drill_kafka_circuit(url: str, organization: str) -> None:
    """Take the shared Kafka circuit through open -> half-open -> closed, as after an outage that is over: an open
    record whose recovery time has passed is stored, then requests go until a probe has closed the circuit again."""
    settings = get_settings()
    store = circuit_breaker.RedisCircuitStore()
    recovery = settings.kafka_breaker_recovery_seconds
    store.configure(CircuitBreakerConfig(recovery_timeout=recovery, local_cache_max_age=0), "kafka")  # reads Redis
    long_ago = int(time.time()) - 10 * recovery
    store.save_open("kafka", failure_count=settings.kafka_breaker_failure_threshold, opened_at=long_ago)
    headers = ingest_headers(organization)
    body = {"organizationId": organization, "level": "INFO", "message": "drill", "source": "observe"}
    deadline = time.monotonic() + 60
    while store.get_state("kafka").state != CircuitState.CLOSED:  # instances cache the state for a second
        assert time.monotonic() < deadline, "the Kafka circuit did not close again"
        requests.post(f"{url}/api/logs", json=body, headers=headers, timeout=15)  # probes, or 503 while one runs
        time.sleep(0.2)


def produce_poison(topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": get_settings().kafka_bootstrap_servers})
    for _ in range(count):
        producer.produce(topic, key=b"observe", value=b"not json at all")
    assert producer.flush(30) == 0


def test_metrics_count_exactly_the_accepted_rejected_and_dead_lettered_events() -> None:
    topic = fresh_topic()
    with runner_on(topic) as runner:
        # Known series exist at 0 before any event (dashboards read 0, not "No data"), errors included.
        known = {
            ("log_events_received_total", frozenset({"function": "ProducerFunction"}.items())),
            ("log_events_errors_total", frozenset({"function": "ConsumerFunction"}.items())),
            ("runner_invocations_total", frozenset({"function": "ProducerFunction", "outcome": "throttled"}.items())),
            ("circuit_transitions_total", frozenset({"function": "ProducerFunction", "circuit": "kafka"}.items())),
        }
        circuit = ("circuit_state", frozenset({"function": "ProducerFunction", "circuit": "kafka"}.items()))
        wait_until(
            lambda: known | {circuit} <= scrape(runner.url).keys(), 60, "the known series exist before any event"
        )
        before = scrape(runner.url)
        assert all(before[series] == 0 for series in known)
        assert before[circuit] in (0, 1, 2)  # the shared circuit's state when the instance started

        post_events(runner.url, "observe-acme", accepted=5, rejected=3)
        produce_poison(topic, 2)

        def consumer_done() -> bool:
            samples = scrape(runner.url)
            return value(samples, "log_events_processed_total", function="ConsumerFunction") >= 5 and (
                value(samples, "log_events_dead_lettered_total", function="ConsumerFunction") >= 2
            )

        wait_until(consumer_done, 60, "the consumer stored 5 events and dead-lettered 2")
        samples = scrape(runner.url)
        assert value(samples, "log_events_received_total", function="ProducerFunction") == 5
        assert value(samples, "log_events_processed_total", function="ConsumerFunction") == 5
        assert value(samples, "log_events_dead_lettered_total", function="ConsumerFunction") == 2
        assert value(samples, "log_events_errors_total", function="ConsumerFunction") == 2
        requests_by_status = {
            status: value(
                samples, "runner_http_requests_total", function="ProducerFunction", route=INGEST, status=status
            )
            for status in ("202", "422")
        }
        assert requests_by_status == {"202": 5, "422": 3}
        assert value(samples, "runner_invocations_total", function="ProducerFunction", outcome="ok") == 8
        assert value(samples, "runner_cold_starts_total", function="ProducerFunction") >= 1
        assert value(samples, "runner_kafka_batches_total", function="ConsumerFunction", outcome="ok") >= 1
        assert ("organization_id", "observe-acme") not in {label for _, labels in samples for label in labels}

        # histogram buckets move: two more requests land in the +Inf bucket and in some finite one
        http = {"function": "ProducerFunction", "route": INGEST}
        buckets_before = {k: v for k, v in samples.items() if k[0] == "runner_http_request_duration_seconds_bucket"}
        post_events(runner.url, "observe-acme", accepted=2, rejected=0)
        after = scrape(runner.url)
        assert value(after, "runner_http_request_duration_seconds_bucket", **http, le="+Inf") == 10
        assert value(after, "runner_http_request_duration_seconds_count", **http) == 10
        moved = [k for k, v in buckets_before.items() if after[k] > v and dict(k[1])["le"] != "+Inf"]
        assert moved, "no finite bucket moved"
        processing = {"function": "ConsumerFunction"}
        assert value(after, "log_event_processing_time_count", **processing) >= 1
        assert value(after, "log_event_processing_time_bucket", **processing, le="10.0") >= 1
    assert runner.returncode == 0


# ------------------------------------------------------------------------------------ Prometheus, dashboard
@pytest.fixture(scope="module")
def observed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunnerProcess, str, str]]:
    """A runner with traffic flowing, the native Prometheus scraping it and the dashboard page, on free ports."""
    if not shutil.which("prometheus") and os.geteuid() != 0:
        pytest.skip("NOT TESTED: Debian's prometheus is not installed and only root may install it (apt)")
    topic = fresh_topic()
    runner = runner_on(topic).start()
    env = {
        "LOGPIPE_STATE_DIR": str(tmp_path_factory.mktemp("observe-state")),
        "LOGPIPE_PROMETHEUS_PORT": str(free_port()),
        "LOGPIPE_DASHBOARD_PORT": str(free_port()),
        "LOGPIPE_RUNNER_ADDRESS": runner.url.removeprefix("http://"),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    prometheus = Prometheus(Config.from_env())
    dashboard = Dashboard(Config.from_env(), prometheus)
    try:
        prometheus.up()
        dashboard.up()
        drill_kafka_circuit(runner.url, "observe-acme")  # the Circuit state panel shows transitions
        for _ in range(3):
            post_events(runner.url, "observe-acme", accepted=10, rejected=2)
            requests.get(f"{runner.url}/health", timeout=15)
            requests.get(f"{runner.url}/no-such-route", timeout=15)
            produce_poison(topic, 1)
            time.sleep(5)  # one scrape interval
        yield runner, prometheus.url, dashboard.url
    finally:
        for service in (dashboard, prometheus):
            if pid := service.our_pid():
                service.stop(pid)
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        runner.stop()


def test_native_prometheus_scrapes_the_runner(observed_stack: tuple[RunnerProcess, str, str]) -> None:
    runner, prometheus_url, _ = observed_stack
    targets = requests.get(f"{prometheus_url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    runner_target = next(t for t in targets if t["labels"]["job"] == "logpipe-runner")
    assert runner_target["scrapeUrl"] == f"{runner.url}/metrics"
    assert runner_target["health"] == "up", runner_target["lastError"]
    answer = requests.get(
        f"{prometheus_url}/api/v1/query", params={"query": "sum(log_events_received_total)"}, timeout=10
    ).json()
    assert float(answer["data"]["result"][0]["value"][1]) >= 10


def panel_states(dashboard_url: str, screenshot: Path) -> dict[str, str]:
    """Load the page in headless Chromium; return each panel's data-state, and save a screenshot."""
    chromium = shutil.which("chromium")
    if chromium is None and os.geteuid() == 0:  # like the services: install the Debian package when root
        apt_install(["chromium"], "the dashboard test needs a browser (Debian package: chromium)")
        chromium = shutil.which("chromium")
    if chromium is None:
        message = "NOT TESTED: the dashboard needs Debian's chromium (sudo apt-get install chromium)"
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"]
    subprocess.run(
        [chromium, *flags, "--window-size=1600,1700", f"--screenshot={screenshot}", dashboard_url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", dashboard_url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return {
        m.group(1).replace("&gt;", ">"): m.group(2)
        for m in re.finditer(r'<section class="panel" data-panel-title="([^"]+)" data-state="(\w+)"', dom)
    }


def test_every_dashboard_panel_shows_data(observed_stack: tuple[RunnerProcess, str, str], tmp_path: Path) -> None:
    _, _, dashboard_url = observed_stack
    states = panel_states(dashboard_url, tmp_path / "dashboard.png")
    assert set(states) == {panel["title"] for panel in DASHBOARD["panels"]}
    without_data = {title for title, state in states.items() if state != "data"}
    assert without_data == set(), f"panels without data: {sorted(without_data)} (screenshot {tmp_path})"


# ---------------------------------------------------------------------------------- a template's own /metrics
SHADOWING_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Exporter:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      CodeUri: fn/
      Handler: app.handler
      Events:
        Metrics:
          Type: HttpApi
          Properties: {Path: /metrics, Method: GET}
"""


def test_a_template_route_for_get_metrics_wins_over_the_runners_endpoint(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'mine'}\n"
    )
    (tmp_path / "template.yaml").write_text(SHADOWING_TEMPLATE)
    with RunnerProcess(tmp_path / "template.yaml", cwd=tmp_path, args=["--no-kafka"]) as runner:
        runner.wait_for_log("the template routes GET /metrics: the runner's metrics endpoint is off")
        assert requests.get(f"{runner.url}/metrics", timeout=15).text == "mine"
    assert runner.returncode == 0

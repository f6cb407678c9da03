"""EMF documents -> Prometheus samples, the stdout relay, and the dashboard's PromQL against what is exposed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from local.lambda_runner import metrics, workers
from local.lambda_runner.metrics import Instruments, StdoutRelay
from logpipe.observability import SINK_COUNTERS, publish_at_zero

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "local" / "grafana" / "dashboards" / "logpipe.json"


def emf(metrics_: dict[str, tuple[str, object]], dimensions: dict[str, str] | None = None) -> dict:
    """A document shaped like Powertools Metrics' output."""
    dimensions = {"service": "producer", **(dimensions or {})}
    return {
        "_aws": {
            "Timestamp": 1764300000000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Logpipe",
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics_.items()],
                }
            ],
        },
        **dimensions,
        **{name: value for name, (_, value) in metrics_.items()},
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def instruments(registry: CollectorRegistry) -> Instruments:
    return Instruments(registry)


def test_total_counts_and_milliseconds_become_seconds(instruments: Instruments, registry: CollectorRegistry) -> None:
    instruments.record_emf("ProducerFunction", emf({"log_events_received_total": ("Count", 1.0)}))
    instruments.record_emf("ProducerFunction", emf({"log_events_received_total": ("Count", [2.0, 3.0])}))
    instruments.record_emf("ConsumerFunction", emf({"log_event_processing_time": ("Milliseconds", 40.0)}))

    value = registry.get_sample_value
    assert value("log_events_received_total", {"function": "ProducerFunction"}) == 6.0
    labels = {"function": "ConsumerFunction"}
    assert value("log_event_processing_time_count", labels) == 1.0
    assert value("log_event_processing_time_sum", labels) == pytest.approx(0.040)
    assert value("log_event_processing_time_bucket", {**labels, "le": "0.025"}) == 0.0
    assert value("log_event_processing_time_bucket", {**labels, "le": "0.05"}) == 1.0


def test_other_units_are_gauges_with_allowed_dimensions_only(
    instruments: Instruments, registry: CollectorRegistry
) -> None:
    document = emf({"circuit_state": ("Count", 2)}, {"circuit": "kafka", "organization": "acme", "to_state": "open"})
    instruments.record_emf("ProducerFunction", document)
    instruments.record_emf("ProducerFunction", {**document, "circuit_state": 0})

    assert registry.get_sample_value("circuit_state", {"function": "ProducerFunction", "circuit": "kafka"}) == 0.0
    exposition = generate_latest(registry).decode()
    assert "acme" not in exposition and "organization" not in exposition and "to_state" not in exposition
    assert 'service="' not in exposition


def test_unbounded_label_values_are_refused(instruments: Instruments, registry: CollectorRegistry) -> None:
    instruments.record_emf("F", emf({"x_total": ("Count", 1)}, {"route": "r" * 65}))
    assert registry.get_sample_value("x_total", {"function": "F"}) == 1.0
    assert registry.get_sample_value("runner_emf_dropped_total", {"reason": "label_value"}) == 1.0

    for index in range(metrics.MAX_SERIES_PER_METRIC + 5):
        instruments.record_emf("F", emf({"y_total": ("Count", 1)}, {"route": f"/r/{index}"}))
    series = [line for line in generate_latest(registry).decode().splitlines() if line.startswith("y_total{")]
    assert len(series) == metrics.MAX_SERIES_PER_METRIC
    assert registry.get_sample_value("runner_emf_dropped_total", {"reason": "too_many_series"}) == 5.0


def test_malformed_documents_record_nothing(instruments: Instruments, registry: CollectorRegistry) -> None:
    assert instruments.record_emf("F", {"_aws": {"CloudWatchMetrics": "nope"}}) == 0
    assert instruments.record_emf("F", emf({"z_total": ("Count", "many")})) == 0
    bad = emf({"z_total": ("Count", 1)})
    del bad["z_total"]
    assert instruments.record_emf("F", bad) == 0
    assert registry.get_sample_value("z_total", {"function": "F"}) in (None, 0.0)


def test_stdout_relay_passes_output_on_and_records_emf_split_across_reads(
    instruments: Instruments, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, capfdbinary
) -> None:
    monkeypatch.setattr(metrics, "_instruments", instruments)
    line = json.dumps(emf({"log_events_received_total": ("Count", 1.0)})).encode() + b"\n"
    chunks = [b'{"level":"INFO","message":"hi"}\n' + line[:10], line[10:], b"partial EMF-free tail"]

    async def relay() -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        done = loop.create_future()
        relay = StdoutRelay(loop, read_fd, "ProducerFunction")
        original_close = relay.close
        relay.close = lambda: (original_close(), done.done() or done.set_result(None))  # type: ignore[method-assign]
        for chunk in chunks:
            os.write(write_fd, chunk)
            await asyncio.sleep(0.02)
        os.close(write_fd)
        await asyncio.wait_for(done, 5)

    asyncio.run(relay())
    assert registry.get_sample_value("log_events_received_total", {"function": "ProducerFunction"}) == 1.0
    assert capfdbinary.readouterr().out == b"".join(chunks)


# ------------------------------------------------------------------------------------------ the dashboard
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "or", "and", "unless", "offset", "le"}


def dashboard_series_names() -> set[str]:
    """Every series name the dashboard's PromQL selects (functions, label matchers, grouping and ranges removed)."""
    names: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r'"[^"]*"', "", target["expr"])  # strings (label values)
            expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
            expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
            expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
            for token in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(?)", expr):
                name, is_function = token.groups()
                if not is_function and name not in _PROMQL_WORDS:
                    names.add(name)
    return names


def exposed_series_names() -> set[str]:
    """The runner's own metrics, plus the EMF metrics the functions emit (their add_metric/single_metric names)."""
    families = list(Instruments(CollectorRegistry())._registry.collect())
    names = set()
    for family in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    for source in [*REPO.glob("layers/*/logpipe/**/*.py"), *REPO.glob("functions/*/*.py")]:
        for found in re.finditer(r'name="([a-z_]+)"[^)]*unit=MetricUnit\.(\w+)', source.read_text()):
            name, unit = found.groups()
            if unit in metrics.TIME_UNITS:
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            else:
                names.add(name)
    return names


def test_the_dashboard_selects_only_exposed_metrics() -> None:
    selected = dashboard_series_names()
    assert {"log_events_received_total", "runner_http_requests_total", "runner_kafka_consumer_lag"} <= selected
    assert selected - exposed_series_names() == set()


def test_the_dashboard_parser_sees_a_metric_that_is_not_exposed() -> None:
    exposed = exposed_series_names()
    assert "log_events_received_total" in exposed and "log_event_processing_time_bucket" in exposed
    assert "log_events_recieved_total" not in exposed


def start_and_exit(tmp_path: Path, how: str) -> Path:
    """A process that sets up the runner's metrics directory under ``tmp_path``, then exits (``exit``) or dies
    without running exit handlers (``killed``, as after ``kill -9``); the directory it made."""
    code = "import os; from local.lambda_runner import metrics; print(metrics.enable_multiprocess(), flush=True)" + (
        "; os._exit(0)" if how == "killed" else ""
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop(metrics.MULTIPROC_VARIABLE, None)
    made = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return Path(made.stdout.strip())


def test_the_metrics_directory_does_not_outlive_its_runner(tmp_path: Path) -> None:
    assert not start_and_exit(tmp_path, "exit").exists()
    killed = start_and_exit(tmp_path, "killed")
    assert killed.is_dir()  # no exit handler ran
    other = tmp_path / "lambda-runner-metrics-unrelated"
    other.mkdir()
    assert not start_and_exit(tmp_path, "exit").exists()
    assert not killed.exists()  # removed by the next runner's start
    assert other.is_dir()  # not named after a runner's process id: left alone
    assert list(tmp_path.iterdir()) == [other]


def test_the_metrics_directory_of_a_running_runner_is_kept(tmp_path: Path) -> None:
    running = tmp_path / f"lambda-runner-metrics-{os.getpid()}-abc"
    running.mkdir()
    start_and_exit(tmp_path, "exit")
    assert running.is_dir()


def test_known_series_exist_at_zero_before_anything_happens(
    instruments: Instruments, registry: CollectorRegistry
) -> None:
    instruments.declare_function("ProducerFunction", workers.INVOKE_STATUSES)
    instruments.declare_kafka_source("ConsumerFunction", "log-events-dlq")
    for name, labels in [
        ("runner_invocations_total", {"function": "ProducerFunction", "outcome": "throttled"}),
        ("runner_invocations_total", {"function": "ProducerFunction", "outcome": "error"}),
        ("runner_cold_starts_total", {"function": "ProducerFunction"}),
        ("runner_kafka_batches_total", {"function": "ConsumerFunction", "outcome": "failed"}),
        ("runner_kafka_retries_total", {"function": "ConsumerFunction"}),
        ("runner_dead_letters_total", {"function": "ConsumerFunction", "destination": "log-events-dlq"}),
        ("runner_emf_dropped_total", {"reason": "too_many_series"}),
    ]:
        assert registry.get_sample_value(name, labels) == 0, (name, labels)


def test_counters_a_function_publishes_at_zero_are_series_at_zero(
    instruments: Instruments, registry: CollectorRegistry, capsys: pytest.CaptureFixture
) -> None:
    publish_at_zero(SINK_COUNTERS)
    assert instruments.record_emf("ConsumerFunction", json.loads(capsys.readouterr().out)) == len(SINK_COUNTERS)
    labels = {"function": "ConsumerFunction"}
    assert registry.get_sample_value("log_events_errors_total", labels) == 0
    assert registry.get_sample_value("log_events_dead_lettered_total", labels) == 0

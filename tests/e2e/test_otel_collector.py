"""The OpenTelemetry Collector itself, unmodified, ships a log file into logpipe.

The collector is built from local/otelcol/manifest.yaml by its official builder (local/otelcol/build.py; a cold
build takes minutes, so it is done once per session and reused across sessions while the manifest is unchanged).
Its stock `file_log` receiver tails a file, a regex operator parses each line's time and level, the `resource`
processor names the service, and the `otlp_http` exporter posts protobuf, gzip-compressed (its default), to the
runner's /v1/logs with the API key in `headers`. Every line must then be in PostgreSQL exactly once.
"""

import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from local.otelcol.build import ensure_collector
from tests.e2e.test_shippers import stored_rows

pytestmark = pytest.mark.e2e

LINES = 200
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SERVICE_NAME = "otelcol-e2e"
# A cold build (module downloads and compiling the Collector) takes 3 to 6 minutes on 2 cores, longer on a busy
# machine; pytest-timeout counts the session fixture's setup in the first test that asks for it.
BUILD_TIMEOUT = 1800


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    return ensure_collector()


def collector_config(log_file: Path, endpoint: str, key: str) -> dict:
    line = r"^(?P<time>\S+) (?P<level>[A-Z]+) (?P<message>.*)$"
    return {
        "receivers": {
            "file_log": {
                "include": [str(log_file)],
                "start_at": "beginning",
                "poll_interval": "100ms",
                "operators": [
                    {
                        "type": "regex_parser",
                        "regex": line,
                        "timestamp": {
                            "parse_from": "attributes.time",
                            "layout_type": "gotime",
                            "layout": "2006-01-02T15:04:05.999999Z07:00",
                        },
                        "severity": {"parse_from": "attributes.level"},
                    },
                    {"type": "move", "from": "attributes.message", "to": "body"},
                    {"type": "remove", "field": "attributes.level"},
                    {"type": "remove", "field": "attributes.time"},
                ],
            }
        },
        "processors": {
            "resource": {"attributes": [{"key": "service.name", "value": SERVICE_NAME, "action": "upsert"}]},
            "batch": {"timeout": "200ms", "send_batch_size": 64},
        },
        # compression is left out on purpose: gzip is the exporter's default.
        "exporters": {"otlp_http": {"endpoint": endpoint, "headers": {"Authorization": f"Bearer {key}"}}},
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "logs": {"receivers": ["file_log"], "processors": ["resource", "batch"], "exporters": ["otlp_http"]}
            },
        },
    }


@pytest.fixture
def collector(tmp_path: Path, otelcol_binary: Path, runner_url: str, auth_headers) -> Iterator[tuple]:
    """(organization id, log file, collector output) with the collector running; stopped with SIGTERM after."""
    organization_id = f"otelcol-{uuid.uuid4().hex[:12]}"
    key = auth_headers(organization_id, "ingest")["Authorization"].removeprefix("Bearer ")
    log_file = tmp_path / "app.log"
    log_file.touch()
    config = tmp_path / "otelcol.yaml"
    config.write_text(yaml.safe_dump(collector_config(log_file, runner_url, key)))
    output = tmp_path / "otelcol.out"
    with open(output, "wb") as out:
        process = subprocess.Popen([str(otelcol_binary), "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Everything is ready" not in output.read_text(errors="replace"):
            assert process.poll() is None, f"the collector exited {process.returncode}:\n{output.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"the collector did not start:\n{output.read_text()[-5000:]}"
            time.sleep(0.1)
        yield organization_id, log_file, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the collector drains its pipeline and exits 0
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"the collector exited {process.returncode}:\n{output.read_text()[-5000:]}"
    assert "Shutdown complete" in output.read_text(errors="replace")


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_the_collector_ships_every_line_of_a_log_file_once(collector: tuple) -> None:
    organization_id, log_file, output = collector
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    expected = {}
    for i in range(LINES):
        message = f'line {i:03d} of {organization_id}: order "A-{i}" shipped to Zürich'
        expected[message] = (LEVELS[i % len(LEVELS)], start + timedelta(milliseconds=10 * i))
    # Appended in four writes while the collector tails the file, as an application would.
    items = list(expected.items())
    for chunk in range(0, LINES, LINES // 4):
        with open(log_file, "a", encoding="utf-8") as fh:
            for message, (level, at) in items[chunk : chunk + LINES // 4]:
                fh.write(f"{at.isoformat().replace('+00:00', 'Z')} {level} {message}\n")
        time.sleep(0.3)

    # Wait for the rows, but stop at the first export the collector gave up on (a 4xx is permanent: dropped).
    deadline = time.monotonic() + 90
    while True:
        rows = stored_rows(organization_id, LINES, timeout=1)
        collector_output = output.read_text(errors="replace")
        if len(rows) >= LINES or "Exporting failed" in collector_output or time.monotonic() > deadline:
            break
    assert "Exporting failed" not in collector_output, f"the collector dropped an export:\n{collector_output[-5000:]}"
    assert len(rows) == LINES, f"{len(rows)} of {LINES} lines stored; the collector said:\n{collector_output[-5000:]}"
    assert Counter(row["message"] for row in rows) == Counter(expected.keys()), "each line stored exactly once"
    for row in rows:
        level, at = expected[row["message"]]
        assert (row["level"], row["occurred_at"], row["source"]) == (level, at, SERVICE_NAME), row
        assert row["attributes"]["log.file.name"] == "app.log", row
        assert row["attributes"]["otel.scope.name"].endswith("/receiver/filelogreceiver"), row

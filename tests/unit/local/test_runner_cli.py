"""The runner's options and the environment variables that give their defaults (docs/runner.md)."""

from __future__ import annotations

import pytest

from local.lambda_runner import app

pytestmark = pytest.mark.unit

ENVIRONMENT = {
    "RUNNER_TEMPLATE": ("template", "other.yaml", "other.yaml"),
    "RUNNER_HOST": ("host", "0.0.0.0", "0.0.0.0"),
    "RUNNER_PORT": ("port", "9999", 9999),
    "RUNNER_WORKERS": ("workers", "7", 7),
    "RUNNER_INSTANCE_WAIT_MS": ("instance_wait_ms", "250", 250.0),
    "RUNNER_PREWARM": ("prewarm", "3", 3),
    "RUNNER_KAFKA_CONSUMERS": ("kafka_consumers", "2", 2),
    "RUNNER_INSTANCE_ID": ("instance_id", "host-a", "host-a"),
    "RUNNER_METRICS_PATH": ("metrics_path", "/m", "/m"),
    "RUNNER_LOG_LEVEL": ("log_level", "DEBUG", "DEBUG"),
}
# Flags and lists without an environment variable, as docs/runner.md says.
WITHOUT_VARIABLE = {"no_kafka", "parameter_overrides"}


def test_every_option_but_two_reads_its_runner_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, (_, raw, _) in ENVIRONMENT.items():
        monkeypatch.setenv(variable, raw)
    args = vars(app.parse_args([]))
    assert set(args) == {dest for dest, _, _ in ENVIRONMENT.values()} | WITHOUT_VARIABLE
    for dest, _, expected in ENVIRONMENT.values():
        assert args[dest] == expected, dest


def test_a_command_line_option_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_PORT", "9999")
    assert app.parse_args(["--port", "0"]).port == 0

"""Slow start-up steps (mvn resolving Kafka, initdb, apt) report that they still run."""

from __future__ import annotations

import sys

import pytest

from local.backing_services import process

pytestmark = pytest.mark.unit


def test_a_slow_command_says_it_still_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(process, "PROGRESS_EVERY", 0.1)
    process.run([sys.executable, "-c", "import time; time.sleep(0.45)"], timeout=10, what="kafka: mvn")
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kafka: mvn: still running")]
    assert 2 <= len(progress) <= 5


def test_a_slow_command_still_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "PROGRESS_EVERY", 0.1)
    with pytest.raises(process.ServiceError, match="timed out after"):
        process.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5, what="postgresql: initdb")

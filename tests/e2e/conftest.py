"""Starts local/runner.py with the project's template.yaml on a free port, as `make run` does."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.lambda_runner.testing import RunnerProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def runner_url() -> Iterator[str]:
    runner = RunnerProcess(REPO_ROOT / "template.yaml", cwd=REPO_ROOT, start_timeout=60)
    with runner:
        # The first request waits for an instance's cold start, which a busy machine can stretch past a test's
        # request timeout; the tests are about the warm path.
        requests.get(f"{runner.url}/health", timeout=120)
        yield runner.url
    assert runner.returncode == 0, f"runner exited {runner.returncode} on Ctrl-C:\n{runner.output()[-5000:]}"

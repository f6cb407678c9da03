"""Starts local/runner.py with the project's template.yaml on a free port, as `make run` does; fresh headless
Chromium browsers for the log explorer's tests (tests/e2e/browser.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.lambda_runner.testing import RunnerProcess
from tests.e2e.browser import Browser, browsers

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


@pytest.fixture
def browser() -> Iterator[Browser]:
    yield from browsers()

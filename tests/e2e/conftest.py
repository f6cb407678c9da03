"""Starts local/runner.py with the project's template.yaml on a free port, as `make run` does."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runner exited early with {process.returncode}")
        try:
            requests.get(f"{base_url}/health", timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise TimeoutError(f"runner did not serve {base_url} within {timeout}s")


@pytest.fixture(scope="session")
def runner_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("runner") / "runner.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "local/runner.py", "--template", "template.yaml", "--port", str(port)],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base_url)
        yield base_url
    except Exception:
        process.kill()
        print(log_path.read_text()[-5000:])
        raise
    else:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=60)
        assert exit_code == 0, f"runner exited {exit_code} on Ctrl-C:\n{log_path.read_text()[-5000:]}"

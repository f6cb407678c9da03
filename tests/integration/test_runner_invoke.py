"""`python local/runner.py invoke FUNCTION -e EVENT` on every file in events/, against the real services: the
response alone on stdout (as `sam local invoke` prints it), the logs and START/END/REPORT on stderr."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = REPO_ROOT / "events"


def http_status(status: int) -> Callable[[dict], None]:
    def check(response: dict) -> None:
        assert response["statusCode"] == status, response
        json.loads(response["body"])

    return check


def batch(dead_lettered: int) -> Callable[[dict], None]:
    def check(response: dict) -> None:
        assert response["dead_lettered"] == dead_lettered, response
        # stored now, or on an earlier run of the same file (event ids are fixed): stored exactly once either way
        assert response["stored"] + response["duplicates"] == response["received"] - dead_lettered, response

    return check


EXPECTED = {
    "producer_post_log.json": ("ProducerFunction", http_status(202)),
    "producer_post_log_invalid.json": ("ProducerFunction", http_status(422)),
    "producer_post_batch.json": ("ProducerFunction", http_status(207)),  # its second item is invalid
    "producer_post_batch_ndjson_gzip.json": ("ProducerFunction", http_status(202)),
    "gateway_health.json": ("GatewayFunction", http_status(200)),
    "consumer_msk_batch.json": ("ConsumerFunction", batch(dead_lettered=0)),
    # a schema violation, bytes that are not JSON and a tombstone
    "consumer_msk_batch_with_poison.json": ("ConsumerFunction", batch(dead_lettered=3)),
}


def test_every_event_file_has_an_expectation() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == set(EXPECTED)


def with_key(event_file: str, authorization: str, directory: Path) -> Path:
    """The event file as is, or, for an /api route, a copy carrying a real key (the files cannot hold one: keys
    are random and stored hashed), as a user would add theirs."""
    event = json.loads((EVENTS / event_file).read_text())
    if not event.get("rawPath", "").startswith("/api/"):
        return EVENTS / event_file
    event["headers"]["authorization"] = authorization
    copy = directory / event_file
    copy.write_text(json.dumps(event))
    return copy


@pytest.mark.parametrize("event_file", sorted(EXPECTED))
def test_invoke_prints_the_functions_response(event_file: str, acme_headers: dict[str, str], tmp_path: Path) -> None:
    function_id, check = EXPECTED[event_file]
    result = subprocess.run(
        [
            sys.executable,
            "local/runner.py",
            "invoke",
            function_id,
            "-e",
            str(with_key(event_file, acme_headers["authorization"], tmp_path)),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = result.stdout.splitlines()  # the response and nothing else
    check(json.loads(line))
    assert "REPORT RequestId:" in result.stderr


def test_a_failing_handler_is_reported_and_exits_non_zero(tmp_path: Path) -> None:
    event = tmp_path / "not-a-batch.json"
    event.write_text('{"records": "not a map"}')
    result = subprocess.run(
        [sys.executable, "local/runner.py", "invoke", "ConsumerFunction", "-e", str(event)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    error = json.loads(result.stdout)
    assert error["errorType"] and error["errorMessage"]

"""SetupFunction answers CloudFormation on every path (a custom resource that never answers hangs the stack)."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import load_function

pytestmark = pytest.mark.unit


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for the pre-signed ResponseURL: records each PUT body."""
    answers: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", answers
    server.shutdown()


def request(kind: str, url: str) -> dict:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/logpipe/1",
        "RequestId": "req-1",
        "LogicalResourceId": "KafkaSetup",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:setup",
            "ClusterArn": "arn:aws:kafka:us-east-1:123456789012:cluster/logpipe-dev/abc-1",
            "BootstrapServers": "",
            "Topics": [{"Name": "log-events", "Partitions": "6"}, {"Name": "log-events-dlq", "Partitions": "1"}],
        },
    }


def test_create_runs_the_setup_and_returns_the_brokers(cloudformation, lambda_context, monkeypatch) -> None:
    url, answers = cloudformation
    module = load_function("setup")
    seen = []

    def run(setup_request):
        seen.append(setup_request)
        return {"BootstrapServers": "b-1:9098"}

    monkeypatch.setattr(module.setup, "run", run)
    module.handler(request("Create", url), lambda_context)
    [answer] = answers
    assert (answer["Status"], answer["Data"]) == ("SUCCESS", {"BootstrapServers": "b-1:9098"})
    assert [(t.name, t.partitions) for t in seen[0].topics] == [("log-events", 6), ("log-events-dlq", 1)]


def test_a_failure_is_reported_not_raised(cloudformation, lambda_context, monkeypatch) -> None:
    url, answers = cloudformation
    module = load_function("setup")

    def run(setup_request):
        raise RuntimeError("brokers unreachable")

    monkeypatch.setattr(module.setup, "run", run)
    module.handler(request("Update", url), lambda_context)
    [answer] = answers
    assert answer["Status"] == "FAILED" and "brokers unreachable" in answer["Reason"]


def test_delete_keeps_topics_and_data(cloudformation, lambda_context, monkeypatch) -> None:
    url, answers = cloudformation
    module = load_function("setup")
    monkeypatch.setattr(module.setup, "run", lambda setup_request: pytest.fail("delete must not run the setup"))
    module.handler({**request("Delete", url), "PhysicalResourceId": "logpipe-setup-KafkaSetup"}, lambda_context)
    [answer] = answers
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "logpipe-setup-KafkaSetup")

"""Fixtures shared by every test level: sample events from events/, Lambda contexts, function loading, moto's
Secrets Manager."""

import base64
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"

# Defaults match local/services.py; a running stack's `make env` exports override them.
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
os.environ.setdefault("DATABASE_URL", "postgresql://logpipe:logpipe@127.0.0.1:5432/logpipe")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "logpipe-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LogpipeTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/27/[$LATEST]test"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[object], str]]:
    """moto's Secrets Manager in this process, with fake credentials and an empty Powertools secret cache: call it
    with a JSON value to create a secret holding it; it returns the secret's ARN."""
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    parameters.clear_caches()
    with mock_aws():
        client = boto3.client("secretsmanager")

        def create(value: object) -> str:
            name = f"secret-{uuid.uuid4().hex[:8]}"
            return client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

        yield create
    parameters.clear_caches()


@pytest.fixture
def sample_event(request: pytest.FixtureRequest) -> Callable[[str], dict]:
    """Load events/<name>.json: the same files `sam local invoke -e` takes.

    A request to an /api route carries the `api_key` fixture's key (each test level defines that fixture).
    """

    def load(name: str) -> dict:
        event = json.loads((EVENTS_DIR / f"{name}.json").read_text())
        if event.get("rawPath", "").startswith("/api/"):
            event["headers"]["authorization"] = f"Bearer {request.getfixturevalue('api_key')}"
        return event

    return load


@pytest.fixture
def api_request(sample_event) -> Callable[..., dict]:
    """An HTTP API (payload 2.0) event for any route, built from events/gateway_health.json."""

    def build(
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: Any = None,
        source_ip: str = "198.51.100.7",
    ) -> dict:
        event = sample_event("gateway_health")
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["sourceIp"] = source_ip
        event["headers"].update({name.lower(): value for name, value in (headers or {}).items()})
        if query:
            event["queryStringParameters"] = query
            event["rawQueryString"] = urlencode(query)
        if body is not None:
            event["headers"]["content-type"] = "application/json"
            event["body"] = json.dumps(body)
        return event

    return build


@pytest.fixture
def auth_headers() -> Callable[..., dict[str, str]]:
    """Headers with a new, real API key (stored in PostgreSQL) of an organization and scopes."""
    from logpipe.access import keys
    from logpipe.access.models import Scope

    def make(organization_id: str, scopes: str = "ingest,read,admin") -> dict[str, str]:
        created = keys.create_key(organization_id, [Scope(scope) for scope in scopes.split(",")])
        return {"Authorization": f"Bearer {created.key}"}

    return make


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name, as Lambda would load `app.handler`."""
    path = REPO_ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"logpipe_function_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def producer_function() -> ModuleType:
    return load_function("producer")


@pytest.fixture(scope="session")
def consumer_function() -> ModuleType:
    return load_function("consumer")


@pytest.fixture(scope="session")
def gateway_function() -> ModuleType:
    return load_function("gateway")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in, so `-m unit|integration|e2e` selects a level."""
    for item in items:
        level = Path(item.fspath).relative_to(REPO_ROOT / "tests").parts[0]
        if level in {"unit", "integration", "e2e"}:
            item.add_marker(getattr(pytest.mark, level))


@pytest.fixture
def http_event(sample_event) -> Callable[..., dict]:
    """An HTTP API event for a producer route: the one place tests build requests (headers, auth, encodings).

    `body` may be text, raw bytes (sent base64 as API Gateway does for binary/encoded bodies) or a JSON value.
    """

    def build(body: object, path: str = "/api/logs", headers: dict[str, str] | None = None) -> dict:
        event = sample_event("producer_post_log")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {path}"
        event["headers"].update(headers or {})
        if isinstance(body, bytes):
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"] = body if isinstance(body, str) else json.dumps(body)
        return event

    return build

"""The gateway through the runner over HTTP: routing beside the producer, OpenAPI, the offline docs page, fuzzing."""

import re
import time
import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate


@pytest.fixture
def organization_id() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def test_get_and_post_on_api_logs_reach_different_functions(
    runner_url: str, organization_id: str, auth_headers
) -> None:
    headers = auth_headers(organization_id, "ingest,read")
    body = {"level": "ERROR", "message": "e2e search me", "source": "e2e", "organizationId": organization_id}

    posted = requests.post(f"{runner_url}/api/logs", json=body, headers=headers, timeout=30)  # a cold start
    assert posted.status_code == 202, posted.text
    event_id = posted.json()["id"]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = requests.get(f"{runner_url}/api/logs", params={"q": "search"}, headers=headers, timeout=10)
        assert found.status_code == 200, found.text
        if found.json()["items"]:
            break
        time.sleep(0.3)
    assert [item["id"] for item in found.json()["items"]] == [event_id]
    status = requests.get(f"{runner_url}/api/logs/{event_id}/status", headers=headers, timeout=10)
    assert status.json()["status"] == "stored"


def test_the_openapi_document_is_valid_and_lists_every_route_of_both_functions(runner_url: str) -> None:
    response = requests.get(f"{runner_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert {
        "/api/logs": {"get", "post"},
        "/api/logs/batch": {"post"},
        "/api/logs/histogram": {"get"},
        "/api/logs/{event_id}": {"get"},
        "/api/logs/{event_id}/context": {"get"},
        "/api/logs/{event_id}/status": {"get"},
        "/api/stats": {"get"},
        "/api/keys": {"get", "post"},
        "/api/keys/{key_id}": {"delete"},
        "/health": {"get"},
        "/health/live": {"get"},
        "/health/ready": {"get"},
        "/v1/logs": {"post"},
        "/loki/api/v1/push": {"post"},
        "/_bulk": {"post", "put"},
        "/{index}/_bulk": {"post", "put"},
        "/": {"get", "head"},
        "/_license": {"get"},
        "/_cluster/health": {"get"},
        "/_index_template/{name}": {"get", "put"},
        "/_ilm/policy/{name}": {"get", "put"},
        "/_ingest/pipeline/{name}": {"get", "put"},
        "/explore": {"get"},
        "/explore/": {"get"},
        "/explore/{file_name}": {"get"},
    } == {path: set(item) for path, item in document["paths"].items()}


def test_the_docs_page_needs_no_network_and_shows_the_whole_api(runner_url: str) -> None:
    response = requests.get(f"{runner_url}/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "SwaggerUIBundle" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page loads something from the network"
    assert '"/api/logs/batch"' in page and '"Ingest one log event"' in page, "the producer's routes are on the page"


def test_no_input_makes_a_route_answer_5xx(runner_url: str) -> None:
    """schemathesis generates requests for every operation of /openapi.json, the producer's ingest routes included
    (a few each, to keep CI short)."""
    from logpipe.access import keys
    from logpipe.access.models import Scope

    key = keys.create_key(f"fuzz-{uuid.uuid4().hex[:8]}", list(Scope)).key
    schema = schemathesis.openapi.from_url(f"{runner_url}/openapi.json")
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(operation.method.upper(), operation.path) for operation in operations} >= {
        ("POST", "/api/logs"),
        ("POST", "/api/logs/batch"),
        ("GET", "/api/logs"),
    }

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case) -> None:
            response = case.call(base_url=runner_url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            answered.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code}")

        call()
    assert failures == []
    assert [name for name, statuses in answered.items() if statuses <= {401}] == [], "the key let every route judge"

"""The whole pipeline over HTTP: runner -> producer -> Kafka -> runner's poller -> consumer -> PostgreSQL."""

import gzip
import json
import time
import uuid

import psycopg
import pytest
import requests

from logpipe.config import get_settings


@pytest.fixture
def organization_id() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def wait_for_row(event_id: str, timeout: float = 30.0) -> tuple | None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(get_settings().database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT id::text, organization_id, level, message, source FROM log_events WHERE id = %s",
                (event_id,),
            ).fetchone()
            if row:
                return row
            time.sleep(0.2)
    return None


def test_health_reports_postgresql_redis_and_kafka_up(runner_url: str) -> None:
    response = requests.get(f"{runner_url}/health", timeout=10)

    assert response.status_code == 200, response.text
    dependencies = response.json()["dependencies"]
    assert {name: dep["status"] for name, dep in dependencies.items()} == {
        "postgresql": "up",
        "redis": "up",
        "kafka": "up",
    }


@pytest.fixture
def ingest_headers(auth_headers, organization_id: str) -> dict[str, str]:
    return auth_headers(organization_id, "ingest")


def test_a_posted_event_lands_in_postgresql_with_the_same_fields(
    runner_url: str, organization_id: str, ingest_headers: dict[str, str]
) -> None:
    body = {"organizationId": organization_id, "level": "warning", "message": "Disk 91% full", "source": "node-7"}

    response = requests.post(f"{runner_url}/api/logs", json=body, headers=ingest_headers, timeout=10)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "success"
    assert answer["message"] == "Log event queued for processing"
    row = wait_for_row(answer["id"])
    assert row == (answer["id"], organization_id, "WARN", "Disk 91% full", "node-7")


def test_invalid_input_is_a_json_4xx_and_nothing_is_stored(
    runner_url: str, organization_id: str, ingest_headers: dict[str, str]
) -> None:
    body = {"organizationId": organization_id, "level": "LOUD", "message": "x", "source": "node-7"}

    response = requests.post(f"{runner_url}/api/logs", json=body, headers=ingest_headers, timeout=10)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "validation_failed"
    # Same organization = same partition: once a later valid event is stored, the refused one would be too.
    sentinel = requests.post(
        f"{runner_url}/api/logs", json={**body, "level": "INFO"}, headers=ingest_headers, timeout=10
    )
    assert sentinel.status_code == 202
    assert wait_for_row(sentinel.json()["id"]) is not None
    with psycopg.connect(get_settings().database_url) as conn:
        count = conn.execute("SELECT count(*) FROM log_events WHERE organization_id = %s", (organization_id,))
        assert count.fetchone() == (1,)


def test_a_gzip_ndjson_batch_over_http_lands_in_postgresql_except_its_invalid_line(
    runner_url: str, organization_id: str, ingest_headers: dict[str, str]
) -> None:
    lines = [
        json.dumps({"organizationId": organization_id, "level": "INFO", "message": "one", "source": "batch"}),
        json.dumps({"organizationId": organization_id, "level": "LOUD", "message": "bad", "source": "batch"}),
        json.dumps({"organizationId": organization_id, "level": "ERROR", "message": "three", "source": "batch"}),
    ]
    response = requests.post(
        f"{runner_url}/api/logs/batch",
        data=gzip.compress("\r\n".join(lines).encode()),
        headers={**ingest_headers, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
        timeout=10,
    )

    assert response.status_code == 207, response.text
    items = response.json()["items"]
    assert [item["status"] for item in items] == ["accepted", "rejected", "accepted"]
    assert wait_for_row(items[0]["id"])[3] == "one"
    assert wait_for_row(items[2]["id"])[3] == "three"

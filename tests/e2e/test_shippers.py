"""Real log-shipper clients, unmodified, against the runner over HTTP: the OpenTelemetry SDK's OTLP/HTTP exporter,
Loki push as Promtail sends it (snappy protobuf) and as JSON, and the official Elasticsearch client. Each test reads
the rows back from PostgreSQL."""

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime

import cramjam
import psycopg
import pytest
import requests
from elasticsearch import Elasticsearch, helpers
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logpipe.config import get_settings
from logpipe.edge.decoders.loki import _push_request_class

pytestmark = pytest.mark.e2e


@pytest.fixture
def organization_id() -> str:
    return f"ship-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api_key(auth_headers, organization_id: str) -> str:
    return auth_headers(organization_id, "ingest")["Authorization"].removeprefix("Bearer ")


def stored_rows(organization_id: str, count: int, timeout: float = 30.0) -> list[dict]:
    """The organization's rows once there are `count` of them (oldest first)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(get_settings().database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        while True:
            rows = conn.execute(
                "SELECT id::text, level, message, source, attributes, trace_id, span_id, occurred_at"
                " FROM log_events WHERE organization_id = %s ORDER BY occurred_at, message",
                (organization_id,),
            ).fetchall()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def test_the_opentelemetry_sdk_ships_records_with_attributes_inside_a_span(
    runner_url: str, api_key: str, organization_id: str
) -> None:
    exporter = OTLPLogExporter(endpoint=f"{runner_url}/v1/logs", headers={"authorization": f"Bearer {api_key}"})
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "deployment.environment": "e2e"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    python_logger = logging.getLogger(f"otel-{organization_id}")
    python_logger.propagate = False
    python_logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    python_logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("e2e")

    with tracer.start_as_current_span("place-order") as span:
        python_logger.warning("card declined", extra={"order.id": 1234, "payment.provider": "acme-pay"})
        python_logger.error("order failed")
        context = span.get_span_context()
    python_logger.removeHandler(handler)
    provider.shutdown()

    rows = stored_rows(organization_id, 2)
    by_message = {row["message"]: row for row in rows}
    assert set(by_message) == {"card declined", "order failed"}
    declined = by_message["card declined"]
    assert (declined["level"], declined["source"]) == ("WARN", "checkout")
    assert by_message["order failed"]["level"] == "ERROR"
    assert declined["attributes"]["order.id"] == 1234
    assert declined["attributes"]["payment.provider"] == "acme-pay"
    assert declined["attributes"]["deployment.environment"] == "e2e"
    assert declined["trace_id"] == format(context.trace_id, "032x")
    assert declined["span_id"] == format(context.span_id, "016x")


def test_an_otlp_export_with_refused_records_is_answered_partial_success(runner_url: str, api_key: str) -> None:
    now = time.time_ns()
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"timeUnixNano": str(now), "severityNumber": 9, "body": {"stringValue": "kept"}},
                            {"timeUnixNano": str(now), "severityNumber": 9, "body": {"stringValue": ""}},
                        ]
                    }
                ],
            }
        ]
    }
    response = requests.post(
        f"{runner_url}/v1/logs", json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "record 1" in partial["errorMessage"]


def test_a_loki_push_in_snappy_protobuf_as_promtail_sends_it(
    runner_url: str, api_key: str, organization_id: str
) -> None:
    push = _push_request_class()()
    stream = push.streams.add()
    stream.labels = '{job="nginx", level="error", host="web-1"}'
    for number in range(3):
        entry = stream.entries.add()
        entry.timestamp.FromDatetime(datetime.now(UTC))
        entry.line = f"upstream timed out #{number}"
    body = bytes(cramjam.snappy.compress_raw(push.SerializeToString()))
    basic = base64.b64encode(f"{organization_id}:{api_key}".encode()).decode()

    response = requests.post(
        f"{runner_url}/loki/api/v1/push",
        data=body,
        headers={
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Basic {basic}",
            "X-Scope-OrgID": organization_id,
        },
        timeout=30,
    )

    assert response.status_code == 204, response.text
    rows = stored_rows(organization_id, 3)
    assert [row["message"] for row in rows] == [f"upstream timed out #{number}" for number in range(3)]
    assert {(row["level"], row["source"], row["attributes"]["host"]) for row in rows} == {("ERROR", "nginx", "web-1")}


def test_a_loki_push_in_json_and_a_retry_stores_each_entry_once(
    runner_url: str, api_key: str, organization_id: str
) -> None:
    now = time.time_ns()
    body = {
        "streams": [
            {
                "stream": {"service_name": "api", "env": "prod"},
                "values": [[str(now), "GET /users 200"], [str(now + 1), "GET /users 500", {"level": "error"}]],
            }
        ]
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    for _attempt in range(2):  # the shipper retries the whole request (a timeout, a 5xx)
        response = requests.post(f"{runner_url}/loki/api/v1/push", json=body, headers=headers, timeout=30)
        assert response.status_code == 204, response.text

    rows = stored_rows(organization_id, 2)
    time.sleep(1.5)  # a second copy, were there one, would be stored by now
    rows = stored_rows(organization_id, 2)
    assert [(row["message"], row["level"], row["source"]) for row in rows] == [
        ("GET /users 200", "INFO", "api"),
        ("GET /users 500", "ERROR", "api"),
    ]


def test_a_tenant_header_naming_another_organization_is_refused(runner_url: str, api_key: str) -> None:
    body = {"streams": [{"stream": {"job": "x"}, "values": [[str(time.time_ns()), "line"]]}]}
    headers = {"Authorization": f"Bearer {api_key}", "X-Scope-OrgID": "someone-else"}
    response = requests.post(f"{runner_url}/loki/api/v1/push", json=body, headers=headers, timeout=30)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")


def test_the_elasticsearch_client_reads_info_and_bulk_indexes(
    runner_url: str, api_key: str, organization_id: str
) -> None:
    client = Elasticsearch(runner_url, api_key=api_key, request_timeout=30)
    info = client.info()
    assert info["version"]["number"].startswith("8.")

    now = datetime.now(UTC).isoformat()
    actions = [
        {
            "_index": "logs-app",
            "_id": "doc-1",
            "@timestamp": now,
            "message": "user signed in",
            "log": {"level": "info"},
        },
        {
            "_index": "logs-app",
            "@timestamp": now,
            "message": "payment failed",
            "level": "ERROR",
            "service.name": "billing",
        },
        {"_op_type": "update", "_index": "logs-app", "_id": "doc-1", "doc": {"message": "changed"}},
    ]
    succeeded, errors = helpers.bulk(client, actions, raise_on_error=False)

    assert succeeded == 2
    assert [next(iter(error)) for error in errors] == ["update"]
    rows = stored_rows(organization_id, 2)
    assert {(row["message"], row["level"], row["source"]) for row in rows} == {
        ("user signed in", "INFO", "logs-app"),
        ("payment failed", "ERROR", "billing"),
    }


def test_elasticsearch_errors_are_in_its_shape_with_the_product_header(runner_url: str) -> None:
    response = requests.post(
        f"{runner_url}/_bulk",
        data=b'{"create":{"_index":"x"}}\n{"message":"m"}\n',
        headers={"Content-Type": "application/x-ndjson", "Authorization": "ApiKey lp_not_a_key"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    assert response.json()["error"]["type"] == "security_exception"
    assert json.loads(response.text)["status"] == 401

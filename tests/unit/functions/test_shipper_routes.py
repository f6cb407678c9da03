"""The producer's shipper routes with Kafka faked: each protocol's answers, credentials, ids and probes."""

import base64
import json
import time
from uuid import UUID

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse

pytestmark = pytest.mark.unit

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def call(producer_function, http_event, lambda_context, auth_headers):
    key_headers = auth_headers("acme", "ingest")

    def send(path: str, body: object, headers: dict[str, str] | None = None, method: str = "POST") -> dict:
        event = http_event(body, path, {**key_headers, **(headers or {})})
        event["requestContext"]["http"]["method"] = method
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {_route(path)}"
        return producer_function.handler(event, lambda_context)

    return send


def _route(path: str) -> str:
    """The route API Gateway matched for a path (the index of `/{index}/_bulk` and probe names are variables)."""
    parts = path.split("/")
    if len(parts) == 3 and parts[2] == "_bulk" and parts[1] != "":
        return "/{index}/_bulk"
    if path.startswith(("/_index_template/", "/_ilm/policy/", "/_ingest/pipeline/")):
        return path.rsplit("/", 1)[0] + "/{name}"
    return path


def otlp(*bodies: str) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "checkout"
    records = resource_logs.scope_logs.add().log_records
    for body in bodies:
        record = records.add()
        record.body.string_value, record.severity_number, record.time_unix_nano = body, 13, time.time_ns()
    return request.SerializeToString()


def decoded_body(response: dict) -> bytes:
    body = response["body"]
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def test_otlp_protobuf_is_answered_an_empty_export_response_in_protobuf(call, published: list) -> None:
    response = call("/v1/logs", otlp("a", "b"), {"content-type": "application/x-protobuf"})
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/x-protobuf"
    assert ExportLogsServiceResponse.FromString(decoded_body(response)) == ExportLogsServiceResponse()
    assert [(event.message, event.level, event.source) for event in published] == [
        ("a", "WARN", "checkout"),
        ("b", "WARN", "checkout"),
    ]


def test_otlp_with_a_refused_record_names_it_in_partial_success(call, published: list) -> None:
    response = call("/v1/logs", otlp("kept", ""), {"content-type": "application/x-protobuf"})
    reply = ExportLogsServiceResponse.FromString(decoded_body(response))
    assert response["statusCode"] == 200
    assert reply.partial_success.rejected_log_records == 1
    assert "record 1" in reply.partial_success.error_message
    assert [event.message for event in published] == ["kept"]


def test_otlp_errors_are_a_google_rpc_status_in_the_requests_content_type(call, published: list) -> None:
    response = call("/v1/logs", b"not json", {"content-type": "application/json"})
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["code"] == 3  # INVALID_ARGUMENT
    unauthorized = call("/v1/logs", otlp("a"), {"content-type": "application/x-protobuf", "authorization": "Bearer x"})
    assert unauthorized["statusCode"] == 401
    assert decoded_body(unauthorized)[:2] == b"\x08\x10"  # google.rpc.Status code 16, UNAUTHENTICATED
    assert published == []


def test_a_retried_request_carries_the_same_ids(call, published: list) -> None:
    body = {"streams": [{"stream": {"job": "api"}, "values": [[str(time.time_ns()), "GET /"]]}]}
    assert call("/loki/api/v1/push", body)["statusCode"] == 204
    assert call("/loki/api/v1/push", body)["statusCode"] == 204
    first, retry = published
    assert first.id == retry.id and first.source == "api"


def test_loki_refusals_are_a_400_naming_the_entries_while_the_others_are_published(call, published: list) -> None:
    now = time.time_ns()
    body = {"streams": [{"stream": {"job": "x"}, "values": [[str(now), "ok"], [str(now), ""], ["0", "old"]]}]}
    response = call("/loki/api/v1/push", body)
    assert response["statusCode"] == 400
    assert response["body"].startswith("2 of 3 entries refused: entry 1: ")
    assert [event.message for event in published] == ["ok"]


def test_basic_credentials_with_the_key_as_password_are_accepted(call, auth_headers, published: list) -> None:
    key = auth_headers("acme", "ingest")["Authorization"].removeprefix("Bearer ")
    basic = "Basic " + base64.b64encode(f"promtail:{key}".encode()).decode()
    body = {"streams": [{"stream": {"job": "x"}, "values": [[str(time.time_ns()), "line"]]}]}
    assert call("/loki/api/v1/push", body, {"authorization": basic})["statusCode"] == 204
    assert len(published) == 1


def test_bulk_answers_per_item_and_a_client_id_becomes_the_event_id(call, published: list) -> None:
    uuid_id = "0b3f2a9e-6d3c-4f7e-9a51-6f0d2b7c9e14"
    lines = [
        {"create": {"_id": "order-7"}},
        {"message": "paid", "level": "info"},
        {"index": {"_id": uuid_id}},
        {"message": "shipped"},
        {"delete": {"_id": "order-7"}},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    response = call("/orders/_bulk", body, NDJSON)
    answer = json.loads(response["body"])
    assert (response["statusCode"], answer["errors"], response["headers"]["X-Elastic-Product"]) == (
        200,
        True,
        "Elasticsearch",
    )
    assert [(next(iter(item)), next(iter(item.values()))["status"]) for item in answer["items"]] == [
        ("create", 201),
        ("index", 201),
        ("delete", 400),
    ]
    assert answer["items"][0]["create"]["_index"] == "orders"
    paid, shipped = published
    assert paid.source == "orders" and shipped.id == UUID(uuid_id)
    assert call("/orders/_bulk", body.replace("paid", "paid again"), NDJSON)["statusCode"] == 200
    assert published[2].id == paid.id, "the same _id is the same event id, whatever the body"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/", "version"),
        ("GET", "/_license", "license"),
        ("GET", "/_cluster/health", "status"),
        ("GET", "/_index_template/logs", "index_templates"),
        ("PUT", "/_ilm/policy/logs", "acknowledged"),
        ("PUT", "/_ingest/pipeline/p", "acknowledged"),
    ],
)
def test_elasticsearch_probes_are_answered_harmlessly(call, method: str, path: str, expected: str) -> None:
    response = call(path, None, method=method)
    assert response["statusCode"] == 200
    assert response["headers"]["X-Elastic-Product"] == "Elasticsearch"
    assert expected in json.loads(response["body"])


def test_accept_records_are_kept_only_where_the_answer_names_the_events(call, published: list, monkeypatch) -> None:
    """OTLP and Loki answers name no event, so nobody can ask for the status of their ids: no accept record is
    written for them (one Redis set member per event); the native batch and `_bulk` answers name every id."""
    from logpipe.receipts import accepted

    recorded: list[str] = []
    monkeypatch.setattr(accepted, "record_accepted", lambda events, settings: recorded.extend(e.id for e in events))
    now = str(time.time_ns())
    call("/v1/logs", otlp("a", "b"), {"content-type": "application/x-protobuf"})
    call("/loki/api/v1/push", {"streams": [{"stream": {"job": "x"}, "values": [[now, "line"]]}]})
    assert recorded == []
    assert call("/api/logs/batch", [{"level": "INFO", "message": "m", "source": "s"}])["statusCode"] == 202
    call("/orders/_bulk", json.dumps({"create": {}}) + "\n" + json.dumps({"message": "doc"}) + "\n", NDJSON)
    assert [event.message for event in published[-2:]] == ["m", "doc"]
    assert recorded == [str(event.id) for event in published[-2:]]

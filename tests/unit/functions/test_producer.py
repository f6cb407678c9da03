import gzip
import json

import pytest

from logpipe.adapters import kafka
from logpipe.edge.openapi import OPENAPI
from logpipe.errors import DependencyUnavailableError
from logpipe.models import IngestAccepted

SEED = {"organizationId": "acme", "level": "INFO", "message": "User logged in", "source": "auth-service"}


def invoke(producer_function, event: dict, context) -> tuple[int, dict, dict]:
    response = producer_function.handler(event, context)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def test_accepts_the_seed_body_and_answers_202_with_the_event_id(
    producer_function, sample_event, lambda_context, published: list
) -> None:
    status, _, body = invoke(producer_function, sample_event("producer_post_log"), lambda_context)
    assert status == 202
    assert body["status"] == "success"
    assert body["message"] == "Log event queued for processing"
    assert [str(event.id) for event in published] == [body["id"]]
    assert (published[0].organization_id, published[0].level, published[0].source) == (
        "acme",
        "INFO",
        "auth-service",
    )


def test_invalid_body_is_422_naming_the_fields_and_nothing_is_published(
    producer_function, sample_event, lambda_context, published: list
) -> None:
    status, _, body = invoke(producer_function, sample_event("producer_post_log_invalid"), lambda_context)
    assert status == 422
    assert body["status"] == "error"
    assert body["error"]["code"] == "validation_failed"
    assert {problem["field"] for problem in body["error"]["details"]} == {"level", "message"}
    assert published == []


def test_malformed_json_is_400(producer_function, sample_event, lambda_context, published: list) -> None:
    event = {**sample_event("producer_post_log"), "body": '{"organizationId": '}
    status, _, body = invoke(producer_function, event, lambda_context)
    assert (status, body["error"]["code"]) == (400, "malformed_json")
    assert published == []


def test_non_json_content_type_is_415(producer_function, sample_event, lambda_context, published: list) -> None:
    event = sample_event("producer_post_log")
    event["headers"]["content-type"] = "text/plain"
    status, _, body = invoke(producer_function, event, lambda_context)
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


def test_kafka_outage_is_503_with_retry_after(
    producer_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_events, **_):
        raise DependencyUnavailableError("kafka", "Kafka did not acknowledge the write", retry_after_seconds=7)

    monkeypatch.setattr(kafka, "publish_events", down)
    status, headers, body = invoke(producer_function, sample_event("producer_post_log"), lambda_context)
    assert status == 503
    assert headers["Retry-After"] == "7"
    assert body["error"]["code"] == "service_unavailable"


def test_unknown_route_is_a_json_404(producer_function, sample_event, lambda_context) -> None:
    event = sample_event("producer_post_log")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/nope"
    status, _, body = invoke(producer_function, event, lambda_context)
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_a_body_over_the_limit_is_413_before_parsing(
    producer_function, sample_event, lambda_context, published: list
) -> None:
    event = sample_event("producer_post_log")
    event["body"] = "[" + " " * producer_function.settings.max_body_bytes + "]"
    status, _, body = invoke(producer_function, event, lambda_context)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert published == []


def test_a_503_names_the_dependency_and_never_its_hosts_or_driver_message(
    producer_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = 'KafkaError{code=_MSG_TIMED_OUT,val=-192,str="Local: Message timed out"} at 10.0.3.7:9092'

    def down(_events, **_):
        raise DependencyUnavailableError("kafka", reason, retry_after_seconds=5)

    monkeypatch.setattr(kafka, "publish_events", down)
    response = producer_function.handler(sample_event("producer_post_log"), lambda_context)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == {
        "code": "service_unavailable",
        "message": "kafka is unavailable; retry later",
        "details": {"dependency": "kafka"},
    }
    assert "9092" not in response["body"] and "Local:" not in response["body"]


def test_a_gzip_body_is_accepted_on_the_single_event_route(
    producer_function, http_event, lambda_context, published: list
) -> None:
    body = gzip.compress(json.dumps(SEED).encode())
    status, _, answer = invoke(
        producer_function, http_event(body, headers={"content-encoding": "gzip"}), lambda_context
    )
    assert status == 202
    assert [str(event.id) for event in published] == [answer["id"]]


def test_identity_encoding_is_the_plain_body(producer_function, http_event, lambda_context, published: list) -> None:
    status, _, _ = invoke(producer_function, http_event(SEED, headers={"content-encoding": "identity"}), lambda_context)
    assert (status, len(published)) == (202, 1)


def test_a_batch_with_one_bad_item_answers_207_and_publishes_the_others_in_one_call(
    producer_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list] = []
    monkeypatch.setattr(kafka, "publish_events", lambda events, **_: calls.append(list(events)))

    status, _, answer = invoke(producer_function, sample_event("producer_post_batch"), lambda_context)

    assert (status, answer["status"], answer["accepted"], answer["rejected"]) == (207, "partial", 2, 1)
    assert [item["status"] for item in answer["items"]] == ["accepted", "rejected", "accepted"]
    assert answer["items"][1]["error"]["code"] == "validation_failed"
    assert {problem["field"] for problem in answer["items"][1]["error"]["details"]} == {"level", "message"}
    assert len(calls) == 1
    assert [str(event.id) for event in calls[0]] == [answer["items"][0]["id"], answer["items"][2]["id"]]


def test_a_gzip_ndjson_batch_with_crlf_is_accepted_whole(
    producer_function, sample_event, lambda_context, published: list
) -> None:
    status, _, answer = invoke(producer_function, sample_event("producer_post_batch_ndjson_gzip"), lambda_context)
    assert (status, answer["status"], answer["accepted"]) == (202, "success", 2)
    assert [event.message for event in published] == ["User logged in", "Payment declined"]


def test_an_events_envelope_is_a_batch(producer_function, http_event, lambda_context, published: list) -> None:
    status, _, answer = invoke(
        producer_function, http_event({"events": [SEED, SEED]}, "/api/logs/batch"), lambda_context
    )
    assert (status, answer["accepted"], len(published)) == (202, 2, 2)


def test_a_broken_ndjson_line_is_rejected_alone(producer_function, http_event, lambda_context, published: list) -> None:
    text = json.dumps(SEED) + "\n{broken\n" + json.dumps(SEED) + "\n"
    event = http_event(text, "/api/logs/batch", {"content-type": "application/x-ndjson"})
    status, _, answer = invoke(producer_function, event, lambda_context)
    assert status == 207
    assert [item.get("error") and item["error"]["code"] for item in answer["items"]] == [None, "malformed_json", None]
    assert len(published) == 2


def test_an_event_naming_another_organization_than_the_callers_is_refused_in_a_batch(
    producer_function, http_event, lambda_context, published: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway's auth middleware will set this; here the resolver context is primed as it would be.
    monkeypatch.setattr(producer_function.app, "context", {"organization_id": "acme"})
    monkeypatch.setattr(producer_function.app, "clear_context", lambda: None)
    items = [SEED, {**SEED, "organizationId": "globex"}, {k: v for k, v in SEED.items() if k != "organizationId"}]
    status, _, answer = invoke(producer_function, http_event(items, "/api/logs/batch"), lambda_context)
    assert status == 207
    assert answer["items"][1]["error"]["code"] == "organization_mismatch"
    assert [event.organization_id for event in published] == ["acme", "acme"]


def test_the_idempotency_key_header_reaches_the_route_whatever_its_case(
    producer_function, http_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list = []

    def ingest(event_in, settings, idempotency_key, organization_id):
        keys.append(idempotency_key)
        return IngestAccepted(id="00000000-0000-0000-0000-000000000001")

    monkeypatch.setattr(producer_function, "ingest_event", ingest)
    for name in ("idempotency-key", "Idempotency-Key"):
        status, _, _ = invoke(producer_function, http_event(SEED, headers={name: "order-17"}), lambda_context)
        assert status == 202
    assert keys == ["order-17", "order-17"]


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_idempotency_key_out_of_bounds_is_422_naming_the_header(
    producer_function, http_event, lambda_context, published: list, key: str
) -> None:
    status, _, body = invoke(producer_function, http_event(SEED, headers={"Idempotency-Key": key}), lambda_context)
    assert (status, body["error"]["code"]) == (422, "validation_failed")
    assert [problem["field"] for problem in body["error"]["details"]] == ["header.idempotency-key"]
    assert published == []


def test_the_openapi_document_is_generated_from_the_routes_and_models(producer_function) -> None:
    document = producer_function.app.get_openapi_schema(**OPENAPI)
    schema = document.model_dump(mode="json", by_alias=True, exclude_none=True)
    single = schema["paths"]["/api/logs"]["post"]
    assert {"/api/logs", "/api/logs/batch", "/v1/logs", "/loki/api/v1/push", "/_bulk", "/{index}/_bulk"} <= set(
        schema["paths"]
    )
    assert single["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LogEventIn"}
    assert [parameter["name"] for parameter in single["parameters"]] == ["idempotency-key"]
    assert {"202", "400", "401", "403", "413", "415", "422", "429", "503"} <= set(single["responses"])
    assert single["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "message" in schema["components"]["schemas"]["LogEventIn"]["required"]


def test_log_lines_carry_the_api_gateway_request_id_as_correlation_id(
    producer_function, http_event, lambda_context, published: list
) -> None:
    for request_id in ("JKJaXmPLvHcESHA=", "Zm9vYmFyYmF6cXV4="):
        event = http_event(SEED)
        event["requestContext"]["requestId"] = request_id
        invoke(producer_function, event, lambda_context)
        assert producer_function.logger.get_correlation_id() == request_id

import json

import pytest

from logpipe import kafka
from logpipe.errors import DependencyUnavailableError


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list:
    sent: list = []
    monkeypatch.setattr(kafka, "publish_events", sent.extend)
    return sent


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
    def down(_events):
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

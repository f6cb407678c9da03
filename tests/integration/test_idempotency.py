"""Retried ingest requests against the real Redis and Kafka: same answer, no second event."""

import json

import pytest


def post(producer_function, sample_event, lambda_context, body: dict, idempotency_key: str | None = None):
    event = sample_event("producer_post_log")
    event["body"] = json.dumps(body)
    if idempotency_key:
        event["headers"]["idempotency-key"] = idempotency_key
    response = producer_function.handler(event, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def ids_published_before(events_topic, sentinel_id: str, organization_id: str) -> list[str]:
    """Ids published for the organization up to the sentinel event: same key, same partition, in order."""
    ids: list[str] = []

    def until_sentinel(message) -> bool:
        if message.key() != organization_id.encode():
            return False
        event_id = json.loads(message.value())["id"]
        if event_id == sentinel_id:
            return True
        ids.append(event_id)
        return False

    assert events_topic.wait_for(until_sentinel) is not None, "the sentinel event never arrived"
    return ids


@pytest.fixture
def body(organization_id: str) -> dict:
    return {"organizationId": organization_id, "level": "INFO", "message": "charged card", "source": "billing"}


def test_a_retried_request_gets_the_same_answer_and_publishes_once(
    settings, producer_function, sample_event, lambda_context, tail, organization_id: str, body: dict
) -> None:
    events_topic = tail(settings.kafka_topic)

    first = post(producer_function, sample_event, lambda_context, body, "order-1234")
    retry = post(producer_function, sample_event, lambda_context, body, "order-1234")

    assert first[0] == retry[0] == 202
    assert first[2] == retry[2]

    sentinel = post(producer_function, sample_event, lambda_context, {**body, "message": "sentinel"})
    assert ids_published_before(events_topic, sentinel[2]["id"], organization_id) == [first[2]["id"]]


def test_a_client_event_id_makes_retries_idempotent_too(
    settings, producer_function, sample_event, lambda_context, organization_id: str, body: dict
) -> None:
    client_id = "6f1c4a52-8a0e-4f43-9a53-0c2b8d2f7e11"
    with_id = {**body, "id": client_id, "message": f"client id {organization_id}"}

    first = post(producer_function, sample_event, lambda_context, with_id)
    retry = post(producer_function, sample_event, lambda_context, with_id)

    assert (first[0], retry[0]) == (202, 202)
    assert first[2]["id"] == retry[2]["id"] == client_id


def test_reusing_a_key_for_another_event_is_refused(
    settings, producer_function, sample_event, lambda_context, body: dict
) -> None:
    assert post(producer_function, sample_event, lambda_context, body, "key-reuse")[0] == 202

    status, _, answer = post(producer_function, sample_event, lambda_context, {**body, "level": "ERROR"}, "key-reuse")

    assert status == 422
    assert answer["error"]["code"] == "idempotency_key_reused"


def test_keyed_requests_answer_503_when_redis_is_down(
    settings, redis_down, producer_function, sample_event, lambda_context, body: dict
) -> None:
    status, headers, answer = post(producer_function, sample_event, lambda_context, body, "while-redis-down")

    assert status == 503
    assert headers["Retry-After"]
    assert answer["error"]["details"] == {"dependency": "redis"}

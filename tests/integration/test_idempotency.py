"""Retried ingest requests against the real Redis and Kafka: same answer, no second event."""

import json
import time
import uuid
from dataclasses import dataclass

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from logpipe.adapters import kafka
from logpipe.models import LogEvent
from logpipe.sink import storage
from tests.conftest import FakeLambdaContext
from tests.integration.stored_events import as_fields


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


@dataclass
class ShortLivedContext(FakeLambdaContext):
    """An invocation with one second left: an interrupted attempt's in-progress record expires after it."""

    def get_remaining_time_in_millis(self) -> int:
        return 1000


def test_a_retry_after_the_completion_write_failed_publishes_the_same_id_and_stores_one_row(
    settings, producer_function, sample_event, tail, pg, organization_id: str, body: dict, monkeypatch
) -> None:
    events_topic = tail(settings.kafka_topic)
    real_publish = kafka.publish_events
    admin = redis.Redis.from_url(settings.redis_url)

    def publish_then_freeze_redis_writes(events, **options) -> None:
        real_publish(events, **options)  # Kafka acknowledged ...
        admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")  # ... and saving the answer times out

    monkeypatch.setattr(kafka, "publish_events", publish_then_freeze_redis_writes)
    try:
        first = post(producer_function, sample_event, ShortLivedContext(), body, "order-mid-failure")
    finally:
        monkeypatch.setattr(kafka, "publish_events", real_publish)
        admin.execute_command("CLIENT", "UNPAUSE")
    time.sleep(1.5)  # the interrupted attempt's in-progress record expires
    retry = post(producer_function, sample_event, ShortLivedContext(), body, "order-mid-failure")
    sentinel = post(producer_function, sample_event, ShortLivedContext(), {**body, "message": "sentinel"})

    assert (first[0], first[2].get("error", {}).get("details")) == (503, {"dependency": "redis"}), first
    assert retry[0] == 202
    published = ids_published_before(events_topic, sentinel[2]["id"], organization_id)
    assert published == [retry[2]["id"], retry[2]["id"]]  # published twice (at least once), with one id
    records = kafka_records(settings, organization_id, published[0])
    assert len(records) == 2
    # Store both records (a consumer of this topic, e.g. the e2e runner's, may already have stored them).
    storage.store_events(as_fields([LogEvent.model_validate_json(value) for value in records]))
    assert pg.execute("SELECT count(*) FROM log_events WHERE organization_id = %s", (organization_id,)).fetchone() == (
        1,
    )


def kafka_records(settings, organization_id: str, event_id: str) -> list[bytes]:
    """Every record value with this id on the organization's partition, read from the start."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"it-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(settings.kafka_topic, timeout=10).topics[settings.kafka_topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(settings.kafka_topic, p), timeout=10) for p in partitions
        }
        consumer.assign(
            [TopicPartition(settings.kafka_topic, p, max(low, high - 200)) for p, (low, high) in ends.items()]
        )
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        remaining = {p for p, (low, high) in ends.items() if high > low}
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.offset() >= ends[message.partition()][1] - 1:
                remaining.discard(message.partition())
            if message.key() == organization_id.encode() and json.loads(message.value())["id"] == event_id:
                values.append(message.value())
        return values
    finally:
        consumer.close()

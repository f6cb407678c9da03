"""Redis memory per event, against real Kafka, PostgreSQL and Redis: events ingested through the logic layer and
stored by the sink leave nothing per event in Redis (their accept records leave once PostgreSQL holds their
outcome), so a million of them stay within REDIS_BUDGET_PER_MILLION_STORED (docs/gateway.md, "Redis memory").

Measured on a private Redis database (the sum of MEMORY USAGE of its keys, exact for sets), on EVENTS events
extrapolated to a million: the growth is per request and per organization, not per event.
"""

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from aws_lambda_powertools.utilities.kafka.consumer_records import ConsumerRecordRecords
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from logpipe.adapters import cache
from logpipe.config import Settings, get_settings
from logpipe.ingest.intake import accept_batch
from logpipe.models import DecodedBatch
from logpipe.receipts import accepted
from logpipe.sink.consume import process_batch

PRIVATE_DB = 7
EVENTS = 20_000
EVENTS_PER_REQUEST = 1_000
ORGANIZATIONS = 4
REDIS_BUDGET_PER_MILLION_STORED = 64 * 1024  # bytes a million stored events may leave in Redis
QUEUED_BYTES_PER_EVENT = 120  # an accept record while its event waits for the sink (about 92 B measured)


@pytest.fixture
def private_pipeline(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose Redis is a private database and whose events topic is a fresh one."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topic = f"budget-it-{uuid.uuid4().hex[:10]}"
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(30)
    base_url = settings.redis_url.rsplit("/", 1)[0] if settings.redis_url.count("/") > 2 else settings.redis_url
    monkeypatch.setenv("REDIS_URL", f"{base_url}/{PRIVATE_DB}")
    monkeypatch.setenv("KAFKA_TOPIC", topic)
    get_settings.cache_clear()
    cache.client.cache_clear()
    yield get_settings()
    monkeypatch.undo()
    get_settings.cache_clear()
    cache.client.cache_clear()
    admin.delete_topics([topic])


def redis_bytes(client: redis.Redis, organization_id: str) -> tuple[int, int]:
    """(bytes of every key of the database, how many of them are accept records of the test's organizations)."""
    total, receipts = 0, 0
    for key in client.scan_iter(count=1000):
        total += client.memory_usage(key, samples=0) or 0
        receipts += key.startswith(f"accepted:{{{organization_id}".encode())
    return total, receipts


def ingest(settings: Settings, organizations: list[str]) -> None:
    for start in range(0, EVENTS, EVENTS_PER_REQUEST):
        organization_id = organizations[start // EVENTS_PER_REQUEST % len(organizations)]
        items = [
            {"level": "INFO", "message": f"budget {start + index}", "source": "budget"}
            for index in range(EVENTS_PER_REQUEST)
        ]
        answer = accept_batch(DecodedBatch.of(items, json.dumps(items).encode()), settings, None, organization_id)
        assert answer.accepted == EVENTS_PER_REQUEST


def consume(settings: Settings, events: int) -> int:
    """Run the sink over the topic's `events` records, in batches as the event source mapping would hand them."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"g-{settings.kafka_topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.kafka_topic])
    stored = 0
    try:
        while stored < events:
            messages = [message for message in consumer.consume(500, timeout=5) if message.error() is None]
            assert messages, f"the topic ran dry after {stored} events"
            outcome = process_batch([_record(message) for message in messages], settings, writer="budget-test")
            assert outcome.dead_lettered == 0
            stored += outcome.stored
    finally:
        consumer.close()
    return stored


def _record(message) -> ConsumerRecordRecords:
    return ConsumerRecordRecords(
        {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": message.timestamp()[1],
            "timestampType": "CREATE_TIME",
            "key": base64.b64encode(message.key()).decode(),
            "value": base64.b64encode(message.value()).decode(),
            "headers": [],
        }
    )


def test_stored_events_leave_redis_within_the_budget(private_pipeline: Settings, organization_id: str) -> None:
    client = cache.client()
    organizations = [f"{organization_id}-{index}" for index in range(ORGANIZATIONS)]
    before, _ = redis_bytes(client, organization_id)

    ingest(private_pipeline, organizations)
    queued, queued_receipts = redis_bytes(client, organization_id)
    assert queued_receipts >= ORGANIZATIONS  # the receipts are there while the events wait for the sink
    assert (queued - before) / EVENTS <= QUEUED_BYTES_PER_EVENT

    assert consume(private_pipeline, EVENTS) == EVENTS
    settled, receipts_left = redis_bytes(client, organization_id)
    per_million = (settled - before) * 1_000_000 / EVENTS
    print(f"Redis: {(queued - before) / EVENTS:.1f} B per queued event, {per_million:.0f} B per million stored")
    assert receipts_left == 0
    assert per_million <= REDIS_BUDGET_PER_MILLION_STORED


def test_a_settled_event_is_no_longer_queued_in_redis(private_pipeline: Settings, organization_id: str) -> None:
    items = [{"level": "INFO", "message": "settle me", "source": "budget"}]
    answer = accept_batch(DecodedBatch.of(items, b"settle"), private_pipeline, None, organization_id)
    event_id = answer.items[0]["id"]
    assert accepted.was_accepted(organization_id, event_id, private_pipeline)

    assert consume(private_pipeline, 1) == 1
    assert not accepted.was_accepted(organization_id, event_id, private_pipeline)

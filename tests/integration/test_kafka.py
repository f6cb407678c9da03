import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from logpipe.adapters import kafka
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError, PayloadTooLargeError
from logpipe.ingest.records import event_record
from logpipe.models import Level, LogEvent
from logpipe.sink import deadletter
from logpipe.sink.deadletter import DeadLetter
from tests.integration.stored_events import record_of


def test_published_events_are_keyed_by_organization_and_carry_the_normalized_json(
    settings, tail, organization_id: str
) -> None:
    now, event_id = datetime.now(UTC), uuid.uuid4()
    record = event_record(
        {"level": Level.WARN, "message": "slow query", "source": "db"}, organization_id, event_id, now, settings
    )
    event = LogEvent(
        id=event_id,
        organization_id=organization_id,
        level=Level.WARN,
        message="slow query",
        source="db",
        timestamp=now,
        received_at=now,
    )
    events_topic = tail(settings.kafka_topic)

    kafka.publish_events([record])

    message = events_topic.wait_for(lambda m: m.key() == organization_id.encode())
    assert message is not None, "the event never reached log-events"
    assert LogEvent.model_validate(json.loads(message.value())) == event
    assert json.loads(message.value())["organizationId"] == organization_id


def test_dead_letters_say_why_how_often_and_where_from(settings, tail) -> None:
    marker = uuid.uuid4().hex.encode()
    dlq = tail(settings.kafka_dlq_topic)

    deadletter.publish(
        [
            DeadLetter(
                key=b"acme",
                value=b"{broken " + marker,
                reason="undecodable",
                error="JSONDecodeError: Expecting value",
                attempts=3,
                source_topic="log-events",
                source_partition=4,
                source_offset=1234,
                writer="ConsumerFunction",
            )
        ]
    )

    message = dlq.wait_for(lambda m: marker in m.value())
    assert message is not None, "the dead letter never reached log-events-dlq"
    headers = dict(message.headers())
    assert headers["x-dlq-reason"] == b"undecodable"
    assert headers["x-dlq-attempts"] == b"3"
    assert (headers["x-dlq-source-topic"], headers["x-dlq-source-partition"]) == (b"log-events", b"4")
    assert headers["x-dlq-source-offset"] == b"1234"
    assert headers["x-dlq-writer"] == b"ConsumerFunction"
    assert message.key() == b"acme"


def test_ping_sees_the_broker_and_the_topic(settings) -> None:
    kafka.ping()


@pytest.fixture
def unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh producer pointed at a port nothing listens on, with a short delivery timeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed_port}")
    monkeypatch.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "500")
    get_settings.cache_clear()
    kafka._producer.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    kafka._producer.cache_clear()


def test_an_unacknowledged_write_raises_within_the_delivery_timeout(unreachable_broker, organization_id: str) -> None:
    now = datetime.now(UTC)
    event = LogEvent(
        id=uuid.uuid4(),
        organization_id=organization_id,
        level=Level.INFO,
        message="nobody hears this",
        source="test",
        timestamp=now,
        received_at=now,
    )
    started = time.monotonic()

    with pytest.raises(DependencyUnavailableError) as raised:
        kafka.publish_events([record_of(event)])

    assert raised.value.details == {"dependency": "kafka"}
    assert time.monotonic() - started < 5


def test_with_every_broker_connection_down_a_publish_fails_in_milliseconds_not_after_the_publish_wait(
    unreachable_broker, organization_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "5000")
    monkeypatch.setenv("KAFKA_PUBLISH_WAIT_MS", "3000")
    get_settings.cache_clear()
    now = datetime.now(UTC)
    event = LogEvent(
        id=uuid.uuid4(), organization_id=organization_id, level=Level.INFO, message="nobody hears this",
        source="test", timestamp=now, received_at=now,
    )  # fmt: skip
    took, reasons = [], []
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError) as raised:
            kafka.publish_events([record_of(event)])
        took.append(time.monotonic() - started)
        reasons.append(raised.value.reason)

    assert took[0] < 1  # librdkafka reports the refused connection at once: no wait for an acknowledgement
    assert max(took[1:]) < 0.2  # still down: refused after a short metadata probe
    assert reasons[1:] == ["every Kafka broker connection is down"] * 2  # before producing: nothing more queued


def test_a_record_kafka_refuses_for_its_size_is_the_clients_error_and_opens_no_circuit(settings) -> None:
    from logpipe.ingest import publisher

    now = datetime.now(UTC)
    huge = LogEvent(
        id=uuid.uuid4(), organization_id="big", level=Level.INFO, message="x" * 1_500_000, source="s",
        timestamp=now, received_at=now,
    )  # fmt: skip
    with pytest.raises(PayloadTooLargeError):
        kafka.publish_events([record_of(huge)])

    circuit = publisher.kafka_circuit_store()
    circuit._cache.clear()
    for _ in range(settings.kafka_breaker_failure_threshold + 2):  # more than opens the circuit on failures
        with pytest.raises(PayloadTooLargeError):
            publisher.publish([record_of(huge)], settings)
    ordinary = huge.model_copy(update={"id": uuid.uuid4(), "message": "fits"})
    publisher.publish([record_of(ordinary)], settings)  # another tenant's ordinary event still goes through

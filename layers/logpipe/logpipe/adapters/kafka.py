"""Kafka access: one idempotent producer per process, created at cold start or first use, reused while warm."""

import contextlib
import time
from collections.abc import Sequence
from functools import lru_cache

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from logpipe.adapters import aws
from logpipe.config import KAFKA_MAX_RECORD_BYTES, get_settings
from logpipe.errors import DependencyUnavailableError, PayloadTooLargeError
from logpipe.models import EventRecord
from logpipe.observability import logger

# Errors that refuse a record for what it is (its size, its form), whoever is asked again.
_REFUSED_CONTENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)

# librdkafka's interval between two requests for the idempotent producer's id (rd_kafka_idemp_pid_timer_restart).
_PRODUCER_ID_RETRY_S = 0.5

# (topic, key, value, headers) of one message to publish; a None value is a tombstone.
Outgoing = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]


@lru_cache(maxsize=1)
def _producer() -> Producer:
    settings = get_settings()
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "client.id": "logpipe-producer",
            "acks": "all",
            "enable.idempotence": True,
            # One invocation waits for its own records: lingering would only delay them (a batch is produced
            # in one go and batches itself while the first request is in flight).
            "linger.ms": 0,
            "compression.type": "lz4",
            # A message not acknowledged within this bound fails its delivery report, so callers answer 503
            # instead of hanging.
            "message.timeout.ms": settings.kafka_delivery_timeout_ms,
            "socket.connection.setup.timeout.ms": min(max(settings.kafka_delivery_timeout_ms, 1000), 10_000),
            **aws.kafka_client_config(settings),
        }
    )


def connect() -> None:
    """Connect now, at cold start, so that the first request does not wait ~0.5 s (measured) for the connection, the
    topic's metadata and the idempotent producer's id. librdkafka asks for the id as soon as the producer exists, and
    when no broker connection is up yet, again 500 ms later (its PID timer): a first produce before then waits for
    it. A broker that does not answer within the dependency timeout is left to the first request's answer."""
    settings = get_settings()
    producer = _producer()
    with contextlib.suppress(KafkaException):
        producer.list_topics(topic=settings.kafka_topic, timeout=settings.dependency_timeout_seconds)
        producer.poll(_PRODUCER_ID_RETRY_S)


def publish_events(records: Sequence[EventRecord]) -> None:
    """Publish events' records keyed by organization and return only once the broker acknowledged all of them."""
    topic = get_settings().kafka_topic
    _produce_and_wait([(topic, record.organization_id.encode(), record.value, None) for record in records])


def publish_records(messages: Sequence[Outgoing]) -> None:
    """Publish (topic, key, value, headers) as they are and wait for the broker's acknowledgement."""
    _produce_and_wait(messages)


def consumer(group_id: str) -> Consumer:
    """A consumer of the cluster in its own group, committing only what the caller commits."""
    settings = get_settings()
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **aws.kafka_client_config(settings),
        }
    )


def _produce_and_wait(messages: Sequence[Outgoing]) -> None:
    """Produce, then serve delivery reports until these messages are all acknowledged (not the whole queue)."""
    if not messages:
        return
    settings = get_settings()
    producer = _producer()
    unacknowledged = len(messages)
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        nonlocal unacknowledged
        unacknowledged -= 1
        if error is not None:
            failures.append(error)

    try:
        for topic, key, value, headers in messages:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
    except (BufferError, KafkaException) as exc:
        producer.flush(settings.kafka_delivery_timeout_ms / 1000)
        if isinstance(exc, KafkaException) and exc.args[0].code() in _REFUSED_CONTENT:
            raise _refused(exc.args[0]) from exc
        raise _unavailable(f"could not enqueue to Kafka: {exc}") from exc

    # Delivery reports arrive within message.timeout.ms; the extra second covers callback scheduling.
    deadline = time.monotonic() + settings.kafka_delivery_timeout_ms / 1000 + 1
    while unacknowledged and (remaining := deadline - time.monotonic()) > 0:
        producer.poll(remaining)
    refused = next((failure for failure in failures if failure.code() in _REFUSED_CONTENT), None)
    if refused is not None:
        raise _refused(refused)
    if failures or unacknowledged:
        reason = failures[0].str() if failures else f"{unacknowledged} message(s) unacknowledged"
        logger.error("Kafka delivery failed", extra={"failures": len(failures), "queued": unacknowledged})
        raise _unavailable(f"Kafka did not acknowledge the write: {reason}")


def _refused(error: KafkaError) -> PayloadTooLargeError:
    """A record the client or the broker refuses for its content: the request's fault, not the broker's, so it is
    a 413 that the circuit breaker does not count (no other tenant's ingest is affected)."""
    logger.warning("Kafka refused a record for its content", extra={"error": error.str()})
    return PayloadTooLargeError("an event is larger than Kafka accepts", details={"limit": KAFKA_MAX_RECORD_BYTES})


def _unavailable(message: str) -> DependencyUnavailableError:
    return DependencyUnavailableError("kafka", message, get_settings().retry_after_seconds)


def ping() -> None:
    """Raise unless the broker answers and the events topic exists."""
    settings = get_settings()
    metadata = _producer().list_topics(topic=settings.kafka_topic, timeout=settings.dependency_timeout_seconds)
    topic = metadata.topics.get(settings.kafka_topic)
    if topic is None or topic.error is not None:
        raise RuntimeError(f"topic {settings.kafka_topic} unavailable: {topic.error if topic else 'missing'}")

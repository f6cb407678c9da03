"""Kafka access: one idempotent producer per process, created on first use and reused while warm."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from logpipe import aws
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import LogEvent
from logpipe.observability import logger


@dataclass(frozen=True)
class DeadLetter:
    """A record that can never be stored, with where it came from and why."""

    key: bytes | None
    value: bytes
    reason: str
    error: str
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        values = {
            "x-dlq-reason": self.reason,
            "x-dlq-error": self.error[:1000],
            "x-dlq-attempts": str(self.attempts),
            "x-dlq-source-topic": self.source_topic,
            "x-dlq-source-partition": str(self.source_partition),
            "x-dlq-source-offset": str(self.source_offset),
            "x-dlq-failed-at": datetime.now(UTC).isoformat(),
            **self.extra_headers,
        }
        return [(name, value.encode()) for name, value in values.items()]


@lru_cache(maxsize=1)
def _producer() -> Producer:
    settings = get_settings()
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "client.id": "logpipe-producer",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "compression.type": "lz4",
            # A message not acknowledged within this bound fails its delivery report, so callers answer 503
            # instead of hanging.
            "message.timeout.ms": settings.kafka_delivery_timeout_ms,
            "socket.connection.setup.timeout.ms": min(max(settings.kafka_delivery_timeout_ms, 1000), 10_000),
            **aws.kafka_client_config(settings),
        }
    )


def publish_events(events: Sequence[LogEvent]) -> None:
    """Publish events keyed by organization and return only once the broker acknowledged all of them."""
    topic = get_settings().kafka_topic
    _produce_and_wait(
        [
            (topic, event.organization_id.encode(), event.model_dump_json(by_alias=True).encode(), None)
            for event in events
        ]
    )


def publish_dead_letters(letters: Sequence[DeadLetter]) -> None:
    """Publish to the dead-letter topic and wait for the ack; only then may source offsets be committed."""
    topic = get_settings().kafka_dlq_topic
    _produce_and_wait([(topic, letter.key, letter.value, letter.headers()) for letter in letters])


Outgoing = tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]


def _produce_and_wait(messages: Sequence[Outgoing]) -> None:
    if not messages:
        return
    settings = get_settings()
    producer = _producer()
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    try:
        for topic, key, value, headers in messages:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            producer.poll(0)
    except (BufferError, KafkaException) as exc:
        producer.flush(settings.kafka_delivery_timeout_ms / 1000)
        raise _unavailable(f"could not enqueue to Kafka: {exc}") from exc

    # Delivery reports arrive within message.timeout.ms; the extra second covers callback scheduling.
    still_queued = producer.flush(settings.kafka_delivery_timeout_ms / 1000 + 1)
    if failures or still_queued:
        reason = failures[0].str() if failures else f"{still_queued} message(s) unacknowledged"
        logger.error("Kafka delivery failed", extra={"failures": len(failures), "queued": still_queued})
        raise _unavailable(f"Kafka did not acknowledge the write: {reason}")


def _unavailable(message: str) -> DependencyUnavailableError:
    return DependencyUnavailableError("kafka", message, get_settings().retry_after_seconds)


def ping() -> None:
    """Raise unless the broker answers and the events topic exists."""
    settings = get_settings()
    metadata = _producer().list_topics(topic=settings.kafka_topic, timeout=settings.dependency_timeout_seconds)
    topic = metadata.topics.get(settings.kafka_topic)
    if topic is None or topic.error is not None:
        raise RuntimeError(f"topic {settings.kafka_topic} unavailable: {topic.error if topic else 'missing'}")

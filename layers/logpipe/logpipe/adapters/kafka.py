"""Kafka access: one idempotent producer per process, created at cold start or first use, reused while warm."""

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
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
# How long a publish asks for the cluster's metadata when every broker connection was reported down.
_BROKER_PROBE_S = 0.05
# How often a publish waiting for its acknowledgement looks whether every broker connection was reported down.
_WAIT_SLICE_S = 0.02

# (topic, key, value, headers) of one message to publish; a None value is a tombstone.
Outgoing = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]
# Asked when a publish is not acknowledged within KAFKA_PUBLISH_QUICK_WAIT_MS: whether it may wait longer (up to
# KAFKA_PUBLISH_WAIT_MS), held while it does. Without one, every publish may.
Patience = Callable[[], AbstractContextManager[bool]]


@dataclass
class _BrokerContact:
    """What this process's producer has learnt of the brokers: whether a write of it was ever acknowledged (the
    first wait of a fresh producer includes connecting and getting its idempotent producer id), whether the broker
    answered since the producer's last failure, lost connection or unanswered wait (none yet: it does; a broker just
    back may still be electing or loading its coordinator, and every instance's producer re-acquires its idempotent
    producer id), whether a call gave up waiting and left records in its queue, and whether it reported every broker
    connection down (librdkafka does within milliseconds of the connections dropping) and has not reached a broker
    since."""

    acknowledged: bool = False
    answering: bool = True
    left_unacknowledged: bool = False
    failed_since_left: bool = False
    all_down: bool = False

    def on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down, self.answering = True, False

    def on_acknowledged(self) -> None:
        self.acknowledged, self.answering, self.left_unacknowledged, self.all_down = True, True, False, False

    def on_failure(self) -> None:
        self.answering, self.failed_since_left = False, True

    def on_left(self) -> None:
        """A call gave up waiting: its records stay queued, and their fate tells whether the broker answers."""
        self.answering, self.left_unacknowledged, self.failed_since_left = False, True, False

    def on_drained(self) -> None:
        """The records a call left behind are no longer queued: acknowledged, unless one was reported failed."""
        self.left_unacknowledged = False
        if not self.failed_since_left:
            self.answering = True


_contact = _BrokerContact()


@lru_cache(maxsize=1)
def _producer() -> Producer:
    settings = get_settings()
    _contact.__init__()  # a new producer has learnt nothing yet
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
            # Delivery reports of failed records only: a call waits for the producer's queue to empty instead of
            # counting one report per record (a Python callback per event, about a microsecond each).
            "delivery.report.only.error": True,
            # A message not acknowledged within this bound fails its delivery report, so callers answer 503
            # instead of hanging.
            "message.timeout.ms": settings.kafka_delivery_timeout_ms,
            "socket.connection.setup.timeout.ms": min(max(settings.kafka_delivery_timeout_ms, 1000), 10_000),
            # A restarted broker is reconnected to within a second (librdkafka backs off up to 10 s by default).
            "reconnect.backoff.max.ms": 1000,
            "error_cb": _contact.on_error,
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


def publish_events(records: Sequence[EventRecord], patience: Patience | None = None) -> None:
    """Publish events' records keyed by organization and return only once the broker acknowledged all of them;
    `patience` says whether a publish not acknowledged within the quick wait may wait longer."""
    topic = get_settings().kafka_topic
    _produce_and_wait([(topic, record.organization_id.encode(), record.value, None) for record in records], patience)


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


def _produce_and_wait(messages: Sequence[Outgoing], patience: Patience | None = None) -> None:
    """Produce, then wait until the producer's queue is empty (one instance sends one request at a time, and nothing
    earlier is left in it: _refuse_while_unanswered), for at most KAFKA_PUBLISH_QUICK_WAIT_MS, and then, if `patience`
    grants it, up to KAFKA_PUBLISH_WAIT_MS; records not acknowledged by then stay queued until the delivery timeout.
    Only a failed record is reported (delivery.report.only.error)."""
    if not messages:
        return
    settings = get_settings()
    producer = _producer()
    _refuse_while_unanswered(producer)
    failures: list[KafkaError] = []

    def on_failure(error: KafkaError, _message: Message) -> None:
        failures.append(error)
        _contact.on_failure()

    try:
        for topic, key, value, headers in messages:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_failure)
    except (BufferError, KafkaException) as exc:
        if producer.flush(settings.kafka_publish_wait_ms / 1000):
            _contact.on_left()
        if isinstance(exc, KafkaException) and exc.args[0].code() in _REFUSED_CONTENT:
            raise _refused(exc.args[0]) from exc
        raise _unavailable(f"could not enqueue to Kafka: {exc}") from exc

    def wait_until(deadline: float) -> int:
        """Records still queued when they are all acknowledged (0), every broker is reported down, or `deadline`."""
        queued = len(producer)
        while queued and not _contact.all_down and (remaining := deadline - time.monotonic()) > 0:
            queued = producer.flush(min(remaining, _WAIT_SLICE_S))  # serves reports and errors meanwhile
        return queued

    # A fresh producer may wait out the delivery timeout (the extra second covers callback scheduling). Until the
    # broker answers again after a failure, a wait of any length takes a permit: a few instances wait, not all.
    wait_ms = settings.kafka_publish_wait_ms if _contact.acknowledged else settings.kafka_delivery_timeout_ms + 1000
    quick_ms = min(wait_ms, settings.kafka_publish_quick_wait_ms) if _contact.answering else 0
    started = time.monotonic()
    unacknowledged = wait_until(started + quick_ms / 1000)
    if unacknowledged and not _contact.all_down:
        with (patience or _patient)() as may_wait:
            if not may_wait:
                _contact.on_left()
                raise _unavailable("Kafka is slow to acknowledge and as many requests as may wait already do")
            unacknowledged = wait_until(started + wait_ms / 1000)
    refused = next((failure for failure in failures if failure.code() in _REFUSED_CONTENT), None)
    if refused is not None:
        raise _refused(refused)
    if failures or unacknowledged:  # a failure was reported by on_failure already
        if unacknowledged:
            _contact.on_left()
        reason = failures[0].str() if failures else f"{unacknowledged} message(s) unacknowledged"
        logger.error("Kafka delivery failed", extra={"failures": len(failures), "queued": unacknowledged})
        raise _unavailable(f"Kafka did not acknowledge the write: {reason}")
    _contact.on_acknowledged()


def _patient() -> AbstractContextManager[bool]:
    return contextlib.nullcontext(True)


def _refuse_while_unanswered(producer: Producer) -> None:
    """Fail at once, rather than wait out the publish wait, when a wait could not succeed: every broker connection
    is down (reported, and a metadata request still finds no broker), or records an earlier call gave up waiting
    for are still unacknowledged (the broker stopped answering; more records would only queue behind them). The
    circuit breaker counts these failures like a timeout, so it opens within milliseconds of a broker's loss."""
    producer.poll(0)  # serve the delivery reports and errors already in
    if _contact.all_down:
        try:
            producer.list_topics(timeout=_BROKER_PROBE_S)
        except KafkaException:
            raise _unavailable("every Kafka broker connection is down") from None
        _contact.all_down = False
    if _contact.left_unacknowledged:
        if queued := len(producer):  # its records, and any report or error not served yet
            raise _unavailable(f"{queued} earlier message(s) still unacknowledged")
        _contact.on_drained()


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

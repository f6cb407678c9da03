"""Publishing accepted events: Kafka behind its circuit breaker, one wait for the broker's acknowledgement of all
of them, then their accept records (when the client is told their ids) and the received metric."""

from collections.abc import Callable, Sequence
from functools import lru_cache

from logpipe.adapters import circuit_breaker, kafka
from logpipe.adapters.circuit_breaker import BreakerPolicy
from logpipe.config import Settings
from logpipe.models import EventRecord
from logpipe.observability import MetricUnit, metrics
from logpipe.receipts import accepted


def publish(records: Sequence[EventRecord], settings: Settings, receipts: bool = True) -> None:
    """Publish the events' records and return once Kafka acknowledged every one; raises DependencyUnavailableError (the
    broker did not acknowledge in time, or its circuit is open). `receipts`: keep their accept records, so that
    their status reads `queued` until stored (pointless when the client's answer names no id)."""
    _guarded_send(kafka_breaker_policy(settings))(records)
    if receipts:
        accepted.record_accepted(records, settings)
    metrics.add_metric(name="log_events_received_total", unit=MetricUnit.Count, value=len(records))


def kafka_breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=settings.kafka_breaker_failure_threshold,
        recovery_seconds=settings.kafka_breaker_recovery_seconds,
        success_threshold=settings.kafka_breaker_success_threshold,
        state_cache_seconds=settings.kafka_breaker_state_cache_seconds,
    )


@lru_cache(maxsize=1)
def kafka_circuit_store() -> circuit_breaker.RedisCircuitStore:
    """The Kafka circuit's state, shared by every instance through Redis."""
    return circuit_breaker.RedisCircuitStore()


@lru_cache(maxsize=4)
def _guarded_send(policy: BreakerPolicy) -> Callable[[Sequence[EventRecord]], None]:
    return circuit_breaker.guarded("kafka", policy, kafka_circuit_store())(_send)


def _send(records: Sequence[EventRecord]) -> None:
    kafka.publish_events(records)

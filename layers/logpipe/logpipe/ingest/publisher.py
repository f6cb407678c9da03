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
    _guarded_send(kafka_breaker_policy(settings), kafka_wait_permits(settings))(records)
    if receipts:
        accepted.record_accepted(records, settings)
    metrics.add_metric(name="log_events_received_total", unit=MetricUnit.Count, value=len(records))


def report_kafka_circuit(settings: Settings) -> None:
    """At cold start: the Kafka circuit's metrics series (its shared state, its transitions at 0)."""
    circuit_breaker.report_state("kafka", kafka_breaker_policy(settings), kafka_circuit_store())


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


def kafka_wait_permits(settings: Settings) -> circuit_breaker.WaitPermits:
    """Who may wait past the quick wait for a broker slow to acknowledge, shared by every instance through Redis; a
    lease outlives the longest wait (a fresh producer's)."""
    longest_ms = max(settings.kafka_publish_wait_ms, settings.kafka_delivery_timeout_ms + 1000)
    return _wait_permits(settings.kafka_publish_long_waits, longest_ms)


@lru_cache(maxsize=4)
def _wait_permits(limit: int, lease_ms: int) -> circuit_breaker.WaitPermits:
    return circuit_breaker.WaitPermits("kafka", limit, lease_seconds=lease_ms / 1000)


@lru_cache(maxsize=4)
def _guarded_send(
    policy: BreakerPolicy, permits: circuit_breaker.WaitPermits
) -> Callable[[Sequence[EventRecord]], None]:
    def send(records: Sequence[EventRecord]) -> None:
        kafka.publish_events(records, patience=permits.permit)

    return circuit_breaker.guarded("kafka", policy, kafka_circuit_store())(send)

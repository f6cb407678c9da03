"""Circuit breaking with Powertools' circuit_breaker utility, its state shared by every instance through Redis, and
wait permits: how many callers, across every instance, may wait at once for a dependency that is slow to answer.

Policy when Redis itself fails: the breaker degrades to per-instance state. Reads fall back to the last state
this instance knew, writes land in the instance's own cache only (the half-open election is then won locally),
so each instance still opens, probes and closes on its own; shared state resumes when Redis answers again.
A closed circuit costs no Redis round-trip per request: the state is cached in-process for
`kafka_breaker_state_cache_seconds` (Powertools' local cache).
"""

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.circuit_breaker import (
    CircuitBreakerConfig,
    CircuitInfo,
    CircuitState,
    CircuitTransition,
    circuit_breaker,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    CircuitBreakerPersistenceLayer,
    CircuitStateRecord,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence.base import CircuitBreakerExistingLockError

from logpipe.adapters import cache
from logpipe.errors import DependencyUnavailableError
from logpipe.observability import CIRCUIT_COUNTERS, logger, metrics, publish_at_zero

# The value of the circuit_state metric per state, so one series shows the circuit over time.
STATE_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

# Elect the half-open prober: the circuit must be OPEN since the opening the caller saw and unclaimed,
# or HALF_OPEN with an expired probe lease. KEYS[1] = record; ARGV = expected opened_at, now, then field pairs.
_ELECT_PROBER = """
local state = redis.call('HGET', KEYS[1], 'state')
local owner = redis.call('HEXISTS', KEYS[1], 'half_open_owner')
local opened_at = redis.call('HGET', KEYS[1], 'opened_at')
local lease = tonumber(redis.call('HGET', KEYS[1], 'probe_lease_expiry') or '0')
local won = (state == 'OPEN' and owner == 0 and (ARGV[1] == '' or opened_at == ARGV[1]))
    or (state == 'HALF_OPEN' and lease <= tonumber(ARGV[2]))
if not won then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
"""


# Take a wait permit: drop the expired leases, then add this holder's if fewer than the limit are left.
# KEYS[1] = the leases (sorted set, score = expiry in ms); ARGV = now (ms), limit, this lease's expiry (ms), holder.
_TAKE_PERMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"""


class WaitPermits:
    """At most `limit` callers, across every instance, hold a permit to wait for a slow dependency at once; a caller
    refused one gives up at once instead. A function instance serves one request at a time: when every instance
    waits on a dependency that stopped answering, the invocations beyond them are throttled (API Gateway answers
    500), so only a few may wait to learn whether it answers, and the others answer 503 with Retry-After.

    The leases are one Redis sorted set (`logpipe:wait-permits:<name>`); a lease expires by itself after
    `lease_seconds`, so an instance that died holding one does not keep it. Redis down: the permit is granted
    (each instance waits on its own, as the breaker degrades to per-instance state)."""

    def __init__(
        self,
        name: str,
        limit: int,
        lease_seconds: float,
        client: Callable[[], redis.Redis] = cache.client,
        prefix: str = "logpipe:wait-permits:",
    ) -> None:
        self.key = prefix + name
        self.limit = limit
        self.lease_ms = int(lease_seconds * 1000)
        self._client = client

    @contextmanager
    def permit(self) -> Iterator[bool]:
        """Whether this caller may wait; the permit is returned when the block ends."""
        holder = uuid.uuid4().hex
        granted = self._take(holder)
        try:
            yield granted is not False
        finally:
            if granted:
                self._give_back(holder)

    def _take(self, holder: str) -> bool | None:
        """True: taken; False: every permit is held; None: Redis did not answer (granted without a lease)."""
        now_ms = int(time.time() * 1000)
        try:
            taken = self._client().eval(_TAKE_PERMIT, 1, self.key, now_ms, self.limit, now_ms + self.lease_ms, holder)
        except redis.RedisError as exc:
            logger.warning("wait permit without Redis: this instance waits", extra={"error": str(exc)})
            return None
        return bool(taken)

    def _give_back(self, holder: str) -> None:
        with suppress(redis.RedisError):  # else the lease expires by itself
            self._client().zrem(self.key, holder)


class RedisCircuitStore(CircuitBreakerPersistenceLayer):
    """One Redis hash per circuit (`logpipe:circuit:<name>`); every write replaces the whole record atomically."""

    def __init__(self, client: Callable[[], redis.Redis] = cache.client, prefix: str = "logpipe:circuit:") -> None:
        super().__init__()
        self._client = client
        self.prefix = prefix
        self._last_known: dict[str, CircuitStateRecord] = {}

    def _get_record(self, name: str) -> CircuitStateRecord | None:
        try:
            fields = self._client().hgetall(self.prefix + name)
        except redis.RedisError as exc:
            logger.warning(
                "circuit state unreadable; using this instance's own", extra={"circuit": name, "error": str(exc)}
            )
            return self._last_known.get(name)
        return _record(name, fields) if fields else None

    def _put_record(
        self, record: CircuitStateRecord, condition: str | None = None, expected_opened_at: int | None = None
    ) -> None:
        if condition != "half_open":
            self._replace(record)
            return
        fields = [item for pair in _fields(record).items() for item in pair]
        expected = "" if expected_opened_at is None else str(expected_opened_at)
        try:
            won = self._client().eval(
                _ELECT_PROBER,
                1,
                self.prefix + record.name,
                expected,
                int(time.time()),
                record.expiry_timestamp,
                *fields,
            )
        except redis.RedisError as exc:
            logger.warning("probe election without Redis: this instance probes", extra={"error": str(exc)})
            return
        if not won:
            raise CircuitBreakerExistingLockError

    def _update_record(self, record: CircuitStateRecord) -> None:
        self._replace(record)

    def _save_to_cache(self, record: CircuitStateRecord) -> None:
        self._last_known[record.name] = record
        super()._save_to_cache(record)

    def _replace(self, record: CircuitStateRecord) -> None:
        key = self.prefix + record.name
        try:
            with self._client().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=_fields(record))
                if record.expiry_timestamp is not None:
                    pipe.expireat(key, record.expiry_timestamp)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning(
                "circuit state not shared (Redis down); kept in this instance",
                extra={"circuit": record.name, "state": str(record.state), "error": str(exc)},
            )


def _fields(record: CircuitStateRecord) -> dict[str, str]:
    values = {
        "state": str(record.state),
        "failure_count": record.failure_count,
        "opened_at": record.opened_at,
        "half_open_owner": record.half_open_owner,
        "probe_lease_expiry": record.probe_lease_expiry,
    }
    return {name: str(value) for name, value in values.items() if value is not None}


def _record(name: str, fields: dict[bytes, bytes]) -> CircuitStateRecord:
    values = {key.decode(): value.decode() for key, value in fields.items()}

    def number(field: str) -> int | None:
        return int(values[field]) if field in values else None

    return CircuitStateRecord(
        name=name,
        state=CircuitState(values["state"]),
        failure_count=number("failure_count") or 0,
        opened_at=number("opened_at"),
        half_open_owner=values.get("half_open_owner"),
        probe_lease_expiry=number("probe_lease_expiry"),
    )


def report_transition(transition: CircuitTransition) -> None:
    """A log line and EMF metrics (circuit_state, circuit_transitions_total) for every state change."""
    logger.warning(
        "circuit state changed",
        extra={
            "circuit": transition.circuit_name,
            "from_state": str(transition.from_state),
            "to_state": str(transition.to_state),
        },
    )
    _publish_state(transition.circuit_name, transition.to_state)
    with single_metric(
        name="circuit_transitions_total", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
    ) as metric:
        metric.add_dimension(name="circuit", value=transition.circuit_name)
        metric.add_dimension(name="to_state", value=str(transition.to_state))


def _publish_state(name: str, state: CircuitState) -> None:
    with single_metric(
        name="circuit_state", unit=MetricUnit.Count, value=STATE_VALUES[state], namespace=metrics.namespace
    ) as metric:
        metric.add_dimension(name="circuit", value=name)
        metric.add_dimension(name="to_state", value=str(state))


@dataclass(frozen=True)
class BreakerPolicy:
    """When a circuit opens, how long it stays open, when it closes again, and how long an instance trusts its copy
    of the shared state."""

    failure_threshold: int
    recovery_seconds: int
    success_threshold: int
    state_cache_seconds: int


def guarded(
    dependency: str, policy: BreakerPolicy, store: CircuitBreakerPersistenceLayer, circuit_name: str | None = None
) -> Callable:
    """Decorate a call to `dependency`: DependencyUnavailableError failures count, an open circuit answers
    DependencyUnavailableError at once with Retry-After = the time left until the next probe plus a random share of
    the recovery time: the clients refused during an outage then come back spread over a recovery period instead
    of all in the second the circuit closes (where they outnumbered the instances, and the excess was throttled).

    The circuit is named after the dependency unless `circuit_name` says otherwise."""
    recovery = policy.recovery_seconds

    def refuse(*_args: Any, circuit: CircuitInfo, **_kwargs: Any) -> None:
        opened_at = circuit.opened_at or int(time.time())
        wait = max(1, opened_at + recovery - int(time.time())) + random.randrange(recovery)
        raise DependencyUnavailableError(dependency, f"circuit {circuit.name} is {circuit.state}", wait)

    return circuit_breaker(
        name=circuit_name or dependency,
        persistence_store=store,
        on_circuit_open=refuse,
        on_transition=report_transition,
        config=_config(policy),
    )


def _config(policy: BreakerPolicy) -> CircuitBreakerConfig:
    return CircuitBreakerConfig(
        failure_threshold=policy.failure_threshold,
        recovery_timeout=policy.recovery_seconds,
        success_threshold=policy.success_threshold,
        handled_exceptions=DependencyUnavailableError,
        local_cache_max_age=policy.state_cache_seconds,
    )


def report_state(name: str, policy: BreakerPolicy, store: CircuitBreakerPersistenceLayer) -> None:
    """At cold start: circuit_state at the circuit's shared state (read from the store, as the breaker's first call
    would) and circuit_transitions_total at 0 towards each state, so that both series exist before the first
    transition and a dashboard reads the circuit, not "No data". Without a metrics namespace
    (POWERTOOLS_METRICS_NAMESPACE) Powertools publishes no metric, and neither does this."""
    if not metrics.namespace:
        return
    store.configure(_config(policy), name)
    _publish_state(name, store.get_state(name).state)
    publish_at_zero(CIRCUIT_COUNTERS, [{"circuit": name, "to_state": str(state)} for state in CircuitState])

"""The one settings object, read from the environment and validated at cold start."""

from functools import lru_cache
from typing import Literal, Self

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """Raised at cold start when an environment variable is missing or malformed."""


# librdkafka's default message.max.bytes (the broker's default is 1,048,588): no accepted event may exceed it.
KAFKA_MAX_RECORD_BYTES = 1_000_000
# Bound on everything in a serialized event besides message and attributes (ids, names, timestamps, keys).
EVENT_FIXED_FIELDS_BYTES = 4096


class RateLimitPolicy(BaseModel):
    """A token bucket: `rate` tokens (requests, or bytes for ingest) per second refill up to `burst`."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, frozen=True)

    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_topic: str = "log-events"
    kafka_dlq_topic: str = "log-events-dlq"
    # How long the producer keeps trying to deliver a record (librdkafka's message.timeout.ms).
    kafka_delivery_timeout_ms: int = Field(default=5000, ge=100)
    # How long a request waits for the broker's acknowledgement before answering 503 (its records may still be
    # delivered until the delivery timeout): well below the function's timeout, so that a broker that stopped
    # answering holds each instance this long, not until every instance is busy and invocations are throttled.
    kafka_publish_wait_ms: int = Field(default=1000, ge=10)
    # Every request waits this long for its acknowledgement; beyond it, only KAFKA_PUBLISH_LONG_WAITS requests across
    # every instance at once wait on (up to KAFKA_PUBLISH_WAIT_MS), the others answer 503 at once: a broker that
    # stopped answering (paused, returning, electing) holds a few instances, not all of them (docs/ingest.md).
    kafka_publish_quick_wait_ms: int = Field(default=200, ge=10)
    kafka_publish_long_waits: int = Field(default=2, ge=1)

    database_url: str = Field(min_length=1)
    database_pool_max_size: int = Field(default=4, ge=1)
    # A bound on every statement of this function's connections (PostgreSQL's statement_timeout), for the functions
    # that answer clients (template.yaml sets it for the gateway); read queries set tighter ones (docs/gateway.md).
    database_statement_timeout_seconds: float | None = Field(default=None, gt=0)
    # Storage is bounded: day partitions older than this are dropped by maintenance (docs/sink.md).
    retention_days: int = Field(default=30, ge=1)
    # How many days of partitions maintenance creates ahead of today.
    partitions_ahead_days: int = Field(default=3, ge=1)

    redis_url: str = Field(min_length=1)
    # How long a retried request (same Idempotency-Key or client id) is answered from its first result.
    idempotency_ttl_seconds: int = Field(default=3600, ge=1)

    # How long a health probe waits for each dependency.
    dependency_timeout_seconds: float = Field(default=2.0, gt=0)
    # Retry-After sent with 503 answers when a dependency is down.
    retry_after_seconds: int = Field(default=5, ge=1)

    # Ingest limits; exceeding one is a 4xx (docs/ingest.md, "Limits").
    # Body as sent (after base64, before Content-Encoding) and once decoded, for POST /api/logs.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_decoded_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_message_bytes: int = Field(default=32_768, ge=1)
    max_attributes: int = Field(default=64, ge=0)
    # Nesting below the attributes object (1 = flat key/values); PostgreSQL jsonb and every JSON parser cope.
    max_attribute_depth: int = Field(default=8, ge=1, le=64)
    max_attribute_key_bytes: int = Field(default=256, ge=1)
    max_attribute_value_bytes: int = Field(default=16_384, ge=1)
    # The attributes object serialized as JSON (UTF-8).
    max_attributes_bytes: int = Field(default=65_536, ge=2)
    max_past_skew_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    max_future_skew_seconds: int = Field(default=300, ge=0)

    # Every batch route (native, OTLP, Loki, _bulk): events per request, body as sent (Lambda's 6 MB invocation
    # limit applies after base64) and once decompressed. Shippers batch up to 8,192 records (the Collector's default).
    max_batch_events: int = Field(default=10_000, ge=1)
    max_batch_body_bytes: int = Field(default=4_194_304, ge=1024, le=4_400_000)
    max_batch_decoded_bytes: int = Field(default=16_777_216, ge=1024)

    # Circuit breaker around Kafka (docs/ingest.md, "Circuit breaker").
    kafka_breaker_failure_threshold: int = Field(default=3, ge=1)
    kafka_breaker_recovery_seconds: int = Field(default=3, ge=1)
    kafka_breaker_success_threshold: int = Field(default=2, ge=1)
    # How long an instance trusts its copy of the shared breaker state before reading Redis again.
    kafka_breaker_state_cache_seconds: int = Field(default=1, ge=0)

    # Gateway: API keys, rate limits, read API, health (docs/gateway.md).
    # A key lookup is reused in process this long: the bound on how long a revoked key keeps working.
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
    # ... and in Redis this long (revocation deletes the Redis entry at once).
    api_key_redis_cache_seconds: int = Field(default=300, ge=1)
    # Token bucket per organization for the read and admin routes: refill rate (requests/s) and capacity;
    # per-organization overrides as JSON,
    # e.g. RATE_LIMIT_OVERRIDES='{"acme": {"rate": 50, "burst": 100}}'.
    rate_limit_rate: float = Field(default=1000.0, gt=0)
    rate_limit_burst: int = Field(default=2000, ge=1)
    rate_limit_overrides: dict[str, RateLimitPolicy] = Field(default_factory=dict)
    # Ingest, per organization, in bytes of decoded request bodies per second (as Loki's ingestion_rate_mb): refill
    # rate and capacity; overrides as JSON, e.g. INGEST_RATE_OVERRIDES='{"acme": {"rate": 1048576, "burst": 4194304}}'.
    # The default lets one organization use what one machine carries (docs/ingest.md, "Rate limits").
    ingest_rate_bytes: float = Field(default=64 * 1024 * 1024, gt=0)
    ingest_burst_bytes: int = Field(default=128 * 1024 * 1024, ge=1)
    ingest_rate_overrides: dict[str, RateLimitPolicy] = Field(default_factory=dict)
    # Spare tokens a process may claim at once and spend without Redis for up to 1 s (at most burst // 100).
    rate_limit_lease_tokens: int = Field(default=20, ge=0)
    # Failed authentications allowed per client address: refill per minute and capacity.
    auth_failures_per_minute: float = Field(default=30.0, gt=0)
    auth_failures_burst: int = Field(default=30, ge=1)
    # Redis down: rate limits fail open this long (from the first failure), then answer 503.
    rate_limit_fail_open_seconds: float = Field(default=30.0, ge=0)
    # Read API: PostgreSQL time one request may take (a statement_timeout, below the gateway's Lambda timeout,
    # docs/gateway.md "Time bounds"): searches, events and their context; counts (stats and histograms).
    read_query_timeout_seconds: float = Field(default=5.0, gt=0)
    read_count_timeout_seconds: float = Field(default=10.0, gt=0)
    # Read API: stats answers are cached this long (their staleness bound); an accepted id the sink has not settled
    # is "queued" this long (its record leaves Redis when the sink settles it, or after 1.5 x this at most).
    stats_cache_seconds: int = Field(default=10, ge=1)
    accepted_ttl_seconds: int = Field(default=3600, ge=1)
    # Health probes are reused this long per instance.
    health_cache_seconds: float = Field(default=1.0, ge=0)

    # Deployment on AWS (logpipe.adapters.aws; template.yaml sets them). Unset locally: plain URLs, plaintext Kafka.
    # Secrets Manager secret {"username","password"} (RDS-managed) whose credentials replace DATABASE_URL's.
    database_secret_arn: str | None = None
    # Secret {"username","password"} of the cache's user (ElastiCache RBAC), sent as AUTH on each new connection.
    redis_secret_arn: str | None = None
    # How long a fetched secret is reused before Powertools Parameters fetches it again.
    secrets_max_age_seconds: int = Field(default=300, ge=0)
    # "iam": SASL_SSL + OAUTHBEARER with MSK IAM tokens signed by the function's role; "none": plaintext.
    kafka_auth: Literal["none", "iam"] = "none"

    @model_validator(mode="after")
    def _accepted_events_fit_in_kafka(self) -> Self:
        largest = self.max_message_bytes + self.max_attributes_bytes + EVENT_FIXED_FIELDS_BYTES
        if largest > KAFKA_MAX_RECORD_BYTES:
            raise ValueError(
                f"max_message_bytes + max_attributes_bytes + {EVENT_FIXED_FIELDS_BYTES} is {largest}, over the "
                f"{KAFKA_MAX_RECORD_BYTES} bytes a Kafka record may hold"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load the settings once per process; fail fast naming every bad variable."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(error['loc'][0]).upper() if error['loc'] else 'LIMITS'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid logpipe configuration: {problems}") from exc

"""The one settings object, read from the environment and validated at cold start."""

from functools import lru_cache

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """Raised at cold start when an environment variable is missing or malformed."""


class RateLimitPolicy(BaseModel):
    """A token bucket: `rate` events per second refill up to `burst` (gateway setting)."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, frozen=True)

    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_topic: str = "log-events"
    kafka_dlq_topic: str = "log-events-dlq"
    # Upper bound on how long a request waits for the broker's acknowledgement before answering 503.
    kafka_delivery_timeout_ms: int = Field(default=5000, ge=100)

    database_url: str = Field(min_length=1)
    database_pool_max_size: int = Field(default=4, ge=1)

    redis_url: str = Field(min_length=1)
    # How long a retried request (same Idempotency-Key or client id) is answered from its first result.
    idempotency_ttl_seconds: int = Field(default=3600, ge=1)

    # How long a health probe waits for each dependency.
    dependency_timeout_seconds: float = Field(default=2.0, gt=0)
    # Retry-After sent with 503 answers when a dependency is down.
    retry_after_seconds: int = Field(default=5, ge=1)

    # Ingest limits; exceeding one is a 4xx (README, "Limits").
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_message_bytes: int = Field(default=32_768, ge=1)
    max_attributes: int = Field(default=64, ge=0)
    max_past_skew_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    max_future_skew_seconds: int = Field(default=300, ge=0)

    # Gateway: API keys, rate limits, read API, health (docs/gateway.md).
    # A key lookup is reused in process this long: the bound on how long a revoked key keeps working.
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
    # ... and in Redis this long (revocation deletes the Redis entry at once).
    api_key_redis_cache_seconds: int = Field(default=300, ge=1)
    # Token bucket per organization: refill rate (events/s) and capacity; per-organization overrides as JSON,
    # e.g. RATE_LIMIT_OVERRIDES='{"acme": {"rate": 50, "burst": 100}}'.
    rate_limit_rate: float = Field(default=1000.0, gt=0)
    rate_limit_burst: int = Field(default=2000, ge=1)
    rate_limit_overrides: dict[str, RateLimitPolicy] = Field(default_factory=dict)
    # Spare tokens a process may claim at once and spend without Redis for up to 1 s (at most burst // 100).
    rate_limit_lease_tokens: int = Field(default=20, ge=0)
    # Failed authentications allowed per client address: refill per minute and capacity.
    auth_failures_per_minute: float = Field(default=30.0, gt=0)
    auth_failures_burst: int = Field(default=30, ge=1)
    # Redis down: rate limits fail open this long (from the first failure), then answer 503.
    rate_limit_fail_open_seconds: float = Field(default=30.0, ge=0)
    # Read API: stats answers are cached this long (their staleness bound); accepted ids are "queued" this long.
    stats_cache_seconds: int = Field(default=10, ge=1)
    accepted_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # Health probes are reused this long per instance.
    health_cache_seconds: float = Field(default=1.0, ge=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load the settings once per process; fail fast naming every bad variable."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(error['loc'][0]).upper()}: {error['msg']}" for error in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid logpipe configuration: {problems}") from exc

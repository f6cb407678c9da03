"""The one settings object, read from the environment and validated at cold start."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """Raised at cold start when an environment variable is missing or malformed."""


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

    # Deployment on AWS (logpipe.aws; template.yaml sets them). Unset locally: plain URLs, plaintext Kafka.
    # Secrets Manager secret {"username","password"} (RDS-managed) whose credentials replace DATABASE_URL's.
    database_secret_arn: str | None = None
    # How long a fetched secret is reused before Powertools Parameters fetches it again.
    secrets_max_age_seconds: int = Field(default=300, ge=0)
    # "iam": SASL_SSL + OAUTHBEARER with MSK IAM tokens signed by the function's role; "none": plaintext.
    kafka_auth: Literal["none", "iam"] = "none"


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

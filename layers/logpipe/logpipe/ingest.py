"""Ingest logic: turn a validated request into a normalized event and publish it to Kafka, once."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from logpipe import cache, kafka
from logpipe.config import Settings, get_settings
from logpipe.errors import (
    DependencyUnavailableError,
    IdempotencyConflictError,
    InvalidEventError,
    PayloadTooLargeError,
    RequestInProgressError,
)
from logpipe.models import IngestAccepted, LogEvent, LogEventIn
from logpipe.observability import MetricUnit, metrics, tracer

# The key is scoped to the organization; the fingerprint makes a reused key with another body an error.
idempotency_config = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="fingerprint",
    expires_after_seconds=get_settings().idempotency_ttl_seconds,
)


def normalize_event(event_in: LogEventIn, settings: Settings, received_at: datetime) -> LogEvent:
    """Apply the configured limits and fill in id and timestamp; raises a 4xx domain error on violation."""
    _check_limits(event_in, settings, received_at)
    return LogEvent(
        id=event_in.id or uuid4(),
        organization_id=event_in.organization_id,
        level=event_in.level,
        message=event_in.message,
        source=event_in.source,
        timestamp=(event_in.timestamp or received_at).astimezone(UTC),
        received_at=received_at,
        attributes=event_in.attributes,
        trace_id=event_in.trace_id,
        span_id=event_in.span_id,
    )


@tracer.capture_method
def ingest_event(event_in: LogEventIn, settings: Settings, idempotency_key: str | None = None) -> IngestAccepted:
    """Publish one event and answer once Kafka acknowledged it.

    With an Idempotency-Key, or else a client-chosen event id, a retry within the idempotency TTL gets the
    first answer back and publishes nothing.
    """
    key = idempotency_key or (str(event_in.id) if event_in.id else None)
    if key is None:
        return _publish(event_in=event_in, settings=settings)
    request = {
        "key": f"{event_in.organization_id}:{key}",
        "fingerprint": event_in.model_dump(mode="json", by_alias=True),
    }
    try:
        return _publish_once(request=request, event_in=event_in, settings=settings)
    except IdempotencyValidationError as exc:
        raise IdempotencyConflictError("this idempotency key was already used for a different event") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise RequestInProgressError("a request with this idempotency key is still being processed") from exc
    except IdempotencyPersistenceLayerError as exc:
        raise DependencyUnavailableError("redis", f"Redis unavailable: {exc}", settings.retry_after_seconds) from exc


def _publish(event_in: LogEventIn, settings: Settings) -> IngestAccepted:
    event = normalize_event(event_in, settings, received_at=datetime.now(UTC))
    kafka.publish_events([event])
    metrics.add_metric(name="log_events_received_total", unit=MetricUnit.Count, value=1)
    return IngestAccepted(id=event.id)


@idempotent_function(
    data_keyword_argument="request",
    persistence_store=cache.idempotency_store(),
    config=idempotency_config,
    output_serializer=PydanticSerializer,
)
def _publish_once(request: dict[str, Any], event_in: LogEventIn, settings: Settings) -> IngestAccepted:
    return _publish(event_in=event_in, settings=settings)


def _check_limits(event_in: LogEventIn, settings: Settings, now: datetime) -> None:
    message_bytes = len(event_in.message.encode())
    if message_bytes > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"message is {message_bytes} bytes; the limit is {settings.max_message_bytes}",
            details={"field": "message", "limit": settings.max_message_bytes},
        )
    if len(event_in.attributes) > settings.max_attributes:
        raise InvalidEventError(
            f"{len(event_in.attributes)} attributes; the limit is {settings.max_attributes}",
            details={"field": "attributes", "limit": settings.max_attributes},
        )
    # PostgreSQL text and jsonb cannot hold NUL; refuse it here rather than dead-letter it later.
    texts = (event_in.message, event_in.source, event_in.trace_id or "", event_in.span_id or "")
    if any("\x00" in text for text in texts) or "\\u0000" in json.dumps(event_in.attributes):
        raise InvalidEventError("NUL characters are not allowed in text fields")
    if event_in.timestamp is not None:
        _check_skew(event_in.timestamp, settings, now)


def _check_skew(timestamp: datetime, settings: Settings, now: datetime) -> None:
    earliest = now - timedelta(seconds=settings.max_past_skew_seconds)
    latest = now + timedelta(seconds=settings.max_future_skew_seconds)
    if not earliest <= timestamp <= latest:
        raise InvalidEventError(
            "timestamp is outside the accepted window",
            details={"field": "timestamp", "earliest": earliest.isoformat(), "latest": latest.isoformat()},
        )

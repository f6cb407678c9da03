"""Ingest logic: turn a validated request into a normalized event and publish it to Kafka."""

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from logpipe import kafka
from logpipe.config import Settings
from logpipe.errors import InvalidEventError, PayloadTooLargeError
from logpipe.models import LogEvent, LogEventIn
from logpipe.observability import MetricUnit, metrics, tracer


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
def ingest_event(event_in: LogEventIn, settings: Settings) -> LogEvent:
    """Validate, normalize and publish one event; returns once Kafka acknowledged it."""
    event = normalize_event(event_in, settings, received_at=datetime.now(UTC))
    kafka.publish_events([event])
    metrics.add_metric(name="log_events_received_total", unit=MetricUnit.Count, value=1)
    return event


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

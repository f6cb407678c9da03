"""Normalized events (the Kafka value and the stored row) for tests that write PostgreSQL directly."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from logpipe.models import EventRecord, Level, LogEvent
from logpipe.sink.storage import EventFields

NOW = datetime.now(UTC)


def make_event(organization_id: str, **overrides) -> LogEvent:
    fields = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "level": Level.INFO,
        "message": "disk almost full",
        "source": "node-7",
        "timestamp": NOW,
        "received_at": NOW,
        "attributes": {"disk": "/dev/sda1", "usage": 0.93},
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    return LogEvent(**{**fields, **overrides})


def record_of(event: LogEvent) -> EventRecord:
    """The Kafka record of an event, as the producer publishes it (its value is the event's JSON)."""
    return EventRecord(
        event.organization_id, str(event.id), event.received_at, event.model_dump_json(by_alias=True).encode()
    )


def as_fields(events: Iterable[LogEvent]) -> list[EventFields]:
    """Events as the sink stores them (logpipe.sink.storage.EventFields)."""
    return [event.model_dump() for event in events]

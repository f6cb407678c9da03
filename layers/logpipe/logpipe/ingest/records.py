"""The Kafka record of an accepted event: LogEvent's JSON, built from validated fields and checked on that JSON.

Every intake ends here, once per event. The record is serialized once, by pydantic-core, and the rules
(logpipe.ingest.rules) are decided on what was serialized: an event of what shippers send passes on a few native
checks of its bytes, any other is walked field by field. No model is built per event: the batch path's cost is the
Python work per event, and a model instance and its serializer cost more than the rest of that work together. What
the rules need of the settings and of the received time is read once per request (a RecordMaker).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic_core import PydanticSerializationError, to_json

from logpipe.config import Settings
from logpipe.errors import InvalidEventError
from logpipe.ingest.rules import PlainLimits, TimestampWindow, check_event
from logpipe.models import EventRecord


class RecordMaker:
    """Makes the records of the events received at one moment."""

    def __init__(self, settings: Settings, received_at: datetime) -> None:
        self._settings = settings
        self._received_at = received_at
        self._window = TimestampWindow.at(received_at, settings)
        self._limits = PlainLimits.of(settings)

    def __call__(
        self, fields: Mapping[str, Any], organization_id: str, event_id: UUID | str, plain: bool = False
    ) -> EventRecord:
        """The record of an event (`fields` in LogEventFields' shape, validated), owned by `organization_id`, under
        `event_id`, stamped with the received time when it has no timestamp; raises a 4xx domain error when it
        breaks a limit. `plain`: the fields passed rules.plain_items, so the rules are decided on the record's JSON.

        The value is exactly LogEvent(...).model_dump_json(by_alias=True) of the same event (a test keeps them
        equal): the consumer reads it as a LogEvent.
        """
        received_at = self._received_at
        timestamp = fields.get("timestamp")
        if timestamp is None:
            timestamp = received_at
        else:
            self._window.check(timestamp)
            if timestamp.tzinfo is not UTC and timestamp.utcoffset():
                timestamp = timestamp.astimezone(UTC)
        attributes = fields.get("attributes") or {}
        record = {
            "id": event_id,
            "organizationId": organization_id,
            "level": fields["level"].value,  # the Level's text: to_json takes an Enum the slow way
            "message": fields["message"],
            "source": fields["source"],
            "timestamp": timestamp,
            "receivedAt": received_at,
            "attributes": attributes,
            "traceId": fields.get("traceId"),
            "spanId": fields.get("spanId"),
        }
        try:
            value = to_json(record)
        except PydanticSerializationError:  # a lone surrogate, or a value from code that JSON has no form for
            value = b""
        if not (plain and self._limits.admits(value, len(attributes))):
            check_event(record, self._settings)  # raises the error naming the field
            if not value:
                raise InvalidEventError("the event has a value that JSON cannot hold", details={"field": "attributes"})
        return EventRecord(organization_id, str(event_id), received_at, value)


def event_record(
    fields: Mapping[str, Any], organization_id: str, event_id: UUID | str, received_at: datetime, settings: Settings
) -> EventRecord:
    """The record of one event received alone (RecordMaker's rules, its fields walked)."""
    return RecordMaker(settings, received_at)(fields, organization_id, event_id)

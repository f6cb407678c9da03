"""Helpers of the gateway's integration tests: stored events and answers."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from logpipe.models import Level, LogEvent
from logpipe.sink import storage
from tests.integration.stored_events import as_fields


def make_event(organization_id: str, minutes_ago: float, level: str = "INFO", **fields) -> LogEvent:
    occurred = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    values = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "level": Level(level),
        "message": f"message {minutes_ago}",
        "source": "api",
        "timestamp": occurred,
        "received_at": occurred,
    }
    return LogEvent(**{**values, **fields})


def store(*events: LogEvent) -> list[LogEvent]:
    storage.store_events(as_fields(list(events)))
    return list(events)


def answer(function, event: dict, context) -> tuple[int, dict, dict]:
    response = function.handler(event, context)
    body = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], response.get("headers") or {}, body

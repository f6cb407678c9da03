"""Read API logic: search with a keyset cursor, one event, and an event in its context.

The cursor is the (occurred_at, id) of the last row of a page, opaque to clients. Pages are ordered by that
pair, newest first, and the next page holds rows strictly older than it, so rows arriving meanwhile (newer
ones) never shift a page: nothing is repeated or skipped.
"""

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from logpipe.errors import EventNotFoundError, InvalidQueryError
from logpipe.models import LogEvent
from logpipe.read import queries
from logpipe.read.models import EventContext, LogPage
from logpipe.read.queries import EventFilter


def list_events(organization_id: str, event_filter: EventFilter, limit: int, cursor: str | None) -> LogPage:
    event_filter = event_filter.in_utc()
    event_filter.check_window()
    before = _decode_cursor(cursor) if cursor else None
    rows = queries.find_events(organization_id, event_filter, limit + 1, before)
    page, more = rows[:limit], len(rows) > limit
    return LogPage(items=page, next_cursor=_encode_cursor(page[-1]) if more else None)


def get_event(organization_id: str, event_id: UUID) -> LogEvent:
    event = queries.find_event(organization_id, event_id)
    if event is None:
        raise EventNotFoundError(f"no event {event_id}")
    return event


def event_context(organization_id: str, event_id: UUID, before: int, after: int) -> EventContext:
    """The event and the `before` / `after` events of its source just before and after it in (time, id) order."""
    event = get_event(organization_id, event_id)
    position = (event.timestamp, event.id)
    same_source = EventFilter(source=event.source)
    earlier = queries.find_events(organization_id, same_source, before, position) if before else []
    later = queries.find_events_after(organization_id, event.source, position, after) if after else []
    return EventContext(before=earlier[::-1], event=event, after=later)


def _encode_cursor(event: LogEvent) -> str:
    raw = json.dumps([event.timestamp.isoformat(), str(event.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        occurred_at, event_id = json.loads(raw)
        if not (isinstance(occurred_at, str) and isinstance(event_id, str)):
            raise ValueError("a cursor holds a time and an id, both as text")
        return datetime.fromisoformat(occurred_at), UUID(event_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQueryError("the cursor is not one this API returned") from exc

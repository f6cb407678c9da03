"""Read API logic: search with a keyset cursor, one event, and an event in its context.

The cursor is the (occurred_at, id) of the last row of a page, opaque to clients. Pages are ordered by that
pair, newest first, and the next page holds rows strictly older than it, so rows arriving meanwhile (newer
ones) never shift a page: nothing is repeated or skipped.

Answers fit in Lambda's 6 MB response: a page holds `limit` events or fewer when they would take more than
RESPONSE_BYTES_FOR_EVENTS (logpipe.read.queries counts each at the most it can take), and its cursor continues
after its last event; an event's context gives its before and after lists a third of that each.
"""

from datetime import datetime
from uuid import UUID

from logpipe.config import Settings
from logpipe.encoding import decode_cursor, encode_cursor
from logpipe.errors import EventNotFoundError
from logpipe.models import LogEvent
from logpipe.read import queries
from logpipe.read.models import EventContext, LogPage
from logpipe.read.queries import Bounds, EventFilter

# Lambda answers at most 6 MB (6,291,456 bytes); the rest is the answer's envelope, headers and cursor.
RESPONSE_BYTES_FOR_EVENTS = 5_000_000


def list_events(
    organization_id: str, event_filter: EventFilter, limit: int, cursor: str | None, settings: Settings
) -> LogPage:
    event_filter = event_filter.in_utc()
    event_filter.check_window()
    before = decode_cursor(cursor) if cursor else None
    bounds = Bounds(settings.read_query_timeout_seconds, RESPONSE_BYTES_FOR_EVENTS)
    rows = queries.find_events(organization_id, event_filter, limit, before, bounds)
    return LogPage(items=rows.events, next_cursor=encode_cursor(_position(rows.events[-1])) if rows.more else None)


def get_event(organization_id: str, event_id: UUID, settings: Settings) -> LogEvent:
    event = queries.find_event(organization_id, event_id, settings.read_query_timeout_seconds)
    if event is None:
        raise EventNotFoundError(f"no event {event_id}")
    return event


def event_context(organization_id: str, event_id: UUID, before: int, after: int, settings: Settings) -> EventContext:
    """The event and the `before` / `after` events of its source just before and after it in (time, id) order
    (fewer, the nearest, when they would not fit in the answer)."""
    event = get_event(organization_id, event_id, settings)
    position = _position(event)
    bounds = Bounds(settings.read_query_timeout_seconds, RESPONSE_BYTES_FOR_EVENTS // 3)
    same_source = EventFilter(source=event.source)
    earlier = queries.find_events(organization_id, same_source, before, position, bounds).events if before else []
    later = queries.find_events_after(organization_id, event.source, position, after, bounds).events if after else []
    return EventContext(before=earlier[::-1], event=event, after=later)


def _position(event: LogEvent) -> tuple[datetime, UUID]:
    return event.timestamp, event.id

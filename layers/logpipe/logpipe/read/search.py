"""Read API logic: search with a keyset cursor, one event, and where an accepted event id is.

The cursor is the (occurred_at, id) of the last row of a page, opaque to clients. Pages are ordered by that
pair, newest first, and the next page holds rows strictly older than it, so rows arriving meanwhile (newer
ones) never shift a page: nothing is repeated or skipped.

Status: `stored` when log_event_ids holds the id for the organization, `dead_lettered` when the consumer
recorded it in dead_letters (record_dead_letters), `queued` while the accept record the ingest route writes
(record_accepted) lives in Redis, otherwise not found.
"""

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

import redis

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import DependencyUnavailableError, EventNotFoundError, InvalidQueryError
from logpipe.models import LogEvent
from logpipe.observability import logger
from logpipe.read import queries
from logpipe.read.models import EventStatus, LogPage
from logpipe.read.queries import EventFilter


def list_events(organization_id: str, event_filter: EventFilter, limit: int, cursor: str | None) -> LogPage:
    if event_filter.since and event_filter.until and event_filter.since >= event_filter.until:
        raise InvalidQueryError("`from` must be earlier than `to`")
    before = _decode_cursor(cursor) if cursor else None
    rows = queries.find_events(organization_id, event_filter, limit + 1, before)
    page, more = rows[:limit], len(rows) > limit
    return LogPage(items=page, next_cursor=_encode_cursor(page[-1]) if more else None)


def get_event(organization_id: str, event_id: UUID) -> LogEvent:
    event = queries.find_event(organization_id, event_id)
    if event is None:
        raise EventNotFoundError(f"no event {event_id}")
    return event


def event_status(organization_id: str, event_id: UUID, settings: Settings) -> EventStatus:
    stored, dead_letter_reason = queries.find_outcome(organization_id, event_id)
    if stored:
        return EventStatus(id=event_id, status="stored")
    if dead_letter_reason is not None:
        return EventStatus(id=event_id, status="dead_lettered", reason=dead_letter_reason)
    try:
        accepted = cache.client().exists(_accepted_key(organization_id, event_id))
    except redis.RedisError as exc:
        raise DependencyUnavailableError("redis", "Redis is unavailable", settings.retry_after_seconds) from exc
    if accepted:
        return EventStatus(id=event_id, status="queued")
    raise EventNotFoundError(f"no accepted event {event_id}")


# One command for a whole batch's accept records (500 SETs cost the client ten times as much to pack and send).
# KEYS: the records; ARGV[1]: their time to live in seconds.
_SET_EACH = "for _, key in ipairs(KEYS) do redis.call('SET', key, 1, 'EX', ARGV[1]) end"


def record_accepted(events: Sequence[LogEvent], settings: Settings) -> None:
    """For the ingest logic, once Kafka acknowledged: remember accepted ids (for `accepted_ttl_seconds`) so their
    status reads `queued` until the consumer stores them.

    Sent without waiting for Redis (cache.ReplylessWriter): the write costs the request one send, not a round
    trip, and is in Redis before the client can have its 202. Best effort: the events are already in Kafka, so a
    Redis failure only costs the `queued` answer (the status is not found until the row is stored); it must not
    turn an accepted request into an error.
    """
    keys = [_accepted_key(event.organization_id, event.id) for event in events]
    try:
        cache.replyless_writer().send([("EVAL", _SET_EACH, len(keys), *keys, settings.accepted_ttl_seconds)])
    except redis.RedisError as exc:
        logger.warning(
            "accepted ids not recorded (Redis unavailable)", extra={"events": len(events), "error": str(exc)}
        )


def record_dead_letters(letters: Iterable[tuple[str, UUID, str]]) -> None:
    """For the consumer: record (organization id, event id, reason) of events sent to the dead-letter topic."""
    queries.insert_dead_letters(letters)


def _accepted_key(organization_id: str, event_id: UUID) -> str:
    return f"accepted:{organization_id}:{event_id}"


def _encode_cursor(event: LogEvent) -> str:
    raw = json.dumps([event.timestamp.isoformat(), str(event.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        occurred_at, event_id = json.loads(raw)
        return datetime.fromisoformat(occurred_at), UUID(event_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQueryError("the cursor is not one this API returned") from exc

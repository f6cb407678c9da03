"""Accept records in Redis: the ids Kafka acknowledged, kept `accepted_ttl_seconds` so their status reads `queued`
until the consumer stores them."""

from collections.abc import Sequence
from uuid import UUID

import redis

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import LogEvent
from logpipe.observability import logger

# One command for a whole batch's accept records (500 SETs cost the client ten times as much to pack and send).
# KEYS: the records; ARGV[1]: their time to live in seconds.
_SET_EACH = "for _, key in ipairs(KEYS) do redis.call('SET', key, 1, 'EX', ARGV[1]) end"


def record_accepted(events: Sequence[LogEvent], settings: Settings) -> None:
    """Remember the accepted ids, once Kafka acknowledged them.

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


def was_accepted(organization_id: str, event_id: UUID, settings: Settings) -> bool:
    """Whether the id's accept record is still kept; raises DependencyUnavailableError when Redis is down."""
    try:
        return bool(cache.client().exists(_accepted_key(organization_id, event_id)))
    except redis.RedisError as exc:
        raise DependencyUnavailableError("redis", "Redis is unavailable", settings.retry_after_seconds) from exc


def _accepted_key(organization_id: str, event_id: UUID) -> str:
    return f"accepted:{organization_id}:{event_id}"

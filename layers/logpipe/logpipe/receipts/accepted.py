"""Accept records in Redis: the ids Kafka acknowledged, kept at least `accepted_ttl_seconds` so their status reads
`queued` until the consumer stores them.

A request's ids go into one set per organization and time bucket (`accepted:{<organization>}:<bucket>`, an hour
by default) with one SADD, and the set expires a bucket after its last possible member's time to live: one Redis
key per organization and hour instead of one per event, so Redis spends a fraction of the CPU and memory per id, and
every command names one key (the braces make the organization a Redis Cluster hash tag). A lookup asks the buckets
the time to live spans, in one round trip.
"""

import time
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import redis

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import EventRecord
from logpipe.observability import logger

BUCKET_SECONDS = 3600


def record_accepted(events: Sequence[EventRecord], settings: Settings) -> None:
    """Remember the accepted ids, once Kafka acknowledged them.

    Sent without waiting for Redis (cache.ReplylessWriter): the write costs the request one send, not a round
    trip, and is in Redis before the client can have its 202. Best effort: the events are already in Kafka, so a
    Redis failure only costs the `queued` answer (the status is not found until the row is stored); it must not
    turn an accepted request into an error.
    """
    width = _bucket_seconds(settings)
    bucket = int(time.time()) // width
    ids: dict[str, list[str]] = defaultdict(list)
    for event in events:
        ids[event.organization_id].append(event.id)
    commands: list[tuple] = []
    for organization_id, members in ids.items():
        key = _bucket_key(organization_id, bucket)
        commands += [("SADD", key, *members), ("EXPIREAT", key, (bucket + 2) * width + settings.accepted_ttl_seconds)]
    try:
        cache.replyless_writer().send(commands)
    except redis.RedisError as exc:
        logger.warning(
            "accepted ids not recorded (Redis unavailable)", extra={"events": len(events), "error": str(exc)}
        )


def was_accepted(organization_id: str, event_id: UUID, settings: Settings) -> bool:
    """Whether the id's accept record is still kept; raises DependencyUnavailableError when Redis is down."""
    width = _bucket_seconds(settings)
    newest = int(time.time()) // width
    oldest = newest - settings.accepted_ttl_seconds // width - 1
    try:
        with cache.client().pipeline(transaction=False) as pipe:
            for bucket in range(oldest, newest + 1):
                pipe.sismember(_bucket_key(organization_id, bucket), str(event_id))
            return any(pipe.execute())
    except redis.RedisError as exc:
        raise DependencyUnavailableError("redis", "Redis is unavailable", settings.retry_after_seconds) from exc


def _bucket_seconds(settings: Settings) -> int:
    """An hour, or the time to live when it is shorter (a set never outlives its members by more than a bucket)."""
    return max(1, min(BUCKET_SECONDS, settings.accepted_ttl_seconds))


def _bucket_key(organization_id: str, bucket: int) -> str:
    return f"accepted:{{{organization_id}}}:{bucket}"

"""Accept records in Redis: the ids Kafka acknowledged and the sink has not yet settled, so their status reads
`queued` until PostgreSQL can answer it.

A request's ids go into one set per organization and time bucket of their receipt (`accepted:{<organization>}:
<bucket>`, a quarter of the time to live and at most an hour: 15 minutes by default) with one SADD. Once the sink
has stored or dead-lettered a batch (PostgreSQL then answers the status), it removes the batch's ids with one SREM
per organization and bucket (`forget_settled`): Redis holds the ids in transit, not the history. A set expires two
buckets after its members' time to live, so an id whose removal was lost (Redis unreachable at that moment, or the
SREM arriving before the SADD it races), or whose event the sink has not reached, is gone after at most
1.5 x `accepted_ttl_seconds` all the same. Every command names one key (the braces make the organization a Redis
Cluster hash tag); a lookup asks the buckets the time to live spans, in one round trip.
"""

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import redis

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import DependencyUnavailableError
from logpipe.observability import logger

BUCKET_SECONDS = 3600


class Accepted(Protocol):
    """An accepted event as receipts need it: the ingest side's EventRecord, the sink's LogEvent."""

    @property
    def organization_id(self) -> str: ...
    @property
    def id(self) -> UUID | str: ...
    @property
    def received_at(self) -> datetime: ...


def record_accepted(events: Sequence[Accepted], settings: Settings) -> None:
    """Remember the accepted ids, once Kafka acknowledged them.

    Sent without waiting for Redis (cache.ReplylessWriter): the write costs the request one send, not a round
    trip, and is in Redis before the client can have its 202. Best effort: the events are already in Kafka, so a
    Redis failure only costs the `queued` answer (the status is not found until the row is stored); it must not
    turn an accepted request into an error.
    """
    width = _bucket_seconds(settings)
    commands: list[tuple] = []
    for (organization_id, bucket), members in _by_bucket(events, width).items():
        key = _bucket_key(organization_id, bucket)
        commands += [("SADD", key, *members), ("EXPIREAT", key, (bucket + 2) * width + settings.accepted_ttl_seconds)]
    _send(commands, "accepted ids not recorded", len(events))


def forget_settled(events: Sequence[Accepted], settings: Settings) -> None:
    """Drop the accept records of events whose outcome PostgreSQL now holds (stored, or dead-lettered).

    Sent without waiting, as record_accepted: a removal that is lost leaves the id until its bucket expires."""
    width = _bucket_seconds(settings)
    commands = [
        ("SREM", _bucket_key(organization_id, bucket), *members)
        for (organization_id, bucket), members in _by_bucket(events, width).items()
    ]
    _send(commands, "settled ids not removed", len(events))


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


def _by_bucket(events: Iterable[Accepted], width: int) -> dict[tuple[str, int], list[str]]:
    """The events' ids by (organization, bucket of the time they were received); a request's events share their
    receipt time, so its bucket is computed once per run of equal times (equal, not only the same object: the sink
    decodes one time per event)."""
    ids: dict[tuple[str, int], list[str]] = defaultdict(list)
    received_at, bucket = None, 0
    for event in events:
        if event.received_at != received_at:
            received_at = event.received_at
            bucket = _bucket_of(received_at, width)
        ids[(event.organization_id, bucket)].append(str(event.id))
    return ids


def _bucket_of(moment: datetime, width: int) -> int:
    return int(moment.timestamp()) // width


def _send(commands: list[tuple], failure: str, count: int) -> None:
    if not commands:
        return
    try:
        cache.replyless_writer().send(commands)
    except redis.RedisError as exc:
        logger.warning(f"{failure} (Redis unavailable)", extra={"count": count, "error": str(exc)})


def _bucket_seconds(settings: Settings) -> int:
    """A quarter of the time to live, at most an hour: a set outlives its members' time to live by at most two
    buckets (half the time to live), and a lookup asks six buckets at most."""
    return max(1, min(BUCKET_SECONDS, settings.accepted_ttl_seconds // 4))


def _bucket_key(organization_id: str, bucket: int) -> str:
    return f"accepted:{{{organization_id}}}:{bucket}"

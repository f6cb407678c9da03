"""Counts per level and per source over a window, cache-aside in Redis.

Answers live in one Redis hash per organization (field: the window asked for) and carry the time they were
computed; one older than `stats_cache_seconds` is never served, so an answer is at most that stale.
invalidate(organization_id) drops every cached answer of an organization at once (one DEL). Without `to`
the window ends now and without `from` it starts 24 hours earlier; such a window is cached under its
parameters, so "the last 24 hours" is recomputed at most every `stats_cache_seconds`.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import redis

from logpipe import cache, queries
from logpipe.config import Settings
from logpipe.errors import InvalidQueryError
from logpipe.gateway_models import Stats
from logpipe.observability import logger

DEFAULT_WINDOW = timedelta(hours=24)


def get_stats(organization_id: str, since: datetime | None, until: datetime | None, settings: Settings) -> Stats:
    field = f"{since.isoformat() if since else ''}|{until.isoformat() if until else ''}"
    cached = _cached(organization_id, field, settings)
    if cached is not None:
        return cached
    until = until or datetime.now(UTC)
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidQueryError("`from` must be earlier than `to`")
    by_level, by_source = queries.count_events(organization_id, since, until)
    stats = Stats(from_=since, to=until, total=sum(by_level.values()), by_level=by_level, by_source=by_source)
    _store(organization_id, field, stats, settings)
    return stats


def invalidate(organization_id: str) -> None:
    cache.client().delete(_hash_key(organization_id))


def _cached(organization_id: str, field: str, settings: Settings) -> Stats | None:
    try:
        raw = cache.client().hget(_hash_key(organization_id), field)
    except redis.RedisError as exc:  # the cache is an optimisation: compute instead
        logger.warning("stats cache unavailable", extra={"error": str(exc)})
        return None
    if raw is None:
        return None
    entry = json.loads(raw)
    if time.time() - entry["computedAt"] > settings.stats_cache_seconds:
        return None
    return Stats.model_validate(entry["stats"])


def _store(organization_id: str, field: str, stats: Stats, settings: Settings) -> None:
    entry = json.dumps({"computedAt": time.time(), "stats": stats.model_dump(mode="json", by_alias=True)})
    key = _hash_key(organization_id)
    try:
        with cache.client().pipeline(transaction=False) as pipe:
            pipe.hset(key, field, entry).expire(key, settings.stats_cache_seconds).execute()
    except redis.RedisError as exc:
        logger.warning("stats not cached", extra={"error": str(exc)})


def _hash_key(organization_id: str) -> str:
    return f"stats:{organization_id}"

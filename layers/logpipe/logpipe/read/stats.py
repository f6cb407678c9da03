"""Counts per level and per source over a window, cache-aside in Redis, refreshed ahead of expiry.

Answers live in one Redis hash per organization (field: the window asked for) and carry the time their query
started (`computedAt`: the counts include every event stored before it). One older than `stats_cache_seconds` is
never served, so an answer is at most that stale. An answer past half that age is still served, and the first
caller to see it (a Redis lock, shared by every instance) recomputes it in a background thread of its process:
a window in steady use is recomputed every half bound or so, never on a request's time, and by one caller, not
by every request that arrives meanwhile. A window nobody asked for within the bound is computed on the request.

invalidate(organization_id) drops every cached answer of an organization at once (one DEL). Without `to` the
window ends now and without `from` it starts 24 hours earlier; such a window is cached under its parameters, so
"the last 24 hours" is recomputed at most every half `stats_cache_seconds` while it is asked for.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import redis

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import InvalidQueryError
from logpipe.observability import logger
from logpipe.read import queries
from logpipe.read.models import Stats

DEFAULT_WINDOW = timedelta(hours=24)
# Refreshes run beside the requests; two at a time per process keep PostgreSQL's share bounded.
_refresher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stats-refresh")


def get_stats(organization_id: str, since: datetime | None, until: datetime | None, settings: Settings) -> Stats:
    field = f"{since.isoformat() if since else ''}|{until.isoformat() if until else ''}"
    cached = _cached(organization_id, field)
    if cached is not None:
        stats, computed_at = cached
        age = time.time() - computed_at
        if age <= settings.stats_cache_seconds:
            if age >= settings.stats_cache_seconds / 2:
                _refresh_ahead(organization_id, field, since, until, settings)
            return Stats.model_validate(stats)
    return _compute(organization_id, field, since, until, settings)


def invalidate(organization_id: str) -> None:
    cache.client().delete(_hash_key(organization_id))


def _compute(
    organization_id: str, field: str, since: datetime | None, until: datetime | None, settings: Settings
) -> Stats:
    started = time.time()  # what the answer is as new as: its query sees every event stored before this
    until = until or datetime.fromtimestamp(started, UTC)
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidQueryError("`from` must be earlier than `to`")
    by_level, by_source = queries.count_events(organization_id, since, until)
    stats = Stats(from_=since, to=until, total=sum(by_level.values()), by_level=by_level, by_source=by_source)
    _store(organization_id, field, stats, started, settings)
    return stats


def _refresh_ahead(
    organization_id: str, field: str, since: datetime | None, until: datetime | None, settings: Settings
) -> None:
    """Recompute the answer in the background if no caller anywhere is already doing it. The lock lasts half the
    bound: a refresher that died (or an instance frozen by Lambda) is replaced before the answer expires."""
    lock_ms = settings.stats_cache_seconds * 500
    try:
        taken = cache.client().set(f"stats-refresh:{organization_id}:{field}", 1, nx=True, px=lock_ms)
    except redis.RedisError as exc:
        logger.warning("stats refresh lock unavailable", extra={"error": str(exc)})
        return
    if taken:
        _refresher.submit(_refresh, organization_id, field, since, until, settings)


def _refresh(
    organization_id: str, field: str, since: datetime | None, until: datetime | None, settings: Settings
) -> None:
    try:
        _compute(organization_id, field, since, until, settings)
    except Exception:  # no caller to tell: the cached answer is served until its bound, then recomputed on a request
        logger.exception("stats refresh failed", extra={"organization_id": organization_id})


def _cached(organization_id: str, field: str) -> tuple[dict, float] | None:
    """The cached answer (as JSON) and when its query started, if there is one."""
    try:
        raw = cache.client().hget(_hash_key(organization_id), field)
    except redis.RedisError as exc:  # the cache is an optimisation: compute instead
        logger.warning("stats cache unavailable", extra={"error": str(exc)})
        return None
    if raw is None:
        return None
    entry = json.loads(raw)
    return entry["stats"], entry["computedAt"]


def _store(organization_id: str, field: str, stats: Stats, computed_at: float, settings: Settings) -> None:
    entry = json.dumps({"computedAt": computed_at, "stats": stats.model_dump(mode="json", by_alias=True)})
    key = _hash_key(organization_id)
    try:
        with cache.client().pipeline(transaction=False) as pipe:
            pipe.hset(key, field, entry).expire(key, settings.stats_cache_seconds).execute()
    except redis.RedisError as exc:
        logger.warning("stats not cached", extra={"error": str(exc)})


def _hash_key(organization_id: str) -> str:
    return f"stats:{organization_id}"

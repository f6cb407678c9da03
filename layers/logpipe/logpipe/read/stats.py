"""Counts per level and per source over a window, cache-aside in Redis, refreshed ahead of expiry
(logpipe.read.answer_cache): an answer is at most `stats_cache_seconds` stale.

Without `to` the window ends now and without `from` it starts 24 hours earlier; such a window is cached under its
parameters, so "the last 24 hours" is recomputed at most every half `stats_cache_seconds` while it is asked for.
"""

from datetime import UTC, datetime, timedelta

from logpipe.config import Settings
from logpipe.errors import InvalidQueryError
from logpipe.read import queries
from logpipe.read.answer_cache import AnswerCache
from logpipe.read.models import Stats

DEFAULT_WINDOW = timedelta(hours=24)
_cache = AnswerCache("stats", Stats)


def get_stats(organization_id: str, since: datetime | None, until: datetime | None, settings: Settings) -> Stats:
    field = f"{since.isoformat() if since else ''}|{until.isoformat() if until else ''}"
    return _cache.get(
        organization_id, field, lambda: _count(organization_id, since, until), settings.stats_cache_seconds
    )


def invalidate(organization_id: str) -> None:
    _cache.invalidate(organization_id)


def _count(organization_id: str, since: datetime | None, until: datetime | None) -> Stats:
    until = until or datetime.now(UTC)
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidQueryError("`from` must be earlier than `to`")
    by_level, by_source = queries.count_events(organization_id, since, until)
    return Stats(from_=since, to=until, total=sum(by_level.values()), by_level=by_level, by_source=by_source)

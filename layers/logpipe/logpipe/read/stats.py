"""Counts per level and per source over a window, cache-aside in Redis, refreshed ahead of expiry
(logpipe.read.answer_cache): an answer is at most `stats_cache_seconds` stale.

Without `to` the window ends now and without `from` it starts 24 hours earlier; such a window is cached under its
parameters, so "the last 24 hours" is recomputed at most every half `stats_cache_seconds` while it is asked for.
A `from` or `to` that is given is rounded outward to a round step of about a thousandth of the window
(histogram.aligned_window), so windows that differ by less share one cached answer instead of each costing a
count; the answer's `from` and `to` are the window counted. `bySource` holds the MAX_SOURCES sources with the
most events.
"""

from datetime import datetime

from logpipe.config import Settings
from logpipe.read import queries
from logpipe.read.answer_cache import AnswerCache
from logpipe.read.histogram import DEFAULT_WINDOW, aligned_window
from logpipe.read.models import MAX_SOURCES, Stats
from logpipe.read.queries import EventFilter

STEPS_PER_WINDOW = 1000
_cache = AnswerCache("stats", Stats)


def get_stats(organization_id: str, since: datetime | None, until: datetime | None, settings: Settings) -> Stats:
    window = EventFilter(since=since, until=until).in_utc()
    window.check_countable()
    since, until, _step = aligned_window(window.since, window.until, STEPS_PER_WINDOW)
    field = f"{since.isoformat() if since else ''}|{until.isoformat() if until else ''}"
    return _cache.get(
        organization_id,
        field,
        lambda: _count(organization_id, since, until, settings.read_count_timeout_seconds),
        settings.stats_cache_seconds,
    )


def invalidate(organization_id: str) -> None:
    _cache.invalidate(organization_id)


def _count(organization_id: str, since: datetime | None, until: datetime | None, timeout: float) -> Stats:
    since, until = EventFilter(since=since, until=until).window(DEFAULT_WINDOW)
    by_level, by_source = queries.count_events(organization_id, since, until, timeout, MAX_SOURCES)
    return Stats(from_=since, to=until, total=sum(by_level.values()), by_level=by_level, by_source=by_source)

"""Counts per level and per source over a window, cache-aside in Redis, refreshed ahead of expiry
(logpipe.read.answer_cache): an answer is at most `stats_cache_seconds` stale.

Without `to` the window ends now and without `from` it starts 24 hours earlier; such a window is cached under its
parameters, so "the last 24 hours" is recomputed at most every half `stats_cache_seconds` while it is asked for.
A `from` or `to` that is given is rounded outward (`from` down, `to` up) to a round step of about a thousandth of
the window (histogram.bucket_seconds: 1 s, 5 s, ... 1 d), so windows that differ by less share one cached answer
instead of each costing a count; the answer's `from` and `to` are the window counted.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from logpipe.config import Settings
from logpipe.errors import InvalidQueryError
from logpipe.read import queries
from logpipe.read.answer_cache import AnswerCache
from logpipe.read.histogram import DEFAULT_WINDOW, bucket_seconds, bucket_start
from logpipe.read.models import Stats
from logpipe.read.queries import EventFilter

STEPS_PER_WINDOW = 1000
_cache = AnswerCache("stats", Stats)


def get_stats(organization_id: str, since: datetime | None, until: datetime | None, settings: Settings) -> Stats:
    window = EventFilter(since=since, until=until).in_utc()
    window.check_countable()
    since, until = _aligned(window.since, window.until)
    field = f"{since.isoformat() if since else ''}|{until.isoformat() if until else ''}"
    return _cache.get(
        organization_id,
        field,
        lambda: _count(organization_id, since, until, settings.read_count_timeout_seconds),
        settings.stats_cache_seconds,
    )


def invalidate(organization_id: str) -> None:
    _cache.invalidate(organization_id)


def _aligned(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The given ends of the window rounded outward to a step of about a thousandth of its length."""
    end = until or datetime.now(UTC)
    step = bucket_seconds(end - (since or end - DEFAULT_WINDOW), STEPS_PER_WINDOW)
    since = _rounded("from", since, lambda moment: bucket_start(moment, step))
    until = _rounded("to", until, lambda moment: _round_up(moment, step))
    return since, until


def _rounded(name: str, moment: datetime | None, rounding: Callable[[datetime], datetime]) -> datetime | None:
    try:
        return rounding(moment) if moment else None
    except OverflowError as exc:  # rounded before year 1 or after 9999 (a window of centuries)
        raise InvalidQueryError(f"`{name}` is too near the dates this API counts in", details={"field": name}) from exc


def _round_up(moment: datetime, seconds: int) -> datetime:
    start = bucket_start(moment, seconds)
    return start if start == moment else start + timedelta(seconds=seconds)


def _count(organization_id: str, since: datetime | None, until: datetime | None, timeout: float) -> Stats:
    since, until = EventFilter(since=since, until=until).window(DEFAULT_WINDOW)
    by_level, by_source = queries.count_events(organization_id, since, until, timeout)
    return Stats(from_=since, to=until, total=sum(by_level.values()), by_level=by_level, by_source=by_source)

"""Counts per time bucket and level over a window, with the search's filters, cache-aside in Redis
(logpipe.read.answer_cache): an answer is at most `stats_cache_seconds` stale, like /api/stats.

The bucket width is the smallest round step (1 s, 5 s, 10 s, 30 s, 1 min, 5 min, 10 min, 15 min, 30 min, 1 h, 2 h,
3 h, 6 h, 12 h, 1 d, then whole days) that covers the window in at most the buckets asked for, and buckets start on
multiples of it since the Unix epoch (PostgreSQL's date_bin): the same question always gets the same buckets.
Without `to` the window ends now and without `from` it starts 24 hours earlier; such a window is cached under its
parameters, as /api/stats does. A `from` or `to` that is given is rounded outward to the bucket width
(aligned_window): the first and last buckets are whole, and windows that differ by less than a bucket (the log
explorer asks for "the last hour" to the millisecond) share one cached answer. The cache field is a digest of the
question, so its size is bounded whatever the text or source asked for.
"""

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from logpipe.config import Settings
from logpipe.errors import InvalidQueryError
from logpipe.read import queries
from logpipe.read.answer_cache import AnswerCache
from logpipe.read.models import Histogram, HistogramBucket
from logpipe.read.queries import EventFilter

DEFAULT_WINDOW = timedelta(hours=24)
STEPS_SECONDS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = 86400
_cache = AnswerCache("histogram", Histogram)


def get_histogram(organization_id: str, event_filter: EventFilter, buckets: int, settings: Settings) -> Histogram:
    event_filter = event_filter.in_utc()
    event_filter.check_countable()
    since, until, seconds = aligned_window(event_filter.since, event_filter.until, buckets)
    event_filter = replace(event_filter, since=since, until=until)
    return _cache.get(
        organization_id,
        _field(event_filter, buckets),
        lambda: _count(organization_id, event_filter, seconds, settings.read_count_timeout_seconds),
        settings.stats_cache_seconds,
    )


def bucket_seconds(window: timedelta, buckets: int) -> int:
    """The smallest round step that covers `window` in at most `buckets` buckets."""
    wanted = window.total_seconds() / buckets
    return next((step for step in STEPS_SECONDS if step >= wanted), _DAY * math.ceil(wanted / _DAY))


def bucket_start(moment: datetime, seconds: int) -> datetime:
    """The start of the bucket holding `moment`, as date_bin(seconds, moment, EPOCH) computes it."""
    width = timedelta(seconds=seconds)
    return EPOCH + width * ((moment - EPOCH) // width)


def aligned_window(
    since: datetime | None, until: datetime | None, steps: int
) -> tuple[datetime | None, datetime | None, int]:
    """The round step that covers the window (default ends: now, 24 hours before `to`) in at most `steps` steps,
    and the given ends rounded outward to it, `from` down and `to` up (the others stay None): questions that differ
    by less than a step are the same question."""
    end = until or datetime.now(UTC)
    step = bucket_seconds(end - (since or end - DEFAULT_WINDOW), steps)
    since = _rounded("from", since, lambda moment: bucket_start(moment, step))
    until = _rounded("to", until, lambda moment: _round_up(moment, step))
    return since, until, step


def _rounded(name: str, moment: datetime | None, rounding: Callable[[datetime], datetime]) -> datetime | None:
    try:
        return rounding(moment) if moment else None
    except OverflowError as exc:  # rounded before year 1 or after 9999 (a window of centuries)
        raise InvalidQueryError(f"`{name}` is too near the dates this API counts in", details={"field": name}) from exc


def _round_up(moment: datetime, seconds: int) -> datetime:
    start = bucket_start(moment, seconds)
    return start if start == moment else start + timedelta(seconds=seconds)


def _count(organization_id: str, event_filter: EventFilter, seconds: int, timeout: float) -> Histogram:
    try:
        return _count_in_window(organization_id, event_filter, seconds, timeout)
    except OverflowError as exc:  # a window or bucket reaching before year 1 or after 9999
        raise InvalidQueryError("the time range reaches beyond the dates this API counts in") from exc


def _count_in_window(organization_id: str, event_filter: EventFilter, seconds: int, timeout: float) -> Histogram:
    since, until = event_filter.window(DEFAULT_WINDOW)
    window = EventFilter(event_filter.levels, event_filter.source, since, until, event_filter.text)
    counts: dict[datetime, dict[str, int]] = {}
    for start, level, count in queries.count_buckets(
        organization_id, window, timedelta(seconds=seconds), EPOCH, timeout
    ):
        counts.setdefault(start, {})[level] = count
    return Histogram(
        from_=since,
        to=until,
        bucket_seconds=seconds,
        buckets=[
            HistogramBucket(start=start, counts=counts.get(start, {})) for start in _starts(since, until, seconds)
        ],
    )


def _starts(since: datetime, until: datetime, seconds: int) -> list[datetime]:
    first, width = bucket_start(since, seconds), timedelta(seconds=seconds)
    return [first + width * i for i in range(math.ceil((until - first) / width))]


def _field(event_filter: EventFilter, buckets: int) -> str:
    question = [
        sorted(level.value for level in event_filter.levels),
        event_filter.source,
        event_filter.text,
        event_filter.since.isoformat() if event_filter.since else None,
        event_filter.until.isoformat() if event_filter.until else None,
        buckets,
    ]
    return hashlib.sha256(json.dumps(question).encode()).hexdigest()

"""Read-side SQL, always bound to one organization, each statement bounded in time (`timeout`, seconds: see
logpipe.adapters.postgres.connection) and every list of events bounded in bytes as well as rows (`max_bytes`).

A list of events is cut where the answer carrying it could pass Lambda's response limit: each row counts as the
most its JSON can take once inside the Lambda response (`_ROW_RESPONSE_BYTES`). A cut list says that more rows
follow, so a page that stops early still has a next page.
"""

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from logpipe.adapters import postgres
from logpipe.errors import InvalidQueryError
from logpipe.models import Level, LogEvent

_EVENT_COLUMNS = (
    "id, organization_id, level, message, source, occurred_at AS timestamp, received_at, attributes, trace_id, span_id"
)
_NEWEST_FIRST = "ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s"
_NEWEST = "timestamp DESC, id DESC"  # the same order, by the output's column names
# message_tsv is to_tsvector('simple', message), stored and GIN-indexed with the organization (migration 0003).
_MATCHES_TEXT = "message_tsv @@ websearch_to_tsquery('simple', %(text)s)"
RECENT_ROWS_SEARCHED = 5000
EARLIEST, LATEST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
# The most bytes one row's JSON can take inside a Lambda response: a byte of text becomes at most 6 in the JSON
# body (a control character is \u0001; JSON text is ASCII) and that body, a string in the response, escapes its
# backslashes and quotes again (7 bytes); 512 bounds everything else of an event (ids, level, times, names).
_ROW_RESPONSE_BYTES = (
    "7 * (octet_length(message) + octet_length(attributes::text) + octet_length(source)"
    " + octet_length(organization_id) + coalesce(octet_length(trace_id), 0) + coalesce(octet_length(span_id), 0))"
    " + 512"
)


@dataclass(frozen=True)
class EventRows:
    """Events in the order asked for, and whether more match after the last of them."""

    events: list[LogEvent]
    more: bool


@dataclass(frozen=True)
class Bounds:
    """What one read may take: `timeout` seconds of PostgreSQL time, `max_bytes` of rows in its answer."""

    timeout: float
    max_bytes: int

    def spent(self, seconds: float) -> "Bounds":
        """The bounds left after `seconds` of the time (never none: a statement timeout of 0 would mean none)."""
        return replace(self, timeout=max(self.timeout - seconds, 0.001))


@dataclass(frozen=True)
class EventFilter:
    levels: list[Level] = field(default_factory=list)
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def in_utc(self) -> "EventFilter":
        """The same filter with a time given without an offset read as UTC (so `from` and `to` always compare)."""
        return replace(self, since=_utc(self.since), until=_utc(self.until))

    def check_window(self) -> None:
        """Raise InvalidQueryError unless `from` is earlier than `to` (when both are given)."""
        if self.since and self.until and self.since >= self.until:
            raise InvalidQueryError("`from` must be earlier than `to`", details={"field": "from"})

    def check_countable(self) -> None:
        """check_window, and `from` and `to` within the dates a window is counted in: a day short of year 1 and
        year 9999, so a default window and the buckets around it still fit."""
        for name, moment in (("from", self.since), ("to", self.until)):
            if moment and not EARLIEST <= moment <= LATEST:
                raise InvalidQueryError(
                    f"`{name}` must lie between {EARLIEST.date()} and {LATEST.date()}", details={"field": name}
                )
        self.check_window()

    def window(self, default: timedelta) -> tuple[datetime, datetime]:
        """[from, to): `to` defaults to now and `from` to `default` before `to`; InvalidQueryError if empty."""
        until = self.until or datetime.now(UTC)
        since = self.since or until - default
        if since >= until:  # a `from` later than now, without `to`
            raise InvalidQueryError("`from` must be earlier than `to`", details={"field": "from"})
        return since, until


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def find_events(
    organization_id: str,
    event_filter: EventFilter,
    limit: int,
    before: tuple[datetime, UUID] | None,
    bounds: Bounds,
) -> EventRows:
    """The organization's events matching the filter, newest first, strictly older than `before` in (time, id).

    A text search first tests the newest `RECENT_ROWS_SEARCHED` rows that pass the other filters (enough when the
    text is common); only when they hold fewer than `limit` matches does it ask the (organization, text) GIN index
    for every match and sort those. The planner cannot tell the two cases apart from word statistics (two common
    words that never meet look like a common phrase), so the choice is made here. That fallback holds only the
    (time, id) of each match (not the row, up to ~100 KB) and reads the rows of the page alone, and it gets what is
    left of the time bound after the first query: the search as a whole runs at most `bounds.timeout` seconds.
    """
    started = time.monotonic()
    where, params = _where(organization_id, event_filter)
    params["limit"] = limit + 1  # one more than asked says whether more follow
    if before:
        where += " AND (occurred_at, id) < (%(before_at)s, %(before_id)s)"
        params["before_at"], params["before_id"] = before
    if not event_filter.text:
        sql = f"SELECT {_EVENT_COLUMNS} FROM log_events WHERE {where} {_NEWEST_FIRST}"
        return _select_rows(sql, params, limit, bounds, _NEWEST)
    params.update(text=event_filter.text, recent=RECENT_ROWS_SEARCHED)
    recent = _select_rows(
        f"SELECT {_EVENT_COLUMNS} FROM (SELECT * FROM log_events WHERE {where}"
        f" ORDER BY occurred_at DESC, id DESC LIMIT %(recent)s) AS recent WHERE {_MATCHES_TEXT} {_NEWEST_FIRST}",
        params,
        limit,
        bounds,
        _NEWEST,
    )
    if recent.more:  # the newest matches are all among the recent rows
        return recent
    return _select_rows(
        f"WITH matches AS MATERIALIZED (SELECT occurred_at, id FROM log_events WHERE {where} AND {_MATCHES_TEXT}),"
        f" page AS (SELECT occurred_at, id FROM matches {_NEWEST_FIRST})"
        f" SELECT {_EVENT_COLUMNS} FROM log_events JOIN page USING (occurred_at, id)"
        f" WHERE organization_id = %(org)s {_NEWEST_FIRST}",
        params,
        limit,
        bounds.spent(time.monotonic() - started),
        _NEWEST,
        prepare=False,  # how to find the matches depends on the text: never a generic plan
    )


def _where(organization_id: str, event_filter: EventFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (but the text) of a filter over the organization's rows, and its parameters."""
    conditions = ["organization_id = %(org)s"]
    params: dict[str, Any] = {"org": organization_id}
    if event_filter.levels:
        conditions.append("level = ANY(%(levels)s)")
        params["levels"] = [level.value for level in event_filter.levels]
    if event_filter.source:
        conditions.append("source = %(source)s")
        params["source"] = event_filter.source
    if event_filter.since:
        conditions.append("occurred_at >= %(since)s")
        params["since"] = event_filter.since
    if event_filter.until:
        conditions.append("occurred_at < %(until)s")
        params["until"] = event_filter.until
    return " AND ".join(conditions), params


def find_events_after(
    organization_id: str, source: str, after: tuple[datetime, UUID], limit: int, bounds: Bounds
) -> EventRows:
    """The organization's events of `source` strictly newer than `after` in (time, id), oldest first."""
    return _select_rows(
        f"SELECT {_EVENT_COLUMNS} FROM log_events WHERE organization_id = %(org)s AND source = %(source)s"
        " AND (occurred_at, id) > (%(after_at)s, %(after_id)s) ORDER BY occurred_at, id LIMIT %(limit)s",
        {"org": organization_id, "source": source, "after_at": after[0], "after_id": after[1], "limit": limit + 1},
        limit,
        bounds,
        "timestamp, id",
    )


def count_buckets(
    organization_id: str, event_filter: EventFilter, width: timedelta, origin: datetime, timeout: float
) -> list[tuple[datetime, str, int]]:
    """(bucket start, level, count) of the organization's events matching the filter, in buckets of `width`
    aligned on `origin` (date_bin); only buckets and levels with events."""
    where, params = _where(organization_id, event_filter)
    if event_filter.text:
        where += f" AND {_MATCHES_TEXT}"
        params["text"] = event_filter.text
    params.update(width=width, origin=origin)
    with postgres.connection(timeout) as conn:
        rows = conn.execute(
            f"SELECT date_bin(%(width)s, occurred_at, %(origin)s) AS start, level, count(*) FROM log_events"
            f" WHERE {where} GROUP BY 1, 2",
            params,
            prepare=False,  # how to find text matches depends on the text: never a generic plan
        ).fetchall()
    return [(start, level, count) for start, level, count in rows]


def _select_rows(
    sql: str, params: dict[str, Any], limit: int, bounds: Bounds, order: str, prepare: bool | None = None
) -> EventRows:
    """The first `limit` rows of `sql` (which asks for one more, in `order` of the output columns) that fit in
    `bounds.max_bytes`, the first always. A statement run often is prepared (psycopg's default), so planning over
    every partition is not paid per request, unless `prepare=False`."""
    fitting = (
        f"SELECT * FROM (SELECT page.*, sum({_ROW_RESPONSE_BYTES}) OVER ordered AS bytes_through,"
        f" row_number() OVER ordered AS position, lead(true, 1, false) OVER ordered AS followed"
        f" FROM ({sql}) AS page WINDOW ordered AS (ORDER BY {order})) AS sized"
        f" WHERE (bytes_through <= %(max_bytes)s OR position = 1) ORDER BY position"
    )
    with postgres.connection(bounds.timeout) as conn, conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(fitting, {**params, "max_bytes": bounds.max_bytes}, prepare=prepare).fetchall()
    events = [LogEvent.model_validate(row) for row in rows[:limit]]
    return EventRows(events, more=len(rows) > limit or bool(rows and rows[-1]["followed"]))


def find_event(organization_id: str, event_id: UUID, timeout: float) -> LogEvent | None:
    """log_event_ids gives the event's time, so only its partition's primary key is probed."""
    columns = ", ".join(f"e.{column.strip()}" for column in _EVENT_COLUMNS.split(","))
    with postgres.connection(timeout) as conn, conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            f"SELECT {columns} FROM log_event_ids i"
            " JOIN log_events e ON e.occurred_at = i.occurred_at AND e.id = i.id"
            " WHERE i.organization_id = %(org)s AND i.id = %(id)s AND e.organization_id = %(org)s",
            {"org": organization_id, "id": event_id},
        ).fetchone()
    return None if row is None else LogEvent.model_validate(row)


def count_events(
    organization_id: str, since: datetime, until: datetime, timeout: float, max_sources: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Counts per level and per source of the organization's events in [since, until): every level, the
    `max_sources` sources with the most events (the answer must fit in a response whatever the sources)."""
    with postgres.connection(timeout) as conn:
        rows = conn.execute(
            "WITH counts AS (SELECT level, source, count(*) AS events FROM log_events"
            " WHERE organization_id = %(org)s AND occurred_at >= %(since)s AND occurred_at < %(until)s"
            " GROUP BY GROUPING SETS ((level), (source)))"
            " SELECT * FROM counts WHERE source IS NULL"
            " UNION ALL (SELECT * FROM counts WHERE level IS NULL ORDER BY events DESC, source LIMIT %(sources)s)",
            {"org": organization_id, "since": since, "until": until, "sources": max_sources},
        ).fetchall()
    by_level = {level: count for level, source, count in rows if source is None}
    by_source = {source: count for level, source, count in rows if level is None}
    return by_level, by_source

"""Read-side SQL, always bound to one organization."""

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
_MATCHED_COLUMNS = "id, organization_id, level, message, source, timestamp, received_at, attributes, trace_id, span_id"
_NEWEST_FIRST = "ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s"
# message_tsv is to_tsvector('simple', message), stored and GIN-indexed with the organization (migration 0003).
_MATCHES_TEXT = "message_tsv @@ websearch_to_tsquery('simple', %(text)s)"
RECENT_ROWS_SEARCHED = 5000


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
            raise InvalidQueryError("`from` must be earlier than `to`")


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def find_events(
    organization_id: str, event_filter: EventFilter, limit: int, before: tuple[datetime, UUID] | None
) -> list[LogEvent]:
    """The organization's events matching the filter, newest first, strictly older than `before` in (time, id).

    A text search first tests the newest `RECENT_ROWS_SEARCHED` rows that pass the other filters (enough when the
    text is common); only when they hold fewer than `limit` matches does it ask the (organization, text) GIN index
    for every match and sort those. The planner cannot tell the two cases apart from word statistics (two common
    words that never meet look like a common phrase), so the choice is made here.
    """
    where, params = _where(organization_id, event_filter)
    params["limit"] = limit
    if before:
        where += " AND (occurred_at, id) < (%(before_at)s, %(before_id)s)"
        params["before_at"], params["before_id"] = before
    if not event_filter.text:
        return _select(f"SELECT {_EVENT_COLUMNS} FROM log_events WHERE {where} {_NEWEST_FIRST}", params)
    params.update(text=event_filter.text, recent=RECENT_ROWS_SEARCHED)
    recent = _select(
        f"SELECT {_EVENT_COLUMNS} FROM (SELECT * FROM log_events WHERE {where}"
        f" ORDER BY occurred_at DESC, id DESC LIMIT %(recent)s) AS recent WHERE {_MATCHES_TEXT} {_NEWEST_FIRST}",
        params,
    )
    if len(recent) == limit:
        return recent
    return _select(
        f"WITH matches AS MATERIALIZED (SELECT {_EVENT_COLUMNS}, occurred_at FROM log_events"
        f" WHERE {where} AND {_MATCHES_TEXT}) SELECT {_MATCHED_COLUMNS} FROM matches {_NEWEST_FIRST}",
        params,
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


def find_events_after(organization_id: str, source: str, after: tuple[datetime, UUID], limit: int) -> list[LogEvent]:
    """The organization's events of `source` strictly newer than `after` in (time, id), oldest first."""
    return _select(
        f"SELECT {_EVENT_COLUMNS} FROM log_events WHERE organization_id = %(org)s AND source = %(source)s"
        " AND (occurred_at, id) > (%(after_at)s, %(after_id)s) ORDER BY occurred_at, id LIMIT %(limit)s",
        {"org": organization_id, "source": source, "after_at": after[0], "after_id": after[1], "limit": limit},
    )


def count_buckets(
    organization_id: str, event_filter: EventFilter, width: timedelta, origin: datetime
) -> list[tuple[datetime, str, int]]:
    """(bucket start, level, count) of the organization's events matching the filter, in buckets of `width`
    aligned on `origin` (date_bin); only buckets and levels with events."""
    where, params = _where(organization_id, event_filter)
    if event_filter.text:
        where += f" AND {_MATCHES_TEXT}"
        params["text"] = event_filter.text
    params.update(width=width, origin=origin)
    with postgres.connection() as conn:
        rows = conn.execute(
            f"SELECT date_bin(%(width)s, occurred_at, %(origin)s) AS start, level, count(*) FROM log_events"
            f" WHERE {where} GROUP BY 1, 2",
            params,
            prepare=False,  # how to find text matches depends on the text: never a generic plan
        ).fetchall()
    return [(start, level, count) for start, level, count in rows]


def _select(sql: str, params: dict[str, Any], prepare: bool | None = None) -> list[LogEvent]:
    """Rows as events; a statement run often is prepared (psycopg's default), so planning over every partition
    is not paid per request, unless `prepare=False`."""
    with postgres.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        return [LogEvent.model_validate(row) for row in cursor.execute(sql, params, prepare=prepare)]


def find_event(organization_id: str, event_id: UUID) -> LogEvent | None:
    """log_event_ids gives the event's time, so only its partition's primary key is probed."""
    columns = ", ".join(f"e.{column.strip()}" for column in _EVENT_COLUMNS.split(","))
    with postgres.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            f"SELECT {columns} FROM log_event_ids i"
            " JOIN log_events e ON e.occurred_at = i.occurred_at AND e.id = i.id"
            " WHERE i.organization_id = %(org)s AND i.id = %(id)s AND e.organization_id = %(org)s",
            {"org": organization_id, "id": event_id},
        ).fetchone()
    return None if row is None else LogEvent.model_validate(row)


def count_events(organization_id: str, since: datetime, until: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Counts per level and per source of the organization's events in [since, until)."""
    with postgres.connection() as conn:
        rows = conn.execute(
            "SELECT level, source, count(*) FROM log_events"
            " WHERE organization_id = %s AND occurred_at >= %s AND occurred_at < %s"
            " GROUP BY GROUPING SETS ((level), (source))",
            (organization_id, since, until),
        ).fetchall()
    by_level = {level: count for level, source, count in rows if source is None}
    by_source = {source: count for level, source, count in rows if level is None}
    return by_level, by_source

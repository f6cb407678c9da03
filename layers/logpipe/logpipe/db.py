"""PostgreSQL access: a small connection pool per process, created on first use and reused while warm."""

from collections.abc import Sequence
from datetime import date
from functools import lru_cache, partial

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from logpipe import aws
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import LogEvent

_COLUMNS = "id, organization_id, occurred_at, level, message, source, attributes, trace_id, span_id, received_at"

# Rows land in a per-connection staging table first, so one COPY feeds an INSERT that claims each id in
# log_event_ids; only ids claimed by this statement reach log_events, which makes redelivery harmless.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS log_events_staging (LIKE log_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY_STAGING = f"COPY log_events_staging ({_COLUMNS}) FROM STDIN"
_INSERT_NEW = f"""
WITH claimed AS (
    INSERT INTO log_event_ids (id, organization_id, occurred_at)
    SELECT DISTINCT ON (id) id, organization_id, occurred_at FROM log_events_staging
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO log_events ({_COLUMNS})
SELECT DISTINCT ON (s.id) {", ".join("s." + column.strip() for column in _COLUMNS.split(","))}
FROM log_events_staging s JOIN claimed USING (id)
"""

_TRANSIENT_ERRORS = (psycopg.OperationalError, PoolTimeout)

_known_partitions: set[date] = set()


@lru_cache(maxsize=1)
def _pool() -> ConnectionPool:
    settings = get_settings()
    return ConnectionPool(
        # resolved for each new connection: a rotated database secret is picked up once its cache expires
        partial(aws.database_url, settings),
        min_size=1,
        max_size=settings.database_pool_max_size,
        timeout=settings.dependency_timeout_seconds,
        kwargs={"connect_timeout": max(1, int(settings.dependency_timeout_seconds))},
        # A warm container may hold a connection the server has since closed; check before use.
        check=ConnectionPool.check_connection,
        name="logpipe",
        open=True,
    )


def store_events(events: Sequence[LogEvent]) -> int:
    """Store events in one COPY-fed statement; returns how many were new (duplicates are skipped).

    Raises DependencyUnavailableError when PostgreSQL cannot be reached (retry later) and lets
    psycopg.DataError/IntegrityError through when a row itself is unstorable.
    """
    if not events:
        return 0
    try:
        with _pool().connection() as conn:
            _ensure_partitions(conn, {event.timestamp.date() for event in events})
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(_CREATE_STAGING)
                with cursor.copy(_COPY_STAGING) as copy:
                    for event in events:
                        copy.write_row(_row(event))
                cursor.execute(_INSERT_NEW)
                return cursor.rowcount
    except _TRANSIENT_ERRORS as exc:
        raise DependencyUnavailableError(
            "postgresql", f"PostgreSQL unavailable: {exc}", get_settings().retry_after_seconds
        ) from exc


def ping() -> None:
    with _pool().connection() as conn:
        conn.execute("SELECT 1")


def _ensure_partitions(conn: psycopg.Connection, days: set[date]) -> None:
    # Partitions are created in their own short transaction: DDL on the parent must not be held for the
    # duration of a bulk insert.
    missing = sorted(days - _known_partitions)
    if not missing:
        return
    with conn.transaction():
        for day in missing:
            conn.execute("SELECT ensure_log_events_partition(%s)", (day,))
    _known_partitions.update(missing)


def _row(event: LogEvent) -> tuple:
    return (
        event.id,
        event.organization_id,
        event.timestamp,
        event.level.value,
        event.message,
        event.source,
        Jsonb(event.attributes),
        event.trace_id,
        event.span_id,
        event.received_at,
    )

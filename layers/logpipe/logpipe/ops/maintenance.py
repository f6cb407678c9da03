"""Partition maintenance, off the hot path: `python -m logpipe.ops.maintenance` (or `make maintain`).

- creates the day partitions of today and the next PARTITIONS_AHEAD_DAYS days, so the consumer never runs DDL
  in steady state;
- drops the day partitions older than RETENTION_DAYS, and in the same transaction the ids of their events
  from log_event_ids, so storage stays bounded. The consumer dead-letters events older than the same bound
  (reason ``expired``) instead of recreating a dropped partition.

Idempotent; safe to run while the consumer writes (each drop waits at most `lock_timeout` for its locks).
"""

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from logpipe.adapters import postgres
from logpipe.config import Settings, get_settings
from logpipe.observability import logger
from logpipe.sink import storage

_PARTITION_NAME = re.compile(r"^log_events_(\d{8})$")
_LIST_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'log_events'::regclass
"""


@dataclass(frozen=True)
class MaintenanceReport:
    created: list[str]
    dropped: list[str]
    ids_pruned: int


def run(settings: Settings, today: date | None = None, *, dry_run: bool = False) -> MaintenanceReport:
    today = today or datetime.now(UTC).date()
    oldest_kept = today - timedelta(days=settings.retention_days)
    with postgres.connection() as conn:
        conn.autocommit = True
        try:
            existing = partition_days(conn)
            wanted = [today + timedelta(days=n) for n in range(settings.partitions_ahead_days + 1)]
            created = [day for day in wanted if day not in existing]
            expired = sorted(day for day in existing if day < oldest_kept)
            pruned = 0
            if not dry_run:
                for day in created:
                    storage.ensure_partition(conn, day)
                for day in expired:
                    pruned += drop_partition(conn, day)
        finally:
            conn.autocommit = False
    report = MaintenanceReport([d.isoformat() for d in created], [d.isoformat() for d in expired], pruned)
    logger.info("partition maintenance", extra={"report": asdict(report), "dry_run": dry_run})
    return report


def partition_days(conn: psycopg.Connection) -> set[date]:
    days = set()
    for (name,) in conn.execute(_LIST_PARTITIONS):
        if match := _PARTITION_NAME.match(name):
            days.add(datetime.strptime(match.group(1), "%Y%m%d").date())
    return days


def drop_partition(conn: psycopg.Connection, day: date) -> int:
    """Drop one day's partition and its ids atomically; returns how many ids were pruned."""
    name = f"log_events_{day:%Y%m%d}"
    start = datetime.combine(day, datetime.min.time(), UTC)
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        pruned = conn.execute(
            "DELETE FROM log_event_ids WHERE occurred_at >= %s AND occurred_at < %s",
            (start, start + timedelta(days=1)),
        ).rowcount
        conn.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(name)))
    storage.forget_partition(day)
    return pruned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logpipe.ops.maintenance", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would be created and dropped; change nothing")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(run(get_settings(), dry_run=args.dry_run))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

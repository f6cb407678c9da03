"""Outcomes in PostgreSQL: whether an id is stored (log_event_ids) or dead-lettered (dead_letters, with why)."""

from collections.abc import Iterable
from uuid import UUID

from logpipe.adapters import postgres


def record_dead_letters(letters: Iterable[tuple[str, UUID, str]]) -> None:
    """Record (organization id, event id, reason) of events sent to the dead-letter topic; repeats keep the first."""
    with postgres.connection() as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO dead_letters (organization_id, id, reason) VALUES (%s, %s, %s)"
            " ON CONFLICT (organization_id, id) DO NOTHING",
            list(letters),
        )


def find_outcome(organization_id: str, event_id: UUID) -> tuple[bool, str | None]:
    """(stored, dead-letter reason) of one event id of the organization."""
    with postgres.connection() as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM log_event_ids WHERE organization_id = %(org)s AND id = %(id)s),"
            " (SELECT reason FROM dead_letters WHERE organization_id = %(org)s AND id = %(id)s)",
            {"org": organization_id, "id": event_id},
        ).fetchone()
    return bool(row[0]), row[1]

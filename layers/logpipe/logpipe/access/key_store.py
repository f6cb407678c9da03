"""PostgreSQL access for API keys (table api_keys, migration 0003): only hashes are stored."""

from datetime import datetime
from uuid import UUID

from psycopg.rows import dict_row

from logpipe.access.models import ApiKey
from logpipe.adapters import postgres

_KEY_COLUMNS = "id, organization_id, name, scopes, prefix, created_at, revoked_at"


def insert_key(key: ApiKey, key_hash: bytes) -> None:
    with postgres.connection() as conn:
        conn.execute(
            "INSERT INTO api_keys (id, organization_id, name, scopes, key_hash, prefix, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (key.id, key.organization_id, key.name, list(key.scopes), key_hash, key.prefix, key.created_at),
        )


def find_active_key(key_hash: bytes) -> ApiKey | None:
    with postgres.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL", (key_hash,)
        ).fetchone()
    return None if row is None else ApiKey.model_validate(row)


def list_keys(organization_id: str, limit: int, after: tuple[datetime, UUID] | None) -> list[ApiKey]:
    """The organization's keys in (created_at, id) order, those after `after` (a key's position) when given: at
    most `limit`."""
    position = "" if after is None else " AND (created_at, id) > (%(after_at)s, %(after_id)s)"
    after_at, after_id = after or (None, None)
    with postgres.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE organization_id = %(org)s{position}"
            " ORDER BY created_at, id LIMIT %(limit)s",
            {"org": organization_id, "after_at": after_at, "after_id": after_id, "limit": limit},
        ).fetchall()
    return [ApiKey.model_validate(row) for row in rows]


def revoke_key(organization_id: str, key_id: UUID) -> bytes | None:
    """Mark the organization's key revoked; returns its hash (None when the organization has no such key)."""
    with postgres.connection() as conn:
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
            " WHERE id = %s AND organization_id = %s RETURNING key_hash",
            (key_id, organization_id),
        ).fetchone()
    return None if row is None else bytes(row[0])

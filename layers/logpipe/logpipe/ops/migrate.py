"""Applies the SQL migrations in logpipe/ops/migrations in order, once each: `python -m logpipe.ops.migrate`.

Applied versions and their checksums live in schema_migrations; an applied file that was edited afterwards
is refused rather than silently skipped. An advisory lock serializes concurrent runs.
"""

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_ID = 0x6C6F6770  # "logp"


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(path.stem, path.read_text()) for path in sorted(directory.glob("*.sql"))]


def apply_migrations(database_url: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    pending = discover() if migrations is None else migrations
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            for migration in pending:
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise RuntimeError(f"migration {migration.version} was edited after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                        (migration.version, migration.checksum),
                    )
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def main() -> int:
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = apply_migrations(database_url)
    print(f"migrations: applied {', '.join(applied)}" if applied else "migrations: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

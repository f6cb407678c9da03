import uuid

import psycopg
import pytest

from logpipe.ops.migrate import Migration, apply_migrations, discover


def test_applied_migrations_are_not_applied_again(settings, pg: psycopg.Connection) -> None:
    assert apply_migrations(settings.database_url) == []
    applied = {version for (version,) in pg.execute("SELECT version FROM schema_migrations")}
    assert {migration.version for migration in discover()} <= applied


def test_a_new_migration_is_applied_once(settings, pg: psycopg.Connection) -> None:
    version = f"9999_test_{uuid.uuid4().hex[:8]}"
    migration = Migration(version, f"CREATE TABLE test_{version[-8:]} (id int)")
    try:
        assert apply_migrations(settings.database_url, [migration]) == [version]
        assert apply_migrations(settings.database_url, [migration]) == []
        assert pg.execute("SELECT to_regclass(%s) IS NOT NULL", (f"test_{version[-8:]}",)).fetchone() == (True,)
    finally:
        pg.execute(f"DROP TABLE IF EXISTS test_{version[-8:]}")
        pg.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))


def test_an_edited_migration_is_refused(settings) -> None:
    first = discover()[0]
    with pytest.raises(RuntimeError, match="edited"):
        apply_migrations(settings.database_url, [Migration(first.version, first.sql + "\n-- edited")])

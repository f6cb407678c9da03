"""The functions' database roles (migration 0005) against the real PostgreSQL, with the logins the deploy-time setup
gives them: the gateway's and producer's reader cannot write events, the consumer's writer stores but cannot delete,
and each function's own code runs under its role."""

import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date, timedelta

import psycopg
import pytest
from psycopg import errors as pg_errors

from logpipe.adapters import postgres
from logpipe.config import Settings, get_settings
from logpipe.ops.roles import grant_logins
from logpipe.receipts import outcomes
from logpipe.sink import storage
from tests.integration.gateway_helpers import answer
from tests.integration.stored_events import as_fields, make_event

# Local logins only (127.0.0.1, like the owner's logpipe/logpipe); on AWS each password comes from its secret.
# Fixed, so test runs of several worktrees against one cluster set the same ones.
LOCAL_PASSWORDS = {"logpipe_reader": "logpipe-reader-local", "logpipe_writer": "logpipe-writer-local"}

AsRole = Callable[[str], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def role_urls(settings: Settings) -> dict[str, str]:
    grant_logins(settings.database_url, LOCAL_PASSWORDS)
    parts = urllib.parse.urlsplit(settings.database_url)
    return {
        role: urllib.parse.urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))
        for role, password in LOCAL_PASSWORDS.items()
    }


@pytest.fixture
def as_role(role_urls: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[AsRole]:
    """Within the block, the functions' connection pool logs in as the role, as on AWS with the role's secret."""

    @contextmanager
    def switch(role: str) -> Iterator[str]:
        with monkeypatch.context() as patch:
            patch.setenv("DATABASE_URL", role_urls[role])
            fresh_pool()
            try:
                yield role
            finally:
                fresh_pool()
        get_settings.cache_clear()

    yield switch


def fresh_pool() -> None:
    """The next connection opens a pool with the settings of the environment as it is now."""
    if postgres._pool.cache_info().currsize:
        postgres._pool().close()
    postgres._pool.cache_clear()
    get_settings.cache_clear()


REFUSED_TO_THE_READER = [
    "INSERT INTO log_events (organization_id) VALUES ('x')",
    "UPDATE log_events SET message = 'changed' WHERE organization_id = 'x'",
    "DELETE FROM log_events WHERE organization_id = 'x'",
    "TRUNCATE log_events",
    "INSERT INTO log_event_ids (organization_id) VALUES ('x')",
    "DELETE FROM log_event_ids WHERE organization_id = 'x'",
    "DELETE FROM api_keys WHERE organization_id = 'x'",
    "UPDATE api_keys SET scopes = ARRAY['admin'] WHERE organization_id = 'x'",
    "SELECT ensure_log_events_partition('1999-01-01')",
    "DROP TABLE log_events",
    "CREATE TABLE reader_table (id int)",
]

REFUSED_TO_THE_WRITER = [
    "UPDATE log_events SET message = 'changed' WHERE organization_id = 'x'",
    "DELETE FROM log_events WHERE organization_id = 'x'",
    "TRUNCATE log_events",
    "DELETE FROM log_event_ids WHERE organization_id = 'x'",
    "SELECT key_hash FROM api_keys LIMIT 1",
    "INSERT INTO api_keys (organization_id) VALUES ('x')",
    "DROP TABLE log_events",
    "CREATE TABLE writer_table (id int)",
]


@pytest.mark.parametrize(("role", "statement"), [("logpipe_reader", s) for s in REFUSED_TO_THE_READER])
def test_the_reader_may_not_write_events_or_change_the_schema(role_urls, role: str, statement: str) -> None:
    with psycopg.connect(role_urls[role], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM log_events WHERE organization_id = 'x'").fetchone() == (0,)
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute(statement)


@pytest.mark.parametrize(("role", "statement"), [("logpipe_writer", s) for s in REFUSED_TO_THE_WRITER])
def test_the_writer_may_not_delete_change_or_read_keys(role_urls, role: str, statement: str) -> None:
    with psycopg.connect(role_urls[role], autocommit=True) as conn, pytest.raises(pg_errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_consumer_stores_and_creates_a_day_partition_as_the_writer(
    as_role: AsRole, pg: psycopg.Connection, organization_id: str
) -> None:
    event = make_event(organization_id)
    day = date(1990, 1, 1) + timedelta(days=uuid.uuid4().int % 3000)  # a day no partition holds
    partition = f"log_events_{day:%Y%m%d}"
    try:
        with as_role("logpipe_writer"):
            assert storage.store_events(as_fields([event, event])) == 1
            outcomes.record_dead_letters([(organization_id, uuid.uuid4(), "poison")])
            with postgres.connection() as conn:
                storage.ensure_partition(conn, day)
        stored = pg.execute("SELECT count(*) FROM log_events WHERE organization_id = %s", (organization_id,))
        assert stored.fetchone() == (1,)
        assert pg.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", (partition,)).fetchone() == (
            "logpipe",
        )
    finally:
        pg.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(partition)))
        storage.forget_partition(day)


def test_the_gateway_reads_and_manages_keys_as_the_reader(
    as_role: AsRole, gateway_function, api_request, lambda_context, auth_headers, organization_id: str
) -> None:
    event = make_event(organization_id)
    storage.store_events(as_fields([event]))
    with as_role("logpipe_reader"):
        headers = auth_headers(organization_id)  # the key is created, then looked up, as the reader
        for path in ["/api/logs", f"/api/logs/{event.id}", f"/api/logs/{event.id}/status", "/api/stats"]:
            status, _, body = answer(gateway_function, api_request("GET", path, headers=headers), lambda_context)
            assert status == 200, (path, body)
        create = api_request("POST", "/api/keys", headers=headers, body={"scopes": ["read"]})
        status, _, created = answer(gateway_function, create, lambda_context)
        assert status == 201, created
        revoke = api_request("DELETE", f"/api/keys/{created['id']}", headers=headers)
        assert answer(gateway_function, revoke, lambda_context)[0] == 204

"""PostgreSQL access: a small connection pool per process, created on first use and reused while warm.

`connection()` is the one way to get a connection. The SQL lives with its users: the sink's write path
(logpipe.sink.storage), the read side (logpipe.read.queries), API keys (logpipe.access.key_store) and receipts.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from logpipe.adapters import aws
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError

_TRANSIENT_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


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


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection, returned to the pool afterwards.

    Raises DependencyUnavailableError when PostgreSQL cannot be reached or fails mid-way.
    """
    try:
        with _pool().connection() as conn:
            yield conn
    except pg_errors.ProgramLimitExceeded:
        raise
    except _TRANSIENT_ERRORS as exc:
        raise DependencyUnavailableError(
            "postgresql", f"PostgreSQL unavailable: {exc}", get_settings().retry_after_seconds
        ) from exc


def ping() -> None:
    with _pool().connection() as conn:
        conn.execute("SELECT 1")

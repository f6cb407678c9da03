"""PostgreSQL access: a small connection pool per process, created on first use and reused while warm.

`connection()` is the one way to get a connection. The SQL lives with its users: the sink's write path
(logpipe.sink.storage), the read side (logpipe.read.queries), API keys (logpipe.access.key_store) and receipts.

`database_statement_timeout_seconds`, when set, bounds every statement of the process's connections (a session
setting given when connecting). A caller that answers a client within a bound of its own passes it as
`statement_timeout` (seconds): PostgreSQL stops each statement of that connection after it (QueryTimeoutError,
the query's own cost: retrying it as is would only time out again) and a wait for a lock after
`dependency_timeout_seconds` (DependencyUnavailableError, as when PostgreSQL cannot be reached: another session
holds the table, which passes). Both are set for the transaction only (SET LOCAL), so a connection goes back to
the pool without them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from logpipe.adapters import aws
from logpipe.config import Settings, get_settings
from logpipe.errors import DependencyUnavailableError, QueryTimeoutError

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
        kwargs={"connect_timeout": max(1, int(settings.dependency_timeout_seconds)), **_session_bound(settings)},
        # A warm container may hold a connection the server has since closed; check before use.
        check=ConnectionPool.check_connection,
        name="logpipe",
        open=True,
    )


def _session_bound(settings: Settings) -> dict[str, str]:
    """The connection option that bounds every statement by `database_statement_timeout_seconds`, when set."""
    bound = settings.database_statement_timeout_seconds
    return {} if bound is None else {"options": f"-c statement_timeout={_milliseconds(bound)}"}


@contextmanager
def connection(statement_timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection, returned to the pool afterwards; its statements bounded by `statement_timeout` seconds
    when given.

    Raises DependencyUnavailableError when PostgreSQL cannot be reached or fails mid-way (or a lock is not had in
    time), QueryTimeoutError when a bounded statement runs past its bound.
    """
    settings = get_settings()
    try:
        with _pool().connection() as conn:
            if statement_timeout is not None:
                _bound(conn, statement_timeout, settings.dependency_timeout_seconds)
            yield conn
    except pg_errors.ProgramLimitExceeded:
        raise
    except pg_errors.QueryCanceled as exc:
        if statement_timeout is None:  # canceled by an operator: as if the server had failed it
            raise _unavailable(exc, settings.retry_after_seconds) from exc
        raise QueryTimeoutError(statement_timeout) from exc
    except _TRANSIENT_ERRORS as exc:
        raise _unavailable(exc, settings.retry_after_seconds) from exc


def _bound(conn: psycopg.Connection, statement_timeout: float, lock_timeout: float) -> None:
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
        (_milliseconds(statement_timeout), _milliseconds(lock_timeout)),
    )


def _milliseconds(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"  # 0 would mean no bound


def _unavailable(exc: Exception, retry_after_seconds: int) -> DependencyUnavailableError:
    return DependencyUnavailableError("postgresql", f"PostgreSQL unavailable: {exc}", retry_after_seconds)


def warm() -> None:
    """Create the pool now, at cold start: it opens its first connection in the background, so the first request
    does not pay for it (about 10 ms of CPU, measured; eight fresh instances at once held every one of them)."""
    _pool()


def ping() -> None:
    with _pool().connection() as conn:
        conn.execute("SELECT 1")

"""The connection pool takes its credentials from the database secret when DATABASE_SECRET_ARN is set (moto for
Secrets Manager, the real PostgreSQL): DATABASE_URL alone would be refused."""

import os
import urllib.parse
from collections.abc import Iterator

import pytest

from logpipe.adapters import postgres
from logpipe.config import get_settings

REAL_URL = urllib.parse.urlsplit(os.environ["DATABASE_URL"])


@pytest.fixture
def secret_only_settings(secrets_manager, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    arn = secrets_manager({"username": REAL_URL.username, "password": REAL_URL.password})
    passwordless = REAL_URL._replace(netloc=f"nobody@{REAL_URL.hostname}:{REAL_URL.port}")
    monkeypatch.setenv("DATABASE_URL", urllib.parse.urlunsplit(passwordless))
    monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
    get_settings.cache_clear()
    postgres._pool.cache_clear()
    try:
        yield
    finally:
        postgres._pool().close()
        postgres._pool.cache_clear()
        get_settings.cache_clear()


def test_the_pool_connects_with_the_secrets_credentials(secret_only_settings: None) -> None:
    postgres.ping()
    with postgres._pool().connection() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (REAL_URL.username,)

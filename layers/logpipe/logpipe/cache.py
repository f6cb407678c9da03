"""Redis access: one client per process, created on first use and reused while warm."""

from functools import lru_cache

import redis

from logpipe.config import get_settings


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    settings = get_settings()
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.dependency_timeout_seconds,
        socket_connect_timeout=settings.dependency_timeout_seconds,
        health_check_interval=30,
    )


def ping() -> None:
    if not _client().ping():
        raise RuntimeError("Redis did not answer PING")

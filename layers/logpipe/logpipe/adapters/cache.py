"""Redis access: one client per process, created on first use and reused while warm.

With REDIS_SECRET_ARN set (ElastiCache's user group, template.yaml), every new connection authenticates with the
secret's username and password; without it (a local Redis) connections send no AUTH.
"""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from redis.backoff import NoBackoff
from redis.retry import Retry

from logpipe.adapters import aws
from logpipe.config import Settings, get_settings


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """The process's Redis client; every module that needs Redis uses this one."""
    settings = get_settings()
    credentials = SecretCredentials(settings.redis_secret_arn, settings) if settings.redis_secret_arn else None
    return connect(settings.redis_url, settings.dependency_timeout_seconds, credentials)


class SecretCredentials(redis.CredentialProvider):
    """A secret's username and password, asked for each new connection: the secret is cached for
    SECRETS_MAX_AGE_SECONDS, so a changed password is used without waiting for a cold start."""

    def __init__(self, secret_arn: str, settings: Settings) -> None:
        self._secret_arn = secret_arn
        self._settings = settings

    def get_credentials(self) -> tuple[str, str]:
        try:
            return aws.secret_credentials(self._secret_arn, self._settings)
        except Exception as exc:  # no credentials, no connection: answered like Redis being down (503), fast
            raise redis.ConnectionError("the cache's credentials could not be read") from exc


def connect(url: str, timeout_seconds: float, credentials: redis.CredentialProvider | None = None) -> redis.Redis:
    """A client that fails fast: one immediate retry (a pooled connection gone stale after a Redis restart),
    no backoff. redis-py's default (3 retries, exponential backoff) would hold a request for seconds while
    Redis is down instead of answering 503 (or, for the breaker, falling back to local state) at once."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(NoBackoff(), retries=1),
        credential_provider=credentials,
    )


class ReplylessWriter:
    """Writes no one waits for: a connection of its own on which Redis sends no replies (CLIENT REPLY OFF), so a
    write costs one send and never a round trip on the caller's path.

    For best-effort records only: a write sent on a connection that broke since the last one may be lost (the
    failure shows on the next send, which reconnects once), and a failing command (a wrong type) goes unnoticed.
    Every send starts with CLIENT REPLY OFF (itself unanswered), so a connection redis-py reopens after a failure
    is quiet again from its first write.
    """

    _REPLY_OFF = ("CLIENT", "REPLY", "OFF")

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._connection: redis.connection.ConnectionInterface | None = None

    def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        """Send the commands in one write; raises redis.RedisError when the connection fails."""
        if self._connection is None:
            self._connection = self._pool.make_connection()
        packed = self._connection.pack_commands([self._REPLY_OFF, *commands])
        try:
            self._discard_replies()
            self._connection.send_packed_command(packed, check_health=False)  # a health check waits for a PONG
        except redis.ConnectionError:  # the connection broke since the last send: reconnect once, as the client does
            self._connection.disconnect()
            self._connection.send_packed_command(packed, check_health=False)

    def _discard_replies(self) -> None:
        """Drop whatever Redis answered: nothing, unless the server ignores CLIENT REPLY OFF (a managed Redis that
        refuses the command), whose replies would otherwise pile up unread."""
        while self._connection.can_read(timeout=0):
            try:
                self._connection.read_response()
            except redis.ResponseError:
                continue


def replyless_writer() -> ReplylessWriter:
    """The process's writer, on the same Redis as client()."""
    return _writer_of(client())


@lru_cache(maxsize=1)
def _writer_of(redis_client: redis.Redis) -> ReplylessWriter:
    return ReplylessWriter(redis_client.connection_pool)


def ping() -> None:
    if not client().ping():
        raise RuntimeError("Redis did not answer PING")


class IdempotencyStore(CachePersistenceLayer):
    """Powertools' Redis idempotency layer, keeping the payload-validation hash on completed records.

    Powertools 3.37 rewrites a completed record without that hash, so an identical retry fails validation
    (the same bug was fixed in the TypeScript port: powertools-lambda-typescript#5705).
    """

    def _update_record(self, data_record: DataRecord) -> None:
        mapping = {
            self.data_attr: data_record.response_data,
            self.status_attr: data_record.status,
            self.expiry_attr: data_record.expiry_timestamp,
        }
        if self.payload_validation_enabled:
            mapping[self.validation_key_attr] = data_record.payload_hash
        self.client.set(
            name=data_record.idempotency_key,
            value=self._json_serializer(mapping),
            ex=self._get_expiry_second(data_record.expiry_timestamp),
        )


@lru_cache(maxsize=1)
def idempotency_store() -> IdempotencyStore:
    """Idempotency records live in the same Redis (the client connects on first use)."""
    return IdempotencyStore(client=client())

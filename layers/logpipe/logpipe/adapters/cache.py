"""Redis access: one client per process, created on first use and reused while warm.

A server in cluster mode (ElastiCache Serverless always is) gets a cluster client, found by asking the server once
(`INFO cluster`) when the client is made. Every command logpipe sends names one key, or several keys sharing a
hash tag (`{organization}`), so each goes to the node owning its slot; tests/integration/test_redis_cluster.py
runs them against a local three-node cluster.

With REDIS_SECRET_ARN set (ElastiCache's user group, template.yaml), every new connection authenticates with the
secret's username and password; without it (a local Redis) connections send no AUTH.
"""

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import redis
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from logpipe.adapters import aws
from logpipe.config import Settings, get_settings


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """The process's Redis client; every module that needs Redis uses this one. Raises redis.RedisError when
    Redis cannot be reached (nothing is kept then: the next call tries again)."""
    settings = get_settings()
    credentials = SecretCredentials(settings.redis_secret_arn, settings) if settings.redis_secret_arn else None
    standalone = connect(settings.redis_url, settings.dependency_timeout_seconds, credentials)
    if not standalone.info("cluster").get("cluster_enabled"):
        return standalone
    standalone.close()
    return RedisCluster.from_url(
        settings.redis_url, credential_provider=credentials, **_fail_fast(settings.dependency_timeout_seconds)
    )


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
    """A client of a standalone Redis that fails fast: one immediate retry (a pooled connection gone stale after
    a Redis restart), no backoff. redis-py's default (3 retries, exponential backoff) would hold a request for
    seconds while Redis is down instead of answering 503 (or, for the breaker, falling back to local state) at
    once."""
    return redis.Redis.from_url(
        url, health_check_interval=30, credential_provider=credentials, **_fail_fast(timeout_seconds)
    )


def _fail_fast(timeout_seconds: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "retry": Retry(NoBackoff(), retries=1),
    }


class ReplylessWriter:
    """Writes no one waits for: a connection of its own to each Redis node, on which Redis sends no replies (CLIENT
    REPLY OFF), so a write costs one send per node and never a round trip on the caller's path.

    For best-effort records only: a write sent on a connection that broke since the last one may be lost (the
    failure shows on the next send, which reconnects once), and a failing command (a wrong type, or on a cluster a
    slot that moved to another node) goes unnoticed. Every send starts with CLIENT REPLY OFF (itself unanswered),
    so a connection redis-py reopens after a failure is quiet again from its first write. Each command's first
    argument after its name is its key: it picks the node (`pool_of_key`).
    """

    _REPLY_OFF = ("CLIENT", "REPLY", "OFF")

    def __init__(self, pool_of_key: Callable[[Any], redis.ConnectionPool]) -> None:
        self._pool_of_key = pool_of_key
        self._connections: dict[redis.ConnectionPool, redis.connection.ConnectionInterface] = {}

    def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        """Send the commands, one write per node; raises redis.RedisError when a connection fails."""
        by_pool: dict[redis.ConnectionPool, list[tuple[Any, ...]]] = defaultdict(list)
        for command in commands:
            by_pool[self._pool_of_key(command[1])].append(command)
        for pool, pool_commands in by_pool.items():
            self._send_on(pool, pool_commands)

    def _send_on(self, pool: redis.ConnectionPool, commands: list[tuple[Any, ...]]) -> None:
        connection = self._connections.get(pool)
        if connection is None:
            connection = self._connections[pool] = pool.make_connection()
        packed = connection.pack_commands([self._REPLY_OFF, *commands])
        try:
            self._discard_replies(connection)
            connection.send_packed_command(packed, check_health=False)  # a health check waits for a PONG
        except redis.ConnectionError:  # the connection broke since the last send: reconnect once, as the client does
            connection.disconnect()
            connection.send_packed_command(packed, check_health=False)

    @staticmethod
    def _discard_replies(connection: redis.connection.ConnectionInterface) -> None:
        """Drop whatever Redis answered: nothing, unless the server ignores CLIENT REPLY OFF (a managed Redis that
        refuses the command), whose replies would otherwise pile up unread."""
        while connection.can_read(timeout=0):
            try:
                connection.read_response()
            except redis.ResponseError:
                continue


def replyless_writer() -> ReplylessWriter:
    """The process's writer, on the same Redis as client() (each of its nodes, on a cluster)."""
    return _writer_of(client())


@lru_cache(maxsize=1)
def _writer_of(redis_client: redis.Redis) -> ReplylessWriter:
    if isinstance(redis_client, RedisCluster):
        return ReplylessWriter(
            lambda key: redis_client.get_redis_connection(redis_client.get_node_from_key(key)).connection_pool
        )
    return ReplylessWriter(lambda _key: redis_client.connection_pool)


def warm() -> None:
    """Make the client and open its connection now, at cold start, so the first request does not pay for them
    (6-7 ms of CPU, measured). Redis unreachable now is left to the first request's answer."""
    with contextlib.suppress(redis.RedisError):
        client().ping()


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


class _CurrentClient:
    """client() as Powertools' idempotency layer uses it (get, set, delete), looked up at each call, so the store
    connects on its first record, not when the route is set up."""

    def get(self, name: Any) -> Any:
        return client().get(name)

    def set(self, **arguments: Any) -> Any:
        return client().set(**arguments)

    def delete(self, *names: Any) -> Any:
        return client().delete(*names)


@lru_cache(maxsize=1)
def idempotency_store() -> IdempotencyStore:
    """Idempotency records live in the same Redis."""
    return IdempotencyStore(client=_CurrentClient())

"""Redis access: one client per process, created on first use and reused while warm."""

from functools import lru_cache

import redis
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

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


def client() -> redis.Redis:
    """The process's Redis client, for every module that needs Redis."""
    return _client()


def ping() -> None:
    if not _client().ping():
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
    return IdempotencyStore(client=_client())

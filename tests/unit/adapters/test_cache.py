"""logpipe.adapters.cache's credentials against moto: the cache user's secret, read for each new connection."""

import json
from collections.abc import Callable

import boto3
import pytest
import redis

from logpipe.adapters import cache
from logpipe.config import Settings

SETTINGS = {"kafka_bootstrap_servers": "k:9098", "database_url": "postgresql://db/logpipe", "redis_url": "rediss://c/0"}


@pytest.fixture
def credentials_of(secrets_manager) -> Callable[..., cache.SecretCredentials]:
    def make(secret: object, max_age: int = 300) -> cache.SecretCredentials:
        arn = secrets_manager(secret)
        settings = Settings(**SETTINGS, redis_secret_arn=arn, secrets_max_age_seconds=max_age)
        return cache.SecretCredentials(arn, settings)

    return make


def test_each_connection_gets_the_secrets_username_and_password(credentials_of) -> None:
    credentials = credentials_of({"username": "logpipe", "password": "s3cret"})
    assert credentials.get_credentials() == ("logpipe", "s3cret")
    client = cache.connect("rediss://cache:6379/0", 1.0, credentials)
    assert client.connection_pool.connection_kwargs["credential_provider"] is credentials


def test_a_changed_password_is_used_once_the_secret_cache_expires(credentials_of) -> None:
    credentials = credentials_of({"username": "logpipe", "password": "first"}, max_age=0)
    assert credentials.get_credentials() == ("logpipe", "first")
    new_value = json.dumps({"username": "logpipe", "password": "second"})
    boto3.client("secretsmanager").put_secret_value(SecretId=credentials._secret_arn, SecretString=new_value)
    assert credentials.get_credentials() == ("logpipe", "second")


@pytest.mark.parametrize("secret", [{"username": "logpipe"}, ["logpipe", "pw"], "logpipe:pw"])
def test_an_unusable_secret_fails_like_an_unreachable_cache(credentials_of, secret: object) -> None:
    with pytest.raises(redis.ConnectionError, match="credentials could not be read"):
        credentials_of(secret).get_credentials()

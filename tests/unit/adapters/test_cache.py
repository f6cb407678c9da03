"""logpipe.adapters.cache's credentials against moto: the cache user's secret, read for each new connection."""

import json
from collections.abc import Iterator

import boto3
import pytest
import redis
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from logpipe.adapters import cache
from logpipe.config import Settings

SETTINGS = {"kafka_bootstrap_servers": "k:9098", "database_url": "postgresql://db/logpipe"}


@pytest.fixture(autouse=True)
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    parameters.clear_caches()
    with mock_aws():
        yield
    parameters.clear_caches()


def credentials_of(secret: object, max_age: int = 300) -> cache.SecretCredentials:
    arn = boto3.client("secretsmanager").create_secret(Name="cache-user", SecretString=json.dumps(secret))["ARN"]
    settings = Settings(
        **SETTINGS, redis_url="rediss://cache:6379/0", redis_secret_arn=arn, secrets_max_age_seconds=max_age
    )
    return cache.SecretCredentials(arn, settings)


def test_each_connection_gets_the_secrets_username_and_password() -> None:
    credentials = credentials_of({"username": "logpipe", "password": "s3cret"})
    assert credentials.get_credentials() == ("logpipe", "s3cret")
    client = cache.connect("rediss://cache:6379/0", 1.0, credentials)
    assert client.connection_pool.connection_kwargs["credential_provider"] is credentials


def test_a_changed_password_is_used_once_the_secret_cache_expires() -> None:
    credentials = credentials_of({"username": "logpipe", "password": "first"}, max_age=0)
    assert credentials.get_credentials() == ("logpipe", "first")
    boto3.client("secretsmanager").put_secret_value(
        SecretId="cache-user", SecretString=json.dumps({"username": "logpipe", "password": "second"})
    )
    assert credentials.get_credentials() == ("logpipe", "second")


@pytest.mark.parametrize("secret", [{"username": "logpipe"}, ["logpipe", "pw"], "logpipe:pw"])
def test_an_unusable_secret_fails_like_an_unreachable_cache(secret: object) -> None:
    with pytest.raises(redis.ConnectionError, match="credentials could not be read"):
        credentials_of(secret).get_credentials()

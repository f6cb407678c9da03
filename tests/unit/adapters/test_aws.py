"""logpipe.adapters.aws against moto: database credentials from Secrets Manager (cached, through AWS_ENDPOINT_URL too)
and the MSK IAM settings of the Kafka clients."""

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from moto.server import ThreadedMotoServer

from logpipe.adapters import aws
from logpipe.config import Settings

BASE = {"kafka_bootstrap_servers": "k:9098", "redis_url": "rediss://cache:6379/0"}
DATABASE_URL = "postgresql://placeholder@db.example:5432/logpipe?sslmode=require"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region; Powertools' providers (and their boto3 clients) start fresh each test."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    parameters.clear_caches()
    yield
    parameters.clear_caches()


def settings_for(secret_arn: str | None, **extra: object) -> Settings:
    return Settings(**BASE, database_url=DATABASE_URL, database_secret_arn=secret_arn, **extra)


def create_secret(name: str, value: object) -> str:
    return boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


def test_without_a_secret_the_url_is_used_as_is() -> None:
    assert aws.database_url(settings_for(None)) == DATABASE_URL


@mock_aws
def test_the_secrets_credentials_replace_the_urls() -> None:
    arn = create_secret("db-credentials", {"username": "app", "password": "p@ss w/rd:%", "host": "ignored"})
    url = urllib.parse.urlsplit(aws.database_url(settings_for(arn)))
    assert (url.username, urllib.parse.unquote(url.password or "")) == ("app", "p@ss w/rd:%")
    assert (url.hostname, url.port, url.path, url.query) == ("db.example", 5432, "/logpipe", "sslmode=require")


@mock_aws
@pytest.mark.parametrize(("max_age", "after_rotation"), [(300, "first"), (0, "second")])
def test_the_secret_is_cached_for_its_max_age(max_age: int, after_rotation: str) -> None:
    arn = create_secret(f"rotating-{max_age}", {"username": "app", "password": "first"})
    settings = settings_for(arn, secrets_max_age_seconds=max_age)
    assert "first" in aws.database_url(settings)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "app", "password": "second"})
    )
    assert urllib.parse.urlsplit(aws.database_url(settings)).password == after_rotation


@mock_aws
@pytest.mark.parametrize("value", [{"username": "app"}, ["app", "pw"], {"password": "pw"}])
def test_a_secret_without_credentials_is_refused(value: object) -> None:
    arn = create_secret(f"bad-{abs(hash(json.dumps(value)))}", value)
    with pytest.raises(aws.SecretFormatError):
        aws.database_url(settings_for(arn))


def test_the_secret_is_read_through_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """LocalStack's path: nothing is mocked in-process; only AWS_ENDPOINT_URL leads to the secret."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        arn = create_secret("served", {"username": "svc", "password": "over-http"})
        assert urllib.parse.urlsplit(aws.database_url(settings_for(arn))).password == "over-http"
    finally:
        server.stop()


def test_plaintext_kafka_adds_nothing() -> None:
    assert aws.kafka_client_config(settings_for(None)) == {}


def test_iam_kafka_uses_sasl_oauthbearer_with_signed_tokens() -> None:
    config = aws.kafka_client_config(settings_for(None, kafka_auth="iam"))
    assert (config["security.protocol"], config["sasl.mechanisms"]) == ("SASL_SSL", "OAUTHBEARER")
    token, expires_at = config["oauth_cb"]("")
    assert token and "." not in token[:10]  # base64url of a presigned kafka-cluster:Connect URL
    decoded = urllib.parse.urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    assert decoded.hostname == "kafka.eu-west-1.amazonaws.com"
    assert "Action=kafka-cluster%3AConnect" in decoded.query
    assert time.time() < expires_at <= time.time() + 3600

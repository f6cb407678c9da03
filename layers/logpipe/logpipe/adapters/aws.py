"""AWS access: database and cache credentials from Secrets Manager and MSK IAM tokens for the Kafka clients.

boto3 (under Powertools Parameters and the MSK signer) honours ``AWS_ENDPOINT_URL``, so the same code runs
against LocalStack or moto. Nothing here is called unless the settings ask for it.
"""

import urllib.parse
from typing import Any

from logpipe.config import Settings


class SecretFormatError(RuntimeError):
    """A credentials secret is not a JSON object with a username and a password."""


def database_url(settings: Settings) -> str:
    """DATABASE_URL with the credentials of DATABASE_SECRET_ARN when set (fetched once per max age), else as is."""
    if not settings.database_secret_arn:
        return settings.database_url
    username, password = secret_credentials(settings.database_secret_arn, settings)
    parts = urllib.parse.urlsplit(settings.database_url)
    credentials = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}"
    netloc = f"{credentials}@{parts.netloc.rpartition('@')[2]}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def secret_credentials(secret_arn: str, settings: Settings) -> tuple[str, str]:
    """(username, password) of a credentials secret (database, cache), cached for SECRETS_MAX_AGE_SECONDS."""
    from aws_lambda_powertools.utilities import parameters  # boto3: imported only where a secret is configured

    secret = parameters.get_secret(secret_arn, transform="json", max_age=settings.secrets_max_age_seconds)
    if not isinstance(secret, dict) or not secret.get("username") or not secret.get("password"):
        raise SecretFormatError("a credentials secret must be a JSON object with username and password")
    return secret["username"], secret["password"]


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka settings every Kafka client of logpipe adds to its own: authentication, when configured."""
    if settings.kafka_auth == "none":
        return {}
    return {"security.protocol": "SASL_SSL", "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": msk_iam_token}


def msk_iam_token(_oauthbearer_config: str) -> tuple[str, float]:
    """confluent-kafka's oauth_cb: an MSK IAM token signed with the function's credentials, and its expiry (s)."""
    import boto3
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    region = boto3.session.Session().region_name
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return token, expiry_ms / 1000

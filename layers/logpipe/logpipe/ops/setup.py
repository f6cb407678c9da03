"""Setup of the backing services: the topics the template names, the schema migrations and the database roles' logins.

The one implementation of topic creation, used three ways:
- on AWS by the deploy-time custom resource (functions/setup, `run`): topics, migrations, then each database role's
  password from its secret (logpipe.ops.roles);
- locally by `local/services.py` and by docker compose's `setup` service:
  `python -m logpipe.ops.setup topics --bootstrap-servers HOST:PORT log-events:6 log-events-dlq:1`.

Missing topics are created, topics with fewer partitions than asked are grown (Kafka cannot shrink one), and a
broker that just started (answering "not controller" or timing out for a moment) is retried for a minute.
"""

import argparse
import sys
import time
from typing import Any

import boto3
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from pydantic import BaseModel, Field

from logpipe.adapters import aws
from logpipe.config import get_settings
from logpipe.observability import logger
from logpipe.ops.migrate import apply_migrations
from logpipe.ops.roles import grant_logins

ADMIN_TIMEOUT_S = 60
BROKER_DEFAULT = -1  # replication factor: the cluster's default (3 on MSK Serverless, 1 on a single local broker)


class Topic(BaseModel):
    name: str = Field(alias="Name", min_length=1)
    partitions: int = Field(alias="Partitions", ge=1)


class DatabaseRole(BaseModel):
    role: str = Field(alias="Role", min_length=1)
    secret_arn: str = Field(alias="SecretArn", min_length=1)


class Request(BaseModel):
    """The custom resource's properties (template.yaml: KafkaSetup)."""

    cluster_arn: str = Field(default="", alias="ClusterArn")
    bootstrap_servers: str = Field(default="", alias="BootstrapServers")
    topics: list[Topic] = Field(alias="Topics", min_length=1)
    database_roles: list[DatabaseRole] = Field(default=[], alias="DatabaseRoles")


def run(request: Request) -> dict[str, str]:
    bootstrap = request.bootstrap_servers or iam_bootstrap_brokers(request.cluster_arn)
    settings = get_settings()
    ensure_topics(bootstrap, request.topics, aws.kafka_client_config(settings))
    owner_url = aws.database_url(settings)
    applied = apply_migrations(owner_url)
    logins = grant_logins(owner_url, {role.role: role_password(role) for role in request.database_roles})
    logger.info(
        "setup done", extra={"bootstrap_servers": bootstrap, "migrations_applied": applied, "role_logins": logins}
    )
    return {"BootstrapServers": bootstrap}


def role_password(role: DatabaseRole) -> str:
    """The password of the role's secret, whose username must be the role (the functions log in with it)."""
    username, password = aws.secret_credentials(role.secret_arn, get_settings())
    if username != role.role:
        raise ValueError(f"the secret for database role {role.role} names the user {username}")
    return password


def iam_bootstrap_brokers(cluster_arn: str) -> str:
    brokers = boto3.client("kafka").get_bootstrap_brokers(ClusterArn=cluster_arn)
    return brokers["BootstrapBrokerStringSaslIam"]


def ensure_topics(bootstrap: str, topics: list[Topic], client_config: dict[str, Any]) -> list[str]:
    """Create missing topics and grow ones with fewer partitions than asked; returns what changed."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **client_config})
    existing = _partition_counts(admin)
    changed = _create(admin, [topic for topic in topics if topic.name not in existing])
    grow = [NewPartitions(t.name, t.partitions) for t in topics if existing.get(t.name, t.partitions) < t.partitions]
    if grow:
        for name, future in admin.create_partitions(grow, request_timeout=ADMIN_TIMEOUT_S).items():
            future.result(timeout=ADMIN_TIMEOUT_S)
            changed.append(f"{name} grown")
    for topic in topics:
        if existing.get(topic.name, topic.partitions) > topic.partitions:
            logger.warning(
                "topic has more partitions than asked; Kafka cannot shrink a topic", extra={"topic": topic.name}
            )
    logger.info("topics ready", extra={"topics": [topic.name for topic in topics], "changed": changed})
    return changed


def _partition_counts(admin: AdminClient) -> dict[str, int]:
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        try:
            metadata = admin.list_topics(timeout=10)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}


def _create(admin: AdminClient, missing: list[Topic]) -> list[str]:
    created: list[str] = []
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while missing:
        new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=BROKER_DEFAULT) for t in missing]
        retry = []
        for topic, future in zip(missing, admin.create_topics(new, request_timeout=30).values(), strict=True):
            try:
                future.result(timeout=40)
                created.append(f"{topic.name} created")
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if not (error.retriable() and time.monotonic() < deadline):
                    raise
                retry.append(topic)
        missing = retry
        if missing:
            time.sleep(1)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logpipe.ops.setup", description="Create or grow Kafka topics.")
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("topics", help="create missing topics, grow ones with fewer partitions")
    topics.add_argument("--bootstrap-servers", required=True)
    topics.add_argument("topic", nargs="+", help="NAME:PARTITIONS")
    args = parser.parse_args(argv)
    wanted = []
    for spec in args.topic:
        name, _, partitions = spec.rpartition(":")
        if not name or not partitions.isdigit():
            parser.error(f"{spec!r} is not NAME:PARTITIONS")
        wanted.append(Topic(Name=name, Partitions=int(partitions)))
    changed = ensure_topics(args.bootstrap_servers, wanted, {})
    described = ", ".join(f"{t.name} ({t.partitions})" for t in wanted)
    print(f"topics: {'; '.join(changed) if changed else 'present'}: {described}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

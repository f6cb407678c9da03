"""Deploy-time setup of the backing services: the topics the template names, and the schema migrations."""

import boto3
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from pydantic import BaseModel, Field

from logpipe.adapters import aws
from logpipe.config import get_settings
from logpipe.observability import logger
from logpipe.ops.migrate import apply_migrations

ADMIN_TIMEOUT_S = 60
BROKER_DEFAULT = -1  # replication factor: the cluster's default (3 on MSK Serverless)


class Topic(BaseModel):
    name: str = Field(alias="Name", min_length=1)
    partitions: int = Field(alias="Partitions", ge=1)


class Request(BaseModel):
    """The custom resource's properties (template.yaml: KafkaSetup)."""

    cluster_arn: str = Field(default="", alias="ClusterArn")
    bootstrap_servers: str = Field(default="", alias="BootstrapServers")
    topics: list[Topic] = Field(alias="Topics", min_length=1)


def run(request: Request) -> dict[str, str]:
    bootstrap = request.bootstrap_servers or iam_bootstrap_brokers(request.cluster_arn)
    ensure_topics(bootstrap, request.topics)
    applied = apply_migrations(aws.database_url(get_settings()))
    logger.info("setup done", extra={"bootstrap_servers": bootstrap, "migrations_applied": applied})
    return {"BootstrapServers": bootstrap}


def iam_bootstrap_brokers(cluster_arn: str) -> str:
    brokers = boto3.client("kafka").get_bootstrap_brokers(ClusterArn=cluster_arn)
    return brokers["BootstrapBrokerStringSaslIam"]


def ensure_topics(bootstrap: str, topics: list[Topic]) -> None:
    """Create missing topics and grow ones with fewer partitions than asked (Kafka cannot shrink a topic)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **aws.kafka_client_config(get_settings())})
    existing = {
        name: len(metadata.partitions) for name, metadata in admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics.items()
    }
    missing = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=BROKER_DEFAULT)
        for t in topics
        if t.name not in existing
    ]
    grow = [NewPartitions(t.name, t.partitions) for t in topics if existing.get(t.name, t.partitions) < t.partitions]
    futures = {}
    if missing:
        futures |= admin.create_topics(missing, request_timeout=ADMIN_TIMEOUT_S)
    if grow:
        futures |= admin.create_partitions(grow, request_timeout=ADMIN_TIMEOUT_S)
    for name, future in futures.items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        logger.info("topic ready", extra={"topic": name})

"""The deploy-time setup against the real broker and database: topics created, grown, migrations applied."""

import os
import uuid

from confluent_kafka.admin import AdminClient

from logpipe.ops import setup

BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP_SERVERS"]


def partitions(name: str) -> int:
    return len(AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=10).topics[name].partitions)


def test_setup_creates_then_grows_the_topics_and_migrates() -> None:
    events, dead = f"setup-events-{uuid.uuid4().hex[:8]}", f"setup-dlq-{uuid.uuid4().hex[:8]}"
    request = {
        "BootstrapServers": BOOTSTRAP,
        "Topics": [{"Name": events, "Partitions": "2"}, {"Name": dead, "Partitions": 1}],
    }
    assert setup.run(setup.Request.model_validate(request)) == {"BootstrapServers": BOOTSTRAP}
    assert (partitions(events), partitions(dead)) == (2, 1)
    request["Topics"][0]["Partitions"] = "3"  # an update asking for more partitions grows the topic
    setup.run(setup.Request.model_validate(request))
    assert (partitions(events), partitions(dead)) == (3, 1)
    setup.run(setup.Request.model_validate(request))  # again: nothing to do, no error

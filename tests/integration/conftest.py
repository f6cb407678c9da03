"""Integration fixtures: real Kafka, PostgreSQL and Redis, as started by `local/services.py up`."""

import socket
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from logpipe.adapters import cache
from logpipe.config import Settings, get_settings
from logpipe.read import health


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = get_settings()
    try:
        with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1 FROM log_events LIMIT 1")
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL with migrations is required (run `make test` or `local/services.py up`): {exc}")
    return settings


@pytest.fixture
def pg(settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def organization_id() -> str:
    """A fresh tenant per test, so tests never see each other's rows."""
    return f"it-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api_key(organization_id: str, auth_headers) -> str:
    """A real key of the test's organization with every scope (sample /api events carry it)."""
    return auth_headers(organization_id)["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def read(api_request, gateway_function, lambda_context, auth_headers, organization_id: str):
    """GET a gateway route with a read and admin key of the test's organization: (status, headers, body)."""
    from tests.integration.gateway_helpers import answer

    headers = auth_headers(organization_id, "read,admin")

    def get(path: str, **query: str) -> tuple[int, dict, dict]:
        return answer(gateway_function, api_request("GET", path, headers=headers, query=query or None), lambda_context)

    return get


@pytest.fixture
def acme_headers(auth_headers) -> dict[str, str]:
    """An ingest key of acme: the tenant the files in events/ and tests/hostile_inputs.py name."""
    return {"authorization": auth_headers("acme", "ingest")["Authorization"]}


def _end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    ends = []
    for partition in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        ends.append(TopicPartition(topic, partition, high))
    return ends


class TopicTail:
    """Reads what lands on a topic after the moment it was created."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": f"it-tail-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign(_end_offsets(self.consumer, topic))

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 20.0) -> Message | None:
        """The first message after the tail was opened that matches `predicate`, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.consumer.poll(0.5)
            if message is None or (message.error() and message.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert message.error() is None, message.error()
            if predicate(message):
                return message
        return None

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def tail(settings: Settings) -> Iterator[Callable[[str], TopicTail]]:
    tails: list[TopicTail] = []

    def open_tail(topic: str) -> TopicTail:
        tails.append(TopicTail(settings, topic))
        return tails[-1]

    yield open_tail
    for opened in tails:
        opened.close()


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point Redis at a port nothing listens on: fresh settings, and a fresh client (the idempotency store's too)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    get_settings.cache_clear()
    cache.client.cache_clear()
    monkeypatch.setattr(health, "_last_report", None)
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    cache.client.cache_clear()

import copy

import psycopg
import pytest
from aws_lambda_powertools.utilities.kafka import ConsumerRecords, SchemaConfig

from logpipe import consume
from logpipe.models import LogEvent

SCHEMA = SchemaConfig(value_schema_type="JSON", value_output_serializer=LogEvent)


class FakeStore:
    """Stands in for logpipe.db: remembers ids and refuses events whose message says so."""

    def __init__(self) -> None:
        self.ids: set = set()

    def store_events(self, events: list[LogEvent]) -> int:
        if any(event.message == "unstorable" for event in events):
            raise psycopg.DataError("invalid byte sequence")
        new = {event.id for event in events} - self.ids
        self.ids |= new
        return len(new)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(consume.db, "store_events", fake.store_events)
    return fake


@pytest.fixture
def dead_letters(monkeypatch: pytest.MonkeyPatch) -> list:
    published: list = []
    monkeypatch.setattr(consume.kafka, "publish_dead_letters", published.extend)
    return published


def records(event: dict):
    return ConsumerRecords(event, schema_config=SCHEMA).records


def test_stores_every_valid_record(sample_event, store: FakeStore, dead_letters: list) -> None:
    outcome = consume.process_batch(records(sample_event("consumer_msk_batch")))
    assert (outcome.received, outcome.stored, outcome.duplicates, outcome.dead_lettered) == (2, 2, 0, 0)
    assert dead_letters == []


def test_redelivered_batch_counts_duplicates_not_new_rows(sample_event, store: FakeStore, dead_letters: list) -> None:
    consume.process_batch(records(sample_event("consumer_msk_batch")))
    outcome = consume.process_batch(records(sample_event("consumer_msk_batch")))
    assert (outcome.stored, outcome.duplicates) == (0, 2)


def test_poison_records_go_to_the_dead_letter_topic_with_their_origin(
    sample_event, store: FakeStore, dead_letters: list
) -> None:
    outcome = consume.process_batch(records(sample_event("consumer_msk_batch_with_poison")))
    assert (outcome.received, outcome.stored, outcome.dead_lettered) == (3, 1, 2)
    assert [(letter.reason, letter.source_offset) for letter in dead_letters] == [
        ("undecodable", 103),
        ("undecodable", 104),
    ]
    assert dead_letters[0].value == b"{not json"
    headers = dict(dead_letters[0].headers())
    assert headers["x-dlq-source-topic"] == b"log-events"
    assert headers["x-dlq-source-partition"] == b"0"
    assert headers["x-dlq-attempts"] == b"1"


def test_a_row_the_database_refuses_is_isolated_and_dead_lettered(
    sample_event, store: FakeStore, dead_letters: list
) -> None:
    import base64
    import json

    event = sample_event("consumer_msk_batch")
    second = event["records"]["log-events-0"][1]
    value = json.loads(base64.b64decode(second["value"]))
    second["value"] = base64.b64encode(json.dumps({**value, "message": "unstorable"}).encode()).decode()

    outcome = consume.process_batch(records(event))
    assert (outcome.stored, outcome.dead_lettered) == (1, 1)
    assert dead_letters[0].reason == "unstorable"
    assert dead_letters[0].source_offset == 101


def test_a_database_outage_fails_the_whole_batch(sample_event, monkeypatch, dead_letters: list) -> None:
    from logpipe.errors import DependencyUnavailableError

    def unavailable(_events):
        raise DependencyUnavailableError("postgresql", "PostgreSQL unavailable", retry_after_seconds=5)

    monkeypatch.setattr(consume.db, "store_events", unavailable)
    with pytest.raises(DependencyUnavailableError):
        consume.process_batch(records(sample_event("consumer_msk_batch")))
    assert dead_letters == []


def test_a_batch_reports_the_seed_metrics_and_end_to_end_latency(sample_event, store: FakeStore, dead_letters) -> None:
    consume.metrics.clear_metrics()
    consume.process_batch(records(sample_event("consumer_msk_batch_with_poison")))

    emitted = copy.deepcopy(consume.metrics.metric_set)
    consume.metrics.clear_metrics()
    assert emitted["log_events_processed_total"]["Value"] == [1.0]
    assert emitted["log_events_errors_total"]["Value"] == [2.0]
    assert emitted["log_events_dead_lettered_total"]["Value"] == [2.0]
    assert emitted["log_event_processing_time"]["Unit"] == "Milliseconds"
    assert emitted["log_event_end_to_end_latency"]["Value"][0] >= 0

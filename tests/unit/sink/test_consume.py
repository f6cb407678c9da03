import base64
import copy
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.kafka import ConsumerRecords
from pydantic import ValidationError

from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import LogEvent
from logpipe.sink import consume, storage

WRITER = "test-consumer"


class FakeStore:
    """Stands in for the PostgreSQL adapter: remembers (organization, id) pairs, refuses events whose message says
    so."""

    def __init__(self) -> None:
        self.keys: set = set()
        self.calls = 0

    def store_events(self, events: Iterable[storage.EventFields]) -> int:
        events = list(events)  # the consumer's decoding iterator, consumed whole as store_events does
        self.calls += 1
        if any(event["message"] == "unstorable" for event in events):
            raise storage.UnstorableRowsError("DataError: invalid byte sequence")
        new = {(event["organization_id"], event["id"]) for event in events} - self.keys
        self.keys |= new
        return len(new)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(consume.storage, "store_events", fake.store_events)
    return fake


@pytest.fixture
def dead_letters(monkeypatch: pytest.MonkeyPatch) -> list:
    published: list = []
    monkeypatch.setattr(consume.deadletter, "publish", published.extend)
    return published


def process(event: dict) -> consume.BatchOutcome:
    return consume.process_batch(ConsumerRecords(event).records, get_settings(), WRITER)


def event_value(**overrides) -> bytes:
    now = datetime.now(UTC)
    value = {
        "id": str(uuid.uuid4()),
        "organizationId": "acme",
        "level": "INFO",
        "message": "hello",
        "source": "unit",
        "timestamp": now.isoformat(),
        "receivedAt": now.isoformat(),
        **overrides,
    }
    return json.dumps(value).encode()


def msk_event(values: list[bytes | None]) -> dict:
    """An MSK batch on partition 0; None is a tombstone (Lambda omits its value)."""
    records = []
    for offset, value in enumerate(values):
        record = {"topic": "log-events", "partition": 0, "offset": offset, "timestamp": 0, "headers": []}
        if value is not None:
            record["value"] = base64.b64encode(value).decode()
        records.append(record)
    return {"eventSource": "aws:kafka", "bootstrapServers": "b:9092", "records": {"log-events-0": records}}


def test_stores_every_valid_record(sample_event, store: FakeStore, dead_letters: list) -> None:
    outcome = process(sample_event("consumer_msk_batch"))
    assert (outcome.received, outcome.stored, outcome.duplicates, outcome.dead_lettered) == (2, 2, 0, 0)
    assert dead_letters == []


def test_redelivered_batch_counts_duplicates_not_new_rows(sample_event, store: FakeStore, dead_letters: list) -> None:
    process(sample_event("consumer_msk_batch"))
    outcome = process(sample_event("consumer_msk_batch"))
    assert (outcome.stored, outcome.duplicates) == (0, 2)


def test_poison_records_go_to_the_dead_letter_topic_with_their_origin(
    sample_event, store: FakeStore, dead_letters: list
) -> None:
    outcome = process(sample_event("consumer_msk_batch_with_poison"))
    assert (outcome.received, outcome.stored, outcome.dead_lettered) == (4, 1, 3)
    assert [(letter.reason, letter.source_offset) for letter in dead_letters] == [
        ("undecodable", 103),
        ("undecodable", 104),
        ("tombstone", 105),
    ]
    assert dead_letters[0].value == b"{not json"
    headers = dict(dead_letters[0].headers())
    assert headers["x-dlq-source-topic"] == b"log-events"
    assert headers["x-dlq-source-partition"] == b"0"
    assert headers["x-dlq-attempts"] == b"1"
    assert headers["x-dlq-writer"] == WRITER.encode()


@pytest.mark.parametrize(
    ("poison", "reason", "error"),
    [
        (None, "tombstone", "tombstone"),
        (b"\xff\xfe not utf-8", "undecodable", "ValidationError"),
        (event_value(message="\\ud800 lone").replace(b"\\\\ud800", b"\\ud800"), "undecodable", "hex escape"),
        (event_value(level="LOUD"), "undecodable", "level"),
        (event_value(timestamp="2001-01-01T00:00:00+00:00"), "expired", "retention"),
    ],
    ids=["tombstone", "invalid-utf8", "lone-surrogate", "schema", "expired"],
)
def test_a_poison_record_in_the_middle_is_dead_lettered_and_its_neighbours_stored(
    poison: bytes | None, reason: str, error: str, store: FakeStore, dead_letters: list
) -> None:
    outcome = process(msk_event([event_value(), poison, event_value()]))

    assert (outcome.received, outcome.stored, outcome.dead_lettered) == (3, 2, 1)
    [letter] = dead_letters
    assert (letter.reason, letter.source_offset, letter.value) == (reason, 1, poison)
    assert error in letter.error


@pytest.mark.parametrize(
    "value", ["e30=!!", "e30", "=e30=", "é30="], ids=["junk", "unpadded", "leading-pad", "non-ascii"]
)
def test_a_value_that_is_not_strict_base64_is_dead_lettered(value: str, store: FakeStore, dead_letters: list) -> None:
    event = msk_event([event_value(), b"{}", event_value()])
    event["records"]["log-events-0"][1]["value"] = value  # "e30=" is base64 for "{}"

    outcome = process(event)

    assert (outcome.received, outcome.stored, outcome.dead_lettered) == (3, 2, 1)
    [letter] = dead_letters
    assert (letter.reason, letter.source_offset) == ("undecodable", 1)
    assert "not base64" in letter.error


def test_rows_the_database_refuses_are_isolated_by_bisection(store: FakeStore, dead_letters: list) -> None:
    values = [event_value() for _ in range(64)]
    values[37] = event_value(message="unstorable")

    outcome = process(msk_event(values))

    assert (outcome.stored, outcome.dead_lettered) == (63, 1)
    assert [(letter.reason, letter.source_offset) for letter in dead_letters] == [("unstorable", 37)]
    assert store.calls <= 1 + 2 * 6  # the whole batch, then two halves per level down to the bad row


def test_a_database_outage_fails_the_whole_batch(sample_event, monkeypatch, dead_letters: list) -> None:
    def unavailable(_events):
        raise DependencyUnavailableError("postgresql", "PostgreSQL unavailable", retry_after_seconds=5)

    monkeypatch.setattr(consume.storage, "store_events", unavailable)
    with pytest.raises(DependencyUnavailableError):
        process(sample_event("consumer_msk_batch"))
    assert dead_letters == []


def test_dead_letters_kafka_refuses_come_back_as_failed_records(sample_event, store: FakeStore, monkeypatch) -> None:
    def refused(_letters):
        raise DependencyUnavailableError("kafka", "not acknowledged", retry_after_seconds=5)

    monkeypatch.setattr(consume.deadletter, "publish", refused)
    outcome = process(sample_event("consumer_msk_batch_with_poison"))

    assert (outcome.stored, outcome.dead_lettered) == (1, 0)
    assert outcome.failed_records == [consume.RecordPosition("log-events", 0, offset) for offset in (103, 104, 105)]


def test_a_replayed_record_that_fails_again_keeps_its_replay_count(store: FakeStore, dead_letters: list) -> None:
    event = msk_event([event_value(level="LOUD")])
    event["records"]["log-events-0"][0]["headers"] = [{"x-dlq-replay-count": list(b"2")}]
    process(event)
    assert dict(dead_letters[0].headers())["x-dlq-replay-count"] == b"2"


def test_the_partition_day_is_the_utc_day() -> None:
    assert storage.utc_day(datetime.fromisoformat("2026-11-27T23:30:00-05:00")).isoformat() == "2026-11-28"
    assert storage.utc_day(datetime.fromisoformat("2026-11-28T00:30:00+02:00")).isoformat() == "2026-11-27"
    assert storage.utc_day(datetime(2026, 11, 27, 23, 59)).isoformat() == "2026-11-27"  # naive: taken as UTC


def test_a_batch_reports_the_seed_metrics_and_end_to_end_latency(sample_event, store: FakeStore, dead_letters) -> None:
    consume.metrics.clear_metrics()
    process(sample_event("consumer_msk_batch_with_poison"))

    emitted = copy.deepcopy(consume.metrics.metric_set)
    consume.metrics.clear_metrics()
    assert emitted["log_events_processed_total"]["Value"] == [1.0]
    assert emitted["log_events_errors_total"]["Value"] == [3.0]
    assert emitted["log_events_dead_lettered_total"]["Value"] == [3.0]
    assert emitted["log_event_processing_time"]["Unit"] == "Milliseconds"
    assert emitted["log_event_end_to_end_latency"]["Value"][0] >= 0


@pytest.mark.parametrize(
    "value",
    [
        event_value(),
        event_value(attributes={"a": 1, "b": [True, None, 2.5]}, traceId="t" * 32, spanId="s" * 16),
        # field names as well as aliases, a time without an offset
        event_value().replace(b'"organizationId"', b'"organization_id"').replace(b'"receivedAt"', b'"received_at"'),
        event_value(receivedAt="2026-01-01T00:00:00"),
        event_value(timestamp="2026-01-01T23:30:00-05:00"),
        event_value(level="warning"),
        event_value(id="not-a-uuid"),
        event_value(attributes=[1]),
        b'{"id": 1}',
        b"[]",
        b"{not json",
    ],
)
def test_a_value_is_checked_as_log_event_checks_it(value: bytes) -> None:
    """The sink's plain-dict validation is LogEvent's own: the same fields and values, the same errors (where and
    what: the dead letter's x-dlq-error)."""
    try:
        expected = LogEvent.model_validate_json(value).model_dump()
    except ValidationError as exc:
        with pytest.raises(ValidationError) as refused:
            consume._EVENT_FIELDS.validate_json(value)
        assert [(e["loc"], e["msg"]) for e in refused.value.errors()] == [(e["loc"], e["msg"]) for e in exc.errors()]
    else:
        assert consume._EVENT_FIELDS.validate_json(value) == expected


def test_settled_ids_leave_redis_with_their_receipt_times(monkeypatch: pytest.MonkeyPatch, store: FakeStore) -> None:
    settled: list = []
    monkeypatch.setattr(
        consume.accepted,
        "forget_settled",
        lambda events, settings: settled.extend((e.organization_id, e.id, e.received_at) for e in events),
    )
    values = [event_value(organizationId=f"org-{n}", receivedAt=f"2026-01-0{n}T00:00:00+00:00") for n in (1, 2)]
    process(msk_event([*values, b"{not json"]))
    assert settled == [
        (f"org-{n}", uuid.UUID(json.loads(value)["id"]), datetime(2026, 1, n, tzinfo=UTC))
        for n, value in zip((1, 2), values, strict=True)
    ]


def test_events_reach_the_store_while_the_batch_is_decoded(monkeypatch: pytest.MonkeyPatch, dead_letters: list) -> None:
    """PostgreSQL inserts a row while the next record is decoded: the store gets each event as soon as it is
    decoded, not the batch once every record is."""
    decoded_when_stored: list[int] = []
    decoding = consume._event

    def counted(*args):
        counted.calls += 1
        return decoding(*args)

    counted.calls = 0
    monkeypatch.setattr(consume, "_event", counted)

    def store_events(events) -> int:
        for _ in events:
            decoded_when_stored.append(counted.calls)
        return len(decoded_when_stored)

    monkeypatch.setattr(consume.storage, "store_events", store_events)
    outcome = process(msk_event([event_value(), b"{not json", event_value(), event_value()]))
    assert decoded_when_stored == [1, 3, 4]
    assert (outcome.stored, outcome.dead_lettered) == (3, 1)


def test_a_batch_of_poison_alone_never_asks_postgresql(monkeypatch: pytest.MonkeyPatch, dead_letters: list) -> None:
    def no_database(*args, **kwargs):
        raise AssertionError("PostgreSQL asked for a batch without a storable event")

    monkeypatch.setattr(storage.postgres, "connection", no_database)
    outcome = process(msk_event([b"{not json", None]))
    assert (outcome.received, outcome.stored, outcome.dead_lettered) == (2, 0, 2)

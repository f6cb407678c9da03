"""The sink against the real services: tenant-safe exactly-once, poison isolation, retention, replay."""

import base64
import json
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from logpipe.config import Settings
from logpipe.ops import maintenance, replay
from logpipe.receipts import outcomes
from logpipe.sink import deadletter, storage
from logpipe.sink.deadletter import DeadLetter
from tests.integration.stored_events import NOW, as_fields, make_event


def stored_ids(pg: psycopg.Connection, organization_id: str) -> list[str]:
    return [
        row[0]
        for row in pg.execute(
            "SELECT id::text FROM log_events WHERE organization_id = %s ORDER BY id", (organization_id,)
        ).fetchall()
    ]


# ------------------------------------------------------------------------------------------ exactly once
def test_two_organizations_with_the_same_id_are_both_stored(settings, pg, organization_id: str) -> None:
    other = f"{organization_id}-other"
    shared = uuid.uuid4()
    assert storage.store_events(as_fields([make_event(organization_id, id=shared)])) == 1
    assert storage.store_events(as_fields([make_event(other, id=shared)])) == 1  # not taken for a duplicate
    assert storage.store_events(as_fields([make_event(other, id=shared, message="again")])) == 0
    assert stored_ids(pg, organization_id) == stored_ids(pg, other) == [str(shared)]


def test_the_first_of_two_copies_in_one_batch_wins(settings, pg, organization_id: str) -> None:
    event_id = uuid.uuid4()
    first = make_event(organization_id, id=event_id, message="first", timestamp=NOW - timedelta(hours=1))
    second = make_event(organization_id, id=event_id, message="second")
    assert storage.store_events(as_fields([first, second])) == 1
    row = pg.execute(
        "SELECT message, occurred_at FROM log_events WHERE organization_id = %s", (organization_id,)
    ).fetchone()
    ids_row = pg.execute("SELECT occurred_at FROM log_event_ids WHERE organization_id = %s", (organization_id,))
    assert row == ("first", first.timestamp)
    assert ids_row.fetchone() == (first.timestamp,)  # both tables agree on which copy won


# ------------------------------------------------------------------------------------------------ poison
def record(offset: int, value: bytes | None, key: bytes = b"acme") -> dict:
    rec = {
        "topic": "log-events",
        "partition": 0,
        "offset": offset,
        "timestamp": 0,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(key).decode(),
        "headers": [],
    }
    if value is not None:
        rec["value"] = base64.b64encode(value).decode()
    return rec


def event_json(organization_id: str, **overrides) -> bytes:
    return make_event(organization_id, **overrides).model_dump_json(by_alias=True).encode()


def test_each_kind_of_poison_in_the_middle_of_a_batch_is_dead_lettered_and_the_rest_stored(
    settings, consumer_function, lambda_context, pg, tail, organization_id: str
) -> None:
    lone_surrogate = event_json(organization_id, message="SURROGATE").replace(b"SURROGATE", b"\\udc00 lone")
    # 23:30 in New York is the next day in UTC: stored in that UTC day's partition (made missing first), not
    # refused because the partition of the local day was ensured instead.
    local_day = NOW.date() - timedelta(days=17)
    offset_timestamp = datetime.fromisoformat(f"{local_day}T23:30:00-05:00")
    pg.execute(f"DROP TABLE IF EXISTS log_events_{local_day + timedelta(days=1):%Y%m%d}")
    storage.forget_partition(local_day + timedelta(days=1))
    oversized = event_json(f"{organization_id}-{secrets.token_hex(3000)}")  # over the btree index row limit
    poison = {
        1: (None, "tombstone"),
        3: (b'{"id": "' + str(uuid.uuid4()).encode() + b'", "message": "\xff\xfe"}', "undecodable"),
        5: (lone_surrogate, "undecodable"),
        7: (oversized, "unstorable"),
    }
    good = {offset: make_event(organization_id) for offset in (0, 2, 4, 6, 8)}
    good[9] = make_event(organization_id, timestamp=offset_timestamp)
    records = [record(offset, good[offset].model_dump_json(by_alias=True).encode()) for offset in good]
    records += [record(offset, value) for offset, (value, _) in poison.items()]
    records.append({**record(10, b""), "value": None})  # a record whose value is missing altogether
    records.sort(key=lambda r: r["offset"])
    event = {"eventSource": "aws:kafka", "bootstrapServers": "b:9092", "records": {"log-events-0": records}}
    dlq = tail(settings.kafka_dlq_topic)

    result = consumer_function.handler(event, lambda_context)

    assert (result["received"], result["stored"], result["dead_lettered"]) == (11, 6, 5), result
    assert result["batchItemFailures"] == []
    assert stored_ids(pg, organization_id) == sorted(str(e.id) for e in good.values())
    day = pg.execute("SELECT tableoid::regclass::text FROM log_events WHERE id = %s", (good[9].id,)).fetchone()[0]
    assert day == f"log_events_{offset_timestamp.astimezone(UTC):%Y%m%d}"
    expected = {**{offset: reason for offset, (_, reason) in poison.items()}, 10: "tombstone"}
    seen: dict[int, str] = {}
    errors: dict[int, bytes] = {}
    while len(seen) < len(expected):
        message = dlq.wait_for(lambda m: dict(m.headers() or []).get("x-dlq-writer") == b"test-function")
        assert message is not None, f"dead letters missing: {set(expected) - set(seen)}"
        headers = dict(message.headers())
        offset = int(headers["x-dlq-source-offset"])
        seen[offset] = headers["x-dlq-reason"].decode()
        errors[offset] = headers["x-dlq-error"]
    assert seen == expected
    assert errors[7].startswith(b"ProgramLimitExceeded")  # a row over a limit, not an outage
    # The read API's status answers `dead_lettered` for a dead letter whose value names its organization and id.
    surrogate_id = uuid.UUID(json.loads(lone_surrogate)["id"])
    assert outcomes.find_outcome(organization_id, surrogate_id) == (False, "undecodable")


# ------------------------------------------------------------------------------------- partitions, retention
def test_maintenance_creates_partitions_ahead_and_drops_expired_ones_with_their_ids(
    settings, pg, organization_id: str
) -> None:
    today = NOW.date()
    retention = Settings(**{**settings.model_dump(), "retention_days": 30, "partitions_ahead_days": 2})
    old_day = today - timedelta(days=45)
    old = make_event(organization_id, timestamp=datetime.combine(old_day, datetime.min.time(), UTC))
    kept = make_event(organization_id, timestamp=NOW - timedelta(days=2))
    assert storage.store_events(as_fields([old, kept])) == 2

    dry = maintenance.run(retention, today, dry_run=True)
    assert old_day.isoformat() in dry.dropped and partition_exists(pg, old_day)

    report = maintenance.run(retention, today)

    assert old_day.isoformat() in report.dropped
    assert not partition_exists(pg, old_day)
    assert all(partition_exists(pg, today + timedelta(days=n)) for n in range(3))
    assert stored_ids(pg, organization_id) == [str(kept.id)]
    ids = pg.execute("SELECT id FROM log_event_ids WHERE organization_id = %s", (organization_id,)).fetchall()
    assert ids == [(kept.id,)]
    assert maintenance.run(retention, today).dropped == []  # idempotent


def test_the_partition_cache_survives_a_partition_dropped_by_another_process(settings, pg, organization_id) -> None:
    day = NOW - timedelta(days=3)
    # this process now knows the day
    assert storage.store_events(as_fields([make_event(organization_id, timestamp=day)])) == 1
    pg.execute(f"DROP TABLE log_events_{day:%Y%m%d}")  # another process's retention

    assert storage.store_events(as_fields([make_event(organization_id, timestamp=day)])) == 1
    assert partition_exists(pg, day.date())


def partition_exists(pg: psycopg.Connection, day: date) -> bool:
    return pg.execute("SELECT to_regclass(%s)", (f"log_events_{day:%Y%m%d}",)).fetchone()[0] is not None


# ------------------------------------------------------------------------------------------------- replay
@pytest.fixture
def fresh_topics(settings) -> Settings:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    suffix = uuid.uuid4().hex[:8]
    names = [f"replay-src-{suffix}", f"replay-dlq-{suffix}"]
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
        future.result(30)
    yield Settings(**{**settings.model_dump(), "kafka_topic": names[0], "kafka_dlq_topic": names[1]})
    admin.delete_topics(names)


def test_replay_puts_a_dead_letter_back_once_and_a_dry_run_changes_nothing(
    fresh_topics: Settings, tail, organization_id: str, monkeypatch
) -> None:
    from logpipe.adapters import kafka

    monkeypatch.setattr(kafka, "get_settings", lambda: fresh_topics)
    monkeypatch.setattr(deadletter, "get_settings", lambda: fresh_topics)
    value = event_json(organization_id)
    deadletter.publish(
        [
            DeadLetter(b"acme", value, "unstorable", "OperationalError: x", 1, fresh_topics.kafka_topic, 0, 41, "t"),
            DeadLetter(b"acme", None, "tombstone", "no value", 1, fresh_topics.kafka_topic, 0, 42, "t"),
        ]
    )
    source = tail(fresh_topics.kafka_topic)
    group = f"replay-{organization_id}"

    dry = replay.replay(fresh_topics, dry_run=True, group=group)
    assert (dry.replayed, dry.skipped) == (1, 1)
    assert [r["verdict"] for r in dry.records] == ["replay", "skip: tombstone"]
    assert source.wait_for(lambda m: True, timeout=3) is None

    done = replay.replay(fresh_topics, group=group)
    again = replay.replay(fresh_topics, group=group)

    assert (done.replayed, again.replayed) == (1, 0)
    message = source.wait_for(lambda m: True)
    assert message is not None and (message.key(), message.value()) == (b"acme", value)
    assert dict(message.headers())["x-dlq-replay-count"] == b"1"
    assert source.wait_for(lambda m: True, timeout=3) is None  # exactly once

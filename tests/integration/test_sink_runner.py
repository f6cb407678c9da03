"""The real ConsumerFunction under local/runner.py, on a fresh 6-partition topic per test: poison never blocks a
partition, a PostgreSQL outage loses nothing and commits nothing, two runners share the work, a killed runner's
partitions are taken over within 10 s."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from local.backing_services.postgres import Postgres
from local.backing_services.settings import Config
from local.lambda_runner import kafka_source
from local.lambda_runner.environment import function_environment
from local.lambda_runner.template import load_template
from local.lambda_runner.testing import RunnerProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6


@pytest.fixture
def topic(settings) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    name = f"sink-it-{uuid.uuid4().hex[:10]}"
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1)]).values():
        future.result(30)
    yield name
    admin.delete_topics([name])


@pytest.fixture
def sink_template(tmp_path: Path, topic: str) -> Path:
    """template.yaml with the consumer on a fresh topic and group; everything else as deployed."""
    text = (REPO_ROOT / "template.yaml").read_text()
    for old, new in (
        ("Topics: [!Ref EventsTopic]", f"Topics: [{topic}]"),
        ("ConsumerGroupId: logpipe-consumer", f"ConsumerGroupId: g-{topic}"),
        ("CodeUri: functions/", f"CodeUri: {REPO_ROOT}/functions/"),
        ("ContentUri: layers/logpipe/", f"ContentUri: {REPO_ROOT}/layers/logpipe/"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


def runner(template: Path, *args: str) -> RunnerProcess:
    return RunnerProcess(template, args=["--workers", "1", *args], start_timeout=60)


def event_value(organization_id: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "organizationId": organization_id,
            "level": "INFO",
            "message": "through the runner",
            "source": "it",
            "timestamp": now,
            "receivedAt": now,
        }
    ).encode()


def produce(settings, topic: str, values: list[tuple[int, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True})
    for partition, value in values:
        producer.produce(topic, key=b"k", value=value, partition=partition)
    assert producer.flush(30) == 0


def offsets(settings, topic: str, group: str | None) -> dict[int, int]:
    """Committed offsets of `group`, or the high watermarks when group is None."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group or "probe"})
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        if group is None:
            return {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return value


def stored(settings, organization_id: str) -> tuple[int, int]:
    """(rows, distinct ids) stored for the tenant (a fresh connection: PostgreSQL may have restarted)."""
    with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM log_events WHERE organization_id = %s", (organization_id,)
        ).fetchone()


def caught_up(settings, topic: str) -> bool:
    return offsets(settings, topic, f"g-{topic}") == offsets(settings, topic, None)


def test_poison_never_blocks_a_partition(settings, sink_template: Path, topic: str, organization_id: str) -> None:
    values: list[tuple[int, bytes | None]] = []
    for i in range(60):
        values.append((i % PARTITIONS, event_value(organization_id)))
        if i % 10 == 5:
            values += [(i % PARTITIONS, None), (i % PARTITIONS, b"\xff\xfe{"), (i % PARTITIONS, b"{}")]
    produce(settings, topic, values)

    with runner(sink_template):
        wait_until(lambda: caught_up(settings, topic), "every partition committed to its end")

    assert stored(settings, organization_id) == (60, 60)


@pytest.fixture
def own_postgres(monkeypatch: pytest.MonkeyPatch) -> Postgres:
    """This worktree's PostgreSQL as local/services.py runs it (never one named by DATABASE_URL)."""
    with monkeypatch.context() as env:
        env.delenv("DATABASE_URL", raising=False)
        postgres = Postgres(Config.from_env())
    if not postgres.our_pid():
        pytest.skip("PostgreSQL was not started by local/services.py: not ours to stop")
    return postgres


def test_a_postgresql_outage_loses_nothing_and_commits_nothing(
    settings, sink_template: Path, topic: str, organization_id: str, own_postgres: Postgres
) -> None:
    postgres = own_postgres
    total = 1200
    producing = threading.Thread(
        target=lambda: [
            (produce(settings, topic, [(i % PARTITIONS, event_value(organization_id)) for i in range(100)]),
             time.sleep(0.5))
            for _ in range(total // 100)
        ]
    )  # fmt: skip
    with runner(sink_template):
        producing.start()
        wait_until(lambda: stored(settings, organization_id)[0] > 0, "the first rows")
        postgres.down()
        try:
            before = offsets(settings, topic, f"g-{topic}")
            time.sleep(5)
            during = offsets(settings, topic, f"g-{topic}")
        finally:
            postgres.up()
        producing.join()
        assert during == before  # no batch committed while nothing could be stored
        wait_until(lambda: caught_up(settings, topic), "the backlog after the outage", timeout=180)

    assert stored(settings, organization_id) == (total, total)


def consumers_per_runner(template: Path) -> int:
    """ProvisionedPollerConfig.MinimumPollers: the consumers each runner starts."""
    [source] = load_template(template).functions["ConsumerFunction"].kafka_sources
    return source.minimum_pollers


def test_two_runners_share_the_partitions_and_a_killed_one_is_replaced_within_10s(
    settings, sink_template: Path, topic: str, organization_id: str
) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    group = f"g-{topic}"

    def owners() -> dict[str, int]:
        description = admin.describe_consumer_groups([group])[group].result(10)
        return {m.member_id: len(m.assignment.topic_partitions) for m in description.members}

    consumers = consumers_per_runner(sink_template)
    with runner(sink_template) as first, runner(sink_template) as second:
        wait_until(lambda: len(owners()) == 2 * consumers and min(owners().values()) >= 1, "both runners' consumers")
        produce(settings, topic, [(i % PARTITIONS, event_value(organization_id)) for i in range(600)])
        wait_until(lambda: caught_up(settings, topic), "600 events committed")
        assert stored(settings, organization_id) == (600, 600)
        assert "-> ok" in first.output() and "-> ok" in second.output()  # both did part of the work

        first.proc.kill()  # SIGKILL: no goodbye to the group
        killed_at = time.monotonic()
        produce(settings, topic, [(i % PARTITIONS, event_value(organization_id)) for i in range(600, 900)])
        wait_until(lambda: len(owners()) == consumers and sum(owners().values()) == PARTITIONS, "the takeover", 30)
        takeover_s = time.monotonic() - killed_at
        wait_until(lambda: caught_up(settings, topic), "the rest after the takeover")

    assert takeover_s < 10, f"partitions taken over after {takeover_s:.1f}s"
    assert stored(settings, organization_id) == (900, 900)


def test_a_runner_restarted_with_its_instance_id_takes_its_partitions_back_at_once(
    settings, sink_template: Path, topic: str, organization_id: str
) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    group = f"g-{topic}"

    def members() -> dict[str, tuple[str, int]]:
        """group.instance.id -> (member id, partitions held)."""
        description = admin.describe_consumer_groups([group])[group].result(10)
        return {m.group_instance_id: (m.member_id, len(m.assignment.topic_partitions)) for m in description.members}

    instance = f"it-{uuid.uuid4().hex[:6]}"
    consumers = consumers_per_runner(sink_template)
    crashed = runner(sink_template, "--instance-id", instance).start()
    try:
        wait_until(
            lambda: len(members()) == consumers and min(n for _, n in members().values()) >= 1,
            "the first runner's consumers",
        )
        before = members()
        assert set(before) == {f"{instance}-ConsumerFunction-LogEvents-{n}" for n in range(consumers)}
    finally:
        crashed.proc.kill()  # SIGKILL, and restarted at once, as a supervisor would
        crashed.proc.wait()
    produce(settings, topic, [(i % PARTITIONS, event_value(organization_id)) for i in range(120)])
    with runner(sink_template, "--instance-id", instance):

        def taken_back() -> bool:
            now = members()
            return (
                set(now) == set(before)
                and all(now[i][0] != before[i][0] for i in now)
                and sum(n for _, n in now.values()) == PARTITIONS
            )

        # The same static members, new member ids: the restart replaced the dead consumers in place (a dynamic
        # member would join beside them and wait for their sessions to expire).
        wait_until(taken_back, "the restarted consumers owning every partition", 30)
        wait_until(lambda: caught_up(settings, topic), "the events produced while it was down")

    assert stored(settings, organization_id) == (120, 120)


def test_the_kafka_source_process_reports_consumer_lag_per_partition(
    settings, sink_template: Path, topic: str, organization_id: str
) -> None:
    template = load_template(sink_template)
    spec = template.functions["ConsumerFunction"]
    [source] = spec.kafka_sources
    job = kafka_source.KafkaSourceJob(
        spec=spec,
        source=source,
        env=function_environment(spec, base_env=dict(os.environ), region=template.region),
        region=template.region,
        account_id=template.account_id,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        consumers=2,
        prewarm=1,
        instance_id=None,
        log_level="WARNING",
    )
    produce(settings, topic, [(i % PARTITIONS, event_value(organization_id)) for i in range(60)])
    process = kafka_source.KafkaSourceProcess(job)
    try:
        lag = wait_until(lambda: len(process.lag()) == PARTITIONS and process.lag(), "lag of all six partitions", 60)
        assert set(lag) == {(topic, p) for p in range(PARTITIONS)} and all(n >= 0 for n in lag.values())
        wait_until(lambda: caught_up(settings, topic), "the backlog stored")
        wait_until(lambda: set(process.lag().values()) == {0}, "lag 0 once caught up", 60)
    finally:
        process.terminate()
        process.join()
    assert process.process.exitcode == 0

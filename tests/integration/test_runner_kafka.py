"""local/runner.py's Kafka event sources against a real broker, with a toy consumer handler.

The toy handler appends every event it receives to a JSON-lines file (and fails, reports partial failures or
sleeps as a control file says). Each test uses its own topics and consumer group.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import KafkaMskEventModel, KafkaSelfManagedEventModel
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from local.lambda_runner.testing import RunnerProcess

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
CLUSTER_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/toy/11111111-2222-3333-4444-555555555555-1"

HANDLER = """
import json, os, pathlib, time

def handler(event, context):
    control_file = pathlib.Path(os.environ["CONTROL_FILE"])
    control = json.loads(control_file.read_text()) if control_file.exists() else {}
    mode = control.get("mode", "ok")
    if mode == "slow":
        pathlib.Path(control["marker"]).write_text("started")
        time.sleep(control["seconds"])
    entry = {"tag": os.environ.get("RUNNER_TAG"), "function": context.function_name, "time": time.time(),
             "mode": mode, "event": event}
    with open(os.environ["OUT_FILE"], "a") as fh:
        fh.write(json.dumps(entry) + "\\n")
    if mode == "fail":
        raise RuntimeError("toy handler failure")
    if mode == "partial":
        control_file.write_text(json.dumps({"mode": "ok"}))  # report the failure once
        failing = {(key, offset) for key, offset in control["fail"]}
        return {"batchItemFailures": [
            {"itemIdentifier": {"partition": key, "offset": record["offset"]}}
            for key, records in event["records"].items() for record in records if (key, record["offset"]) in failing
        ]}
    return {"processed": sum(len(r) for r in event["records"].values())}
"""


# -------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def admin() -> AdminClient:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError:
        pytest.skip(f"no Kafka broker at {BOOTSTRAP} (start it with local/services.py)")
    return AdminClient({"bootstrap.servers": BOOTSTRAP})


@pytest.fixture
def new_topic(admin: AdminClient) -> Iterator[Callable[[int], str]]:
    created: list[str] = []

    def create(partitions: int = 1) -> str:
        name = f"runner-it-{uuid.uuid4().hex[:10]}"
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(30)
        wait_until(lambda: name in admin.list_topics(timeout=10).topics, "topic metadata")
        created.append(name)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created).values():
            with contextlib.suppress(Exception):  # cleanup only
                future.result(30)


class Toy:
    """A toy project in tmp_path: template, handler, output and control files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root / "out.jsonl"
        self.control = root / "control.json"
        (root / "fn").mkdir()
        (root / "fn" / "app.py").write_text(textwrap.dedent(HANDLER).lstrip())

    def template(self, events: dict[str, dict[str, Any]], timeout: int = 10) -> Path:
        doc = {
            "Transform": "AWS::Serverless-2016-10-31",
            "Resources": {
                "ToyConsumer": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "CodeUri": "fn/",
                        "Handler": "app.handler",
                        "Runtime": "python3.11",
                        "Timeout": timeout,
                        # overridden by the runner's environment below: the runner's value must win
                        "Environment": {"Variables": {"OUT_FILE": "/nonexistent/out.jsonl"}},
                        "Events": events,
                    },
                }
            },
        }
        path = self.root / "template.yaml"
        path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
        return path

    def set_control(self, **control: Any) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(control))
        tmp.replace(self.control)

    def runner(self, template: Path, tag: str = "A", args: tuple[str, ...] = ()) -> RunnerProcess:
        return RunnerProcess(
            template,
            args=["--workers", "2", *args],
            env={
                "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
                "OUT_FILE": str(self.out),
                "CONTROL_FILE": str(self.control),
                "RUNNER_TAG": tag,
            },
        )

    def entries(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        complete_lines = self.out.read_text().split("\n")[:-1]  # the last may still be being written
        return [json.loads(line) for line in complete_lines if line.strip()]

    def records(self, **match: Any) -> list[dict[str, Any]]:
        """Every record delivered to the handler, tagged with the delivering entry's fields."""
        out = []
        for entry in self.entries():
            if all(entry.get(k) == v for k, v in match.items()):
                for records in entry["event"]["records"].values():
                    out.extend({**r, "_tag": entry["tag"], "_mode": entry["mode"]} for r in records)
        return out


@pytest.fixture
def toy(tmp_path: Path) -> Toy:
    return Toy(tmp_path)


# --------------------------------------------------------------------------------------------------- helpers
def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def produce(topic: str, messages: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    for m in messages:
        producer.produce(topic, **m)
    assert producer.flush(30) == 0


def committed(group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in offsets}
    finally:
        consumer.close()


def high_watermarks(topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def wait_for_zero_lag(group: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    high = high_watermarks(topic, partitions)
    wait_until(lambda: committed(group, topic, partitions) == high, f"group {group} lag 0 on {topic}", timeout)


def msk_event(topic: str, group: str, **extra: Any) -> dict[str, Any]:
    props = {
        "Stream": CLUSTER_ARN,
        "Topics": [topic],
        "StartingPosition": "TRIM_HORIZON",
        "ConsumerGroupId": group,
        "BatchSize": 20,
        "MaximumBatchingWindowInSeconds": 1,
        **extra,
    }
    return {"Type": "MSK", "Properties": props}


# ----------------------------------------------------------------------------------------------------- tests
def test_records_arrive_in_msk_shape_and_offsets_are_committed(toy: Toy, new_topic) -> None:
    topic, other = new_topic(3), new_topic(1)
    group, other_group = f"g-{topic}", f"g-{other}"
    sent = []
    for i in range(50):
        message = {"value": json.dumps({"i": i}).encode(), "partition": i % 3}
        if i % 5:
            message["key"] = f"org-{i % 4}".encode()
        if i % 2:
            message["headers"] = [("trace", f"t{i}".encode()), ("empty", b"")]
        sent.append(message)
    produce(topic, sent)
    produce(other, [{"value": b'{"self": "managed"}', "key": b"k"}])

    template = toy.template(
        {
            "Msk": msk_event(topic, group),
            "SelfManaged": {
                "Type": "SelfManagedKafka",
                "Properties": {
                    # the runner's KAFKA_BOOTSTRAP_SERVERS wins over the template's brokers
                    "KafkaBootstrapServers": ["unreachable.invalid:9092"],
                    "Topics": [other],
                    "StartingPosition": "TRIM_HORIZON",
                    "ConsumerGroupId": other_group,
                },
            },
        }
    )
    with toy.runner(template) as runner:
        wait_until(lambda: len(toy.records()) >= 51, "all records delivered")
        wait_for_zero_lag(group, topic, 3)
        wait_for_zero_lag(other_group, other, 1)
    assert runner.returncode == 0, runner.output()

    msk_entries = [e for e in toy.entries() if e["event"]["eventSource"] == "aws:kafka"]
    smk_entries = [e for e in toy.entries() if e["event"]["eventSource"] == "SelfManagedKafka"]
    for entry in msk_entries:
        event = entry["event"]
        model = KafkaMskEventModel.model_validate(event)
        assert model.eventSourceArn == CLUSTER_ARN
        assert event["bootstrapServers"] == BOOTSTRAP
        assert 1 <= sum(len(r) for r in event["records"].values()) <= 20  # BatchSize
        for key, records in event["records"].items():
            assert {f"{r['topic']}-{r['partition']}" for r in records} == {key}
            assert [r["offset"] for r in records] == sorted(r["offset"] for r in records)
            assert {r["timestampType"] for r in records} == {"CREATE_TIME"}
    assert entry["function"] == "ToyConsumer"

    by_value = {}
    for entry in msk_entries:
        for record in KafkaMskEventModel.model_validate(entry["event"]).records.values():
            for r in record:
                by_value[json.loads(r.value)["i"]] = r
    assert sorted(by_value) == list(range(50))  # every record, exactly the ones sent
    for i, message in enumerate(sent):
        record = by_value[i]
        assert record.partition == message["partition"]
        assert record.key == message.get("key")
        expected_headers = [{k: v} for k, v in message.get("headers", [])]
        assert record.headers == expected_headers
    assert len(toy.records(function="ToyConsumer")) - 1 == 50  # nothing delivered twice

    (smk,) = smk_entries
    assert "eventSourceArn" not in smk["event"]
    smk_model = KafkaSelfManagedEventModel.model_validate(smk["event"])
    assert smk_model.bootstrapServers == BOOTSTRAP.split(",")
    assert smk_model.records[f"{other}-0"][0].value == '{"self": "managed"}'


def test_failed_batch_is_redelivered_and_nothing_committed(toy: Toy, new_topic) -> None:
    topic = new_topic(1)
    group = f"g-{topic}"
    produce(topic, [{"value": f"v{i}".encode(), "key": b"k"} for i in range(5)])
    toy.set_control(mode="fail")
    template = toy.template({"Msk": msk_event(topic, group)})
    with toy.runner(template) as runner:
        wait_until(lambda: len([e for e in toy.entries() if e["mode"] == "fail"]) >= 3, "three failed attempts")
        assert committed(group, topic, 1) == {0: -1001}  # nothing committed while the batch fails
        toy.set_control(mode="ok")
        wait_until(lambda: any(e["mode"] == "ok" for e in toy.entries()), "a successful attempt")
        wait_for_zero_lag(group, topic, 1)
        runner.wait_for_log("retrying in")
    assert runner.returncode == 0, runner.output()

    attempts = [e for e in toy.entries()]
    offsets = [[r["offset"] for r in e["event"]["records"][f"{topic}-0"]] for e in attempts]
    assert all(o == [0, 1, 2, 3, 4] for o in offsets), offsets  # the same batch, every time
    assert attempts[-1]["mode"] == "ok"
    failed_times = [e["time"] for e in attempts if e["mode"] == "fail"]
    gaps = [b - a for a, b in itertools.pairwise(failed_times)]
    assert gaps[0] >= 0.4 and gaps[1] > gaps[0]  # exponential back-off between retries


def test_retries_exhausted_go_to_the_kafka_destination(toy: Toy, new_topic) -> None:
    topic, dlq = new_topic(1), new_topic(1)
    group = f"g-{topic}"
    produce(topic, [{"value": f"bad{i}".encode(), "key": f"k{i}".encode(), "headers": [("h", b"x")]} for i in range(3)])
    toy.set_control(mode="fail")
    template = toy.template(
        {
            "Msk": msk_event(
                topic,
                group,
                MaximumRetryAttempts=1,
                DestinationConfig={"OnFailure": {"Destination": f"kafka://{dlq}"}},
            )
        }
    )
    with toy.runner(template) as runner:
        wait_for_zero_lag(group, topic, 1)  # committed past the failing batch
        runner.wait_for_log(f"sent 3 failed record(s) to {dlq}")
        toy.set_control(mode="ok")
        produce(topic, [{"value": b"good", "key": b"k"}])
        wait_until(lambda: any(e["mode"] == "ok" for e in toy.entries()), "the next record processed")
        wait_for_zero_lag(group, topic, 1)
    assert runner.returncode == 0, runner.output()

    failed = [e for e in toy.entries() if e["mode"] == "fail"]
    assert len(failed) == 2  # the first attempt and one retry

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"read-{dlq}", "auto.offset.reset": "earliest"})
    consumer.subscribe([dlq])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message)
    consumer.close()
    assert [(m.key(), m.value()) for m in got] == [(f"k{i}".encode(), f"bad{i}".encode()) for i in range(3)]
    for i, message in enumerate(got):
        headers = dict(message.headers())
        assert headers["h"] == b"x"  # the original headers are kept
        assert headers["x-dlq-reason"] == b"RetryAttemptsExhausted"
        assert headers["x-dlq-source-topic"] == topic.encode()
        assert headers["x-dlq-source-partition"] == b"0"
        assert headers["x-dlq-source-offset"] == str(i).encode()
        assert headers["x-dlq-attempts"] == b"2"
        assert headers["x-dlq-error"].startswith(b"RuntimeError: ")
        assert headers["x-dlq-writer"].endswith(b":function:ToyConsumer")


def test_report_batch_item_failures_retries_from_the_failed_record(toy: Toy, new_topic) -> None:
    topic = new_topic(1)
    group = f"g-{topic}"
    produce(topic, [{"value": f"v{i}".encode()} for i in range(6)])
    toy.set_control(mode="partial", fail=[[f"{topic}-0", 3]])
    template = toy.template({"Msk": msk_event(topic, group, FunctionResponseTypes=["ReportBatchItemFailures"])})
    with toy.runner(template) as runner:
        wait_until(lambda: len(toy.entries()) >= 2, "the retry after a partial failure")
        wait_for_zero_lag(group, topic, 1)
    assert runner.returncode == 0, runner.output()

    first, second = toy.entries()[:2]
    assert [r["offset"] for r in first["event"]["records"][f"{topic}-0"]] == [0, 1, 2, 3, 4, 5]
    # offsets 0-2 succeeded and were committed; the retry starts at the reported failure
    assert [r["offset"] for r in second["event"]["records"][f"{topic}-0"]] == [3, 4, 5]
    assert Counter(r["offset"] for r in toy.records()) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 2}


def test_two_runners_in_one_group_share_the_partitions(toy: Toy, new_topic, admin: AdminClient) -> None:
    topic = new_topic(6)
    group = f"g-{topic}"
    template = toy.template({"Msk": msk_event(topic, group, MaximumBatchingWindowInSeconds=0)})
    runner_a = toy.runner(template, tag="A").start()
    runner_b = toy.runner(template, tag="B").start()
    try:

        def balanced() -> bool:
            description = admin.describe_consumer_groups([group])[group].result(10)
            shares = [len(m.assignment.topic_partitions) for m in description.members]
            return description.state == ConsumerGroupState.STABLE and len(shares) == 2 and min(shares) >= 1

        wait_until(balanced, "both runners holding partitions")
        produce(topic, [{"value": json.dumps({"i": i}).encode(), "partition": i % 6} for i in range(600)])
        wait_until(lambda: len(toy.records()) >= 600, "600 records processed")
        wait_for_zero_lag(group, topic, 6)

        records = toy.records()
        seen = Counter((r["partition"], r["offset"]) for r in records)
        assert len(seen) == 600 and set(seen.values()) == {1}  # none lost, none processed twice
        partitions = {tag: {r["partition"] for r in records if r["_tag"] == tag} for tag in "AB"}
        assert partitions["A"] and partitions["B"]
        assert not partitions["A"] & partitions["B"]
        assert partitions["A"] | partitions["B"] == set(range(6))

        # One runner leaves: the other takes over its partitions from the committed offsets.
        assert runner_a.stop() == 0, runner_a.output()
        produce(topic, [{"value": json.dumps({"i": i}).encode(), "partition": i % 6} for i in range(600, 660)])
        wait_until(lambda: len(toy.records()) >= 660, "records after the takeover")
        wait_for_zero_lag(group, topic, 6)
        records = toy.records()
        seen = Counter((r["partition"], r["offset"]) for r in records)
        assert len(seen) == 660 and set(seen.values()) == {1}
        assert {r["partition"] for r in records[600:]} == set(range(6))
        assert {r["_tag"] for r in records[600:]} == {"B"}
    finally:
        for runner in (runner_a, runner_b):
            if runner.proc is not None and runner.proc.poll() is None:
                assert runner.stop() == 0, runner.output()


def test_sigint_lets_the_in_flight_batch_finish_and_commit(toy: Toy, new_topic) -> None:
    topic = new_topic(1)
    group = f"g-{topic}"
    marker = toy.root / "started"
    produce(topic, [{"value": f"v{i}".encode()} for i in range(5)])
    toy.set_control(mode="slow", seconds=2, marker=str(marker))
    runner = toy.runner(toy.template({"Msk": msk_event(topic, group)})).start()
    try:
        wait_until(marker.exists, "the handler to start")
        assert runner.stop() == 0, runner.output()
    finally:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
    (entry,) = toy.entries()  # the batch ran to its end
    assert [r["offset"] for r in entry["event"]["records"][f"{topic}-0"]] == [0, 1, 2, 3, 4]
    assert committed(group, topic, 1) == {0: 5}

"""The poller's decisions (commit, rewind, retry, give up) with a fake consumer; the real thing is in
tests/integration/test_runner_kafka.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE

from local.lambda_runner import kafka_poller
from local.lambda_runner.events import KafkaRecord
from local.lambda_runner.kafka_poller import KafkaPoller, backoff_delay, parse_destination
from local.lambda_runner.sam_model import KafkaSource
from local.lambda_runner.workers import InvokeResult

pytestmark = pytest.mark.unit


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._tp = (topic, partition)
        self._offset = offset

    def topic(self) -> str:
        return self._tp[0]

    def partition(self) -> int:
        return self._tp[1]

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000 + self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return f"v{self._offset}".encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def error(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []
        self.seeks: dict[tuple[str, int], int] = {}
        self.paused = self.resumed = 0

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def seek(self, tp: Any) -> None:
        self.seeks[(tp.topic, tp.partition)] = tp.offset

    def pause(self, tps: list[Any]) -> None:
        self.paused += 1

    def resume(self, tps: list[Any]) -> None:
        self.resumed += 1

    def consume(self, num: int, timeout: float) -> list[Any]:
        return []


def make_poller(results: list[InvokeResult], **source_args: Any) -> tuple[KafkaPoller, list[dict]]:
    events: list[dict] = []
    pending = list(results)

    def invoke(event_json: bytes) -> InvokeResult:
        events.append(json.loads(event_json))
        return pending.pop(0)

    source = KafkaSource(
        function_id="Fn", event_id="Ev", kind="MSK", topics=("t",), group_id="g", stream_arn="arn:x", **source_args
    )
    poller = KafkaPoller(source, invoke=invoke, bootstrap_servers="b:9092", function_arn="arn:fn", function_timeout_s=3)
    poller.consumer = FakeConsumer()  # type: ignore[assignment]
    poller.assigned = {("t", 0), ("t", 1)}
    return poller, events


def batch(*spec: tuple[int, int]) -> list[tuple[FakeMessage, KafkaRecord]]:
    messages = [FakeMessage("t", p, o) for p, o in spec]
    return [(m, kafka_poller._to_record(m)) for m in messages]  # type: ignore[arg-type]


OK = InvokeResult("ok", "r1", 1.0, result={"ok": True})
ERROR = InvokeResult("error", "r2", 1.0, error={"errorType": "RuntimeError", "errorMessage": "boom"})


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_poller, "BACKOFF_BASE_S", 0.001)


def test_success_commits_the_next_offset_of_every_partition() -> None:
    poller, events = make_poller([OK])
    poller._process(batch((0, 5), (0, 6), (1, 2)))
    assert poller.consumer.commits == [{("t", 0): 7, ("t", 1): 3}]
    assert list(events[0]["records"]) == ["t-0", "t-1"]
    assert events[0]["eventSourceArn"] == "arn:x"


def test_failure_commits_nothing_and_rewinds_to_the_batch_start() -> None:
    poller, _ = make_poller([ERROR, ERROR])
    poller._process(batch((0, 5), (0, 6), (1, 2)))
    assert poller.consumer.commits == []
    assert poller.consumer.seeks == {("t", 0): 5, ("t", 1): 2}
    assert poller.consumer.paused == poller.consumer.resumed == 1
    poller._process(batch((0, 5), (0, 6), (1, 2)))
    assert poller._attempts == {("t", 0): (5, 2), ("t", 1): (2, 2)}


def test_partial_failure_commits_up_to_the_first_failed_record() -> None:
    failures = {"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 6}}]}
    poller, _ = make_poller([InvokeResult("ok", "r", 1.0, result=failures)], report_batch_item_failures=True)
    poller._process(batch((0, 5), (0, 6), (0, 7), (1, 2)))
    assert poller.consumer.commits == [{("t", 0): 6, ("t", 1): 3}]
    assert poller.consumer.seeks == {("t", 0): 6}


def test_partial_failure_response_is_ignored_without_report_batch_item_failures() -> None:
    failures = {"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 6}}]}
    poller, _ = make_poller([InvokeResult("ok", "r", 1.0, result=failures)])
    poller._process(batch((0, 5), (0, 6)))
    assert poller.consumer.commits == [{("t", 0): 7}]


def test_failure_outside_the_batch_fails_the_whole_batch() -> None:
    failures = {"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 999}}]}
    poller, _ = make_poller([InvokeResult("ok", "r", 1.0, result=failures)], report_batch_item_failures=True)
    poller._process(batch((0, 5), (0, 6)))
    assert poller.consumer.commits == []
    assert poller.consumer.seeks == {("t", 0): 5}


def test_exhausted_retries_without_destination_skip_the_batch() -> None:
    poller, events = make_poller([ERROR, ERROR], max_retry_attempts=1)
    poller._process(batch((0, 5), (0, 6)))
    assert poller.consumer.commits == []
    poller._process(batch((0, 5), (0, 6)))
    assert poller.consumer.commits == [{("t", 0): 7}]
    assert len(events) == 2
    assert ("t", 0) not in poller._attempts


def test_exhausted_retries_with_an_unreachable_destination_log_the_invocation_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    poller, _ = make_poller(
        [ERROR], max_retry_attempts=0, on_failure_destination="arn:aws:sqs:us-east-1:123456789012:dlq"
    )
    poller._process(batch((1, 2), (1, 3)))
    assert poller.consumer.commits == [{("t", 1): 4}]
    (line,) = [r.getMessage() for r in caplog.records if "invocation record" in r.getMessage()]
    record = json.loads(line.split("invocation record: ", 1)[1])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["KafkaBatchInfo"]["recordsInfo"]["t-1"]["firstRecordOffset"] == "2"
    assert record["KafkaBatchInfo"]["recordsInfo"]["t-1"]["lastRecordOffset"] == "3"


def test_revoke_drops_collected_records_of_revoked_partitions() -> None:
    poller, _ = make_poller([])
    poller._batch = batch((0, 1), (1, 1))
    poller._carry = [FakeMessage("t", 1, 2), FakeMessage("t", 0, 2)]
    poller._attempts = {("t", 1): (1, 3)}

    class TP:
        topic, partition = "t", 1

    poller._on_revoke(None, [TP()])  # type: ignore[arg-type]
    assert [(m.partition(), m.offset()) for m, _ in poller._batch] == [(0, 1)]
    assert [(m.partition(), m.offset()) for m in poller._carry] == [(0, 2)]
    assert poller.assigned == {("t", 0)} and poller._attempts == {}


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (None, None),
        ("kafka://log-events-dlq", ("kafka", "log-events-dlq")),
        ("arn:aws:kafka:us-east-1:123456789012:topic/logpipe/abc-1/log-events-dlq", ("kafka", "log-events-dlq")),
        ("arn:aws:sqs:us-east-1:123456789012:dlq", ("other", "arn:aws:sqs:us-east-1:123456789012:dlq")),
    ],
)
def test_parse_destination(destination: str | None, expected) -> None:
    assert parse_destination(destination) == expected


def test_backoff_is_exponential_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_poller, "BACKOFF_BASE_S", 0.5)  # undo the fast_backoff fixture
    assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20) == 30.0


def test_bisect_batch_on_function_error_halves_the_next_batch_without_counting_an_attempt() -> None:
    poller, _ = make_poller([ERROR, OK, OK], bisect_batch_on_function_error=True, batch_size=8)
    poller._process(batch(*[(0, o) for o in range(8)]))
    assert (poller._batch_limit, poller._attempts, poller.consumer.seeks) == (4, {}, {("t", 0): 0})

    poller._process(batch(*[(0, o) for o in range(4)]))  # the first half succeeds: the limit grows back
    assert (poller._batch_limit, poller.consumer.commits) == (None, [{("t", 0): 4}])


def test_bisection_ends_with_the_failing_record_alone_then_counts_attempts() -> None:
    poller, _ = make_poller([ERROR, ERROR], bisect_batch_on_function_error=True, batch_size=8)
    poller._process(batch((0, 0), (0, 1)))
    assert poller._batch_limit == 1
    poller._process(batch((0, 0)))
    assert poller._attempts == {("t", 0): (0, 1)}  # alone now: a real retry


def test_without_bisection_a_failed_batch_is_retried_whole() -> None:
    poller, _ = make_poller([ERROR])
    poller._process(batch((0, 0), (0, 1)))
    assert poller._batch_limit is None


def test_lag_per_assigned_partition_comes_from_librdkafka_statistics() -> None:
    poller, _ = make_poller([])
    stats = {"topics": {"t": {"partitions": {"0": {"consumer_lag": 12}, "1": {"consumer_lag": -1},
                                             "7": {"consumer_lag": 3}, "-1": {"consumer_lag": 0}}}}}  # fmt: skip
    poller._on_stats(json.dumps(stats))
    assert poller.lag == {("t", 0): 12}  # unknown lag (-1) and unassigned partitions left out


def test_an_instance_id_makes_each_consumer_a_static_member_with_a_short_session() -> None:
    source = KafkaSource(function_id="Fn", event_id="Ev", kind="MSK", topics=("t",), group_id="g")
    static = KafkaPoller(source, invoke=lambda _: OK, bootstrap_servers="b", function_arn="a", function_timeout_s=3,
                         index=1, instance_id="host-a")  # fmt: skip
    dynamic = KafkaPoller(source, invoke=lambda _: OK, bootstrap_servers="b", function_arn="a", function_timeout_s=3)
    assert static.consumer_config["group.instance.id"] == "host-a-Fn-Ev-1"
    assert "group.instance.id" not in dynamic.consumer_config
    assert static.consumer_config["session.timeout.ms"] <= 10_000


@pytest.mark.parametrize(
    ("window_s", "fetch"),
    [
        (0.0, {}),  # no window: librdkafka's defaults, every record as soon as it is written
        (0.05, {"fetch.wait.max.ms": 50, "fetch.min.bytes": kafka_poller.FETCH_MIN_BYTES}),
        (1.0, {"fetch.wait.max.ms": 100, "fetch.min.bytes": kafka_poller.FETCH_MIN_BYTES}),
    ],
)
def test_the_broker_holds_fetches_for_at_most_the_batching_window(window_s: float, fetch: dict[str, int]) -> None:
    poller, _ = make_poller([], batching_window_s=window_s)
    held = {
        name: poller.consumer_config[name]
        for name in ("fetch.wait.max.ms", "fetch.min.bytes")
        if name in poller.consumer_config
    }
    assert held == fetch


class WrittenAt(FakeMessage):
    """A record with a chosen Kafka timestamp (seconds ago), or none."""

    def __init__(self, seconds_ago: float | None) -> None:
        super().__init__("t", 0, 0)
        self.seconds_ago = seconds_ago

    def timestamp(self) -> tuple[int, int]:
        if self.seconds_ago is None:
            return TIMESTAMP_NOT_AVAILABLE, 0
        return TIMESTAMP_CREATE_TIME, round((time.time() - self.seconds_ago) * 1000)


@pytest.mark.parametrize(
    ("seconds_ago", "gathering_s"),
    [
        (0.0, 0.5),  # just written: the whole window
        (0.3, 0.2),  # written while the previous batch was processed: what is left of its window
        (2.0, kafka_poller.MIN_BATCH_WAIT_S),  # older than the window: only what is already fetched
        (-5.0, 0.5),  # a producer clock ahead: never more than the window
        (None, 0.5),  # no timestamp: the whole window
    ],
)
def test_the_batching_window_counts_from_when_the_first_record_was_written(
    seconds_ago: float | None, gathering_s: float
) -> None:
    poller, _ = make_poller([], batching_window_s=0.5)
    assert poller._gathering_time(WrittenAt(seconds_ago)) == pytest.approx(gathering_s, abs=0.05)  # type: ignore[arg-type]

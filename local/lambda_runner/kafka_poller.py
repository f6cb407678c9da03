"""A Kafka event source mapping: consume, batch, invoke, commit; retry, back off, and give up like Lambda does.

One :class:`KafkaPoller` is one consumer (a thread) in the event source's consumer group, so several pollers,
in one runner or in several runners, share the topic's partitions.

Semantics (those of Lambda's MSK / self-managed Kafka event source mapping):

- a batch is up to BatchSize records, gathered for at most MaximumBatchingWindowInSeconds (AWS default 0.5 s)
  counted from when its first record was written, and never more than Lambda's 6 MB payload;
- offsets are committed (synchronously, next offset per partition) only after the handler returned;
- a failed batch (error, timeout, crash) is not committed: the partitions are rewound to the batch's first
  offsets and the batch is retried after an exponential back-off (0.5 s doubling, capped at 30 s). Retries are
  infinite unless MaximumRetryAttempts is set; with an on-failure destination they are capped at 10 (as AWS does).
  Once exhausted, the records go to the on-failure destination (if any), are committed and skipped;
- with BisectBatchOnFunctionError, a failed batch of more than one record is retried at once as its first half
  (then halves of that ...), without counting an attempt, so a record that fails the function ends up alone; after
  each success the batch limit doubles back towards BatchSize;
- with FunctionResponseTypes [ReportBatchItemFailures], a result {"batchItemFailures": [{"itemIdentifier":
  {"partition": "<topic>-<partition>", "offset": n}}]} commits each partition up to its lowest failed offset
  and retries from there; a malformed list fails the whole batch;
- on a rebalance, records collected for revoked partitions are dropped (never committed by this consumer).

On-failure destinations: ``kafka://<topic>`` or an MSK topic ARN (``arn:aws:kafka:...:topic/<cluster>/<uuid>/<topic>``)
are produced to on the same cluster: each failed record with its original key, value and headers plus
dead-letter headers describing the failure (AWS does not publish its header names; :func:`dead_letter_headers`
writes the ``x-dlq-*`` scheme of docs/sink.md, with ``x-dlq-reason: RetryAttemptsExhausted`` and the function ARN
as ``x-dlq-writer``). Other destinations (SQS, SNS, S3 ARNs) cannot be reached locally: the AWS-style invocation
record is logged at ERROR instead.

Group membership: ``session.timeout.ms`` is 6 s (the broker's minimum), so the partitions of a consumer that
died (``kill -9`` of its runner) move to the others within about 6 s. Given an instance id (``--instance-id``),
each consumer is a static member (``group.instance.id`` = ``<instance id>-<function>-<event>-<n>``): a runner
restarted with the same id takes its partitions back at once, without a rebalance.

Lag: librdkafka's statistics (every ``LAG_INTERVAL_S``) give each assigned partition's lag (high watermark minus
committed offset); :attr:`KafkaPoller.lag` holds the latest figures, ``on_lag`` receives them (the runner's
process reads them through :meth:`.kafka_source.KafkaSourceProcess.lag`) and they are logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from .events import LAMBDA_MAX_EVENT_BYTES, KafkaRecord, build_kafka_event, kafka_record, parse_batch_item_failures
from .metrics import instruments
from .sam_model import KafkaSource
from .workers import InvokeResult

log = logging.getLogger("runner")

MIN_BATCH_WAIT_S = 0.01  # with a 0 s window, or one already spent: still gather what is already fetched
MAX_EVENT_BYTES = LAMBDA_MAX_EVENT_BYTES - 64 * 1024  # room for the envelope
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
POLL_IDLE_S = 0.5
SESSION_TIMEOUT_MS = 6000
LAG_INTERVAL_S = 10
# With a batching window, the broker holds each fetch until this much data or this long: records then arrive a
# few times a second instead of one fetch answer per produced record (which costs the broker about as much CPU
# as the produce itself), and the window still bounds how long a record waits.
FETCH_WAIT_MAX_S = 0.1
FETCH_MIN_BYTES = 1 << 20

TP = tuple[str, int]
Invoker = Callable[[bytes], InvokeResult]


def parse_destination(destination: str | None) -> tuple[str, str] | None:
    """("kafka", topic) | ("other", destination) | None."""
    if not destination:
        return None
    if destination.startswith("kafka://"):
        return "kafka", destination[len("kafka://") :].strip("/")
    if destination.startswith("arn:") and ":kafka:" in destination and ":topic/" in destination:
        return "kafka", destination.rsplit("/", 1)[-1]
    return "other", destination


def backoff_delay(attempt: int) -> float:
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempt - 1, 0))


class KafkaPoller(threading.Thread):
    def __init__(
        self,
        source: KafkaSource,
        *,
        invoke: Invoker,
        bootstrap_servers: str,
        function_arn: str,
        function_timeout_s: float,
        index: int = 0,
        instance_id: str | None = None,
        on_lag: Callable[[dict[TP, int]], None] | None = None,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=f"kafka:{source.function_id}/{source.event_id}#{index}", daemon=True)
        self.source = source
        self.invoke = invoke
        self.bootstrap_servers = bootstrap_servers
        self.function_arn = function_arn
        self.label = f"{source.function_id}/{source.event_id}"
        self.destination = parse_destination(source.on_failure_destination)
        if self.destination and self.destination[0] == "kafka" and self.destination[1] in source.topics:
            log.error("%s: the on-failure destination is a source topic; ignored (AWS refuses it)", self.label)
            self.destination = None
        instruments().declare_kafka_source(source.function_id, self._destination_name)
        self.consumer_config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": source.group_id,
            "client.id": f"lambda-runner-{source.function_id}-{index}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": source.auto_offset_reset,
            # the longest gap between two polls: one invocation plus one back-off
            "max.poll.interval.ms": int(max(300.0, 2 * function_timeout_s + BACKOFF_CAP_S + 30) * 1000),
            "topic.metadata.refresh.interval.ms": 10_000,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
            "statistics.interval.ms": LAG_INTERVAL_S * 1000,
            "stats_cb": self._on_stats,
            **self._fetch_config(source.batching_window_s),
            **({"group.instance.id": f"{instance_id}-{self.label.replace('/', '-')}-{index}"} if instance_id else {}),
            **(consumer_config or {}),
        }
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self.consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.assigned: set[TP] = set()
        self._batch: list[tuple[Message, KafkaRecord]] = []  # being collected; trimmed on revoke
        self._carry: list[Message] = []  # fetched, not yet in a batch
        self._rewind: dict[TP, int] = {}  # partitions to seek back to before consuming again
        self._attempts: dict[TP, tuple[int, int]] = {}  # tp -> (first offset of the failing batch, attempts)
        self._last_error_log: dict[str, float] = {}
        self.batches_ok = 0
        self.batches_failed = 0
        self.lag: dict[TP, int] = {}  # latest consumer lag per assigned partition (records)
        self.on_lag = on_lag
        self._batch_limit: int | None = None  # below BatchSize while bisecting

    # lifecycle -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        try:
            self.consumer = Consumer(self.consumer_config, logger=logging.getLogger("runner.kafka"))
            self.consumer.subscribe(
                list(self.source.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            log.info(
                "%s: polling %s as group %s on %s (batch %d, window %.2fs)",
                self.label,
                ",".join(self.source.topics),
                self.source.group_id,
                self.bootstrap_servers,
                self.source.batch_size,
                self.source.batching_window_s,
            )
            while not self.stopping:
                batch = self._collect()
                # Collected but not yet invoked when a stop comes: left uncommitted for the next owner.
                if batch and not self.stopping:
                    self._process(batch)
        except Exception:
            log.exception("%s: poller crashed", self.label)
        finally:
            if self.consumer is not None:
                try:
                    self.consumer.close()  # leaves the group; uncommitted records go to the next owner
                except Exception:
                    log.exception("%s: closing the consumer failed", self.label)
            if self._producer is not None:
                self._producer.flush(10)
            log.info("%s: poller stopped", self.label)

    # rebalance callbacks (run inside poll/consume, on this thread) -------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("%s: assigned %s", self.label, _fmt(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self.assigned -= revoked
        self._batch[:] = [(m, r) for m, r in self._batch if (m.topic(), m.partition()) not in revoked]
        self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in revoked]
        for tp in revoked:
            self._rewind.pop(tp, None)
            self._attempts.pop(tp, None)
        instruments().consumer_lag(self.source.function_id, dict.fromkeys(revoked & self.lag.keys(), 0))
        log.info("%s: revoked %s", self.label, _fmt(partitions))

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka statistics (called inside poll, on this thread): keep and log each partition's lag."""
        stats = json.loads(stats_json)
        lag: dict[TP, int] = {}
        for topic, data in (stats.get("topics") or {}).items():
            for partition, pstats in (data.get("partitions") or {}).items():
                tp = (topic, int(partition))
                if tp in self.assigned and pstats.get("consumer_lag", -1) >= 0:
                    lag[tp] = pstats["consumer_lag"]
        self.lag = lag
        if self.on_lag is not None:
            self.on_lag(lag)
        instruments().consumer_lag(self.source.function_id, lag)
        if lag:
            log.info("%s: lag %s", self.label, ",".join(f"{t}-{p}={n}" for (t, p), n in sorted(lag.items())))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("%s: partitions lost", self.label)
        self._on_revoke(consumer, partitions)

    # collecting --------------------------------------------------------------------------------------------
    def _collect(self) -> list[tuple[Message, KafkaRecord]]:
        assert self.consumer is not None
        self._batch = batch = []
        size = 0
        limit = self._batch_limit or self.source.batch_size
        pending, self._carry = self._carry, []
        if not pending:
            first = self.consumer.poll(POLL_IDLE_S)
            if first is None:
                return []
            pending = [first]
        deadline = time.monotonic() + self._gathering_time(pending[0])
        while True:
            for i, msg in enumerate(pending):
                if msg.error() is not None:
                    self._log_kafka_error(msg.error())
                    continue
                if (msg.topic(), msg.partition()) not in self.assigned:
                    continue
                record = _to_record(msg)
                rsize = len(record.json) + 1  # and its comma
                if batch and (size + rsize > MAX_EVENT_BYTES or len(batch) >= limit):
                    self._carry = [m for m in pending[i:] if m.error() is None]
                    return batch
                batch.append((msg, record))
                size += rsize
            remaining = deadline - time.monotonic()
            if len(batch) >= limit or remaining <= 0 or self.stopping:
                return batch
            pending = self.consumer.consume(limit - len(batch), timeout=remaining)

    def _gathering_time(self, first: Message) -> float:
        """How long to gather more records for a batch that starts with ``first``.

        The batching window bounds how long a record waits to be gathered, so it counts from when the batch's first
        record was written (its Kafka timestamp), not from when this poller got to it: records written while the
        previous batch was being processed have already waited that long. What is already fetched is still gathered.
        """
        left = self.source.batching_window_s
        kind, written_ms = first.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE:
            left -= max(0.0, time.time() - written_ms / 1000)  # a producer clock ahead takes nothing off
        return max(left, MIN_BATCH_WAIT_S)

    @staticmethod
    def _fetch_config(batching_window_s: float) -> dict[str, int]:
        if batching_window_s <= 0:
            return {}  # no window: every record as soon as it is written
        wait_ms = max(1, int(min(batching_window_s, FETCH_WAIT_MAX_S) * 1000))
        return {"fetch.wait.max.ms": wait_ms, "fetch.min.bytes": FETCH_MIN_BYTES}

    def _log_kafka_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        key = error.str()
        now = time.monotonic()
        if now - self._last_error_log.get(key, 0.0) > 30:
            self._last_error_log[key] = now
            log.warning("%s: kafka: %s", self.label, key)

    # processing --------------------------------------------------------------------------------------------
    def _process(self, batch: list[tuple[Message, KafkaRecord]]) -> None:
        first, last = _offset_range(batch)
        result = self.invoke(self._event_json(batch))
        desc = f"{self.label} batch={len(batch)} partitions={len(first)}"
        failure = self._failure(batch, first, result)
        if failure is None:
            self._succeeded(first, last, desc, result)
        else:
            self._failed(batch, first, last, failure, result, desc)

    def _event_json(self, batch: list[tuple[Message, KafkaRecord]]) -> bytes:
        return build_kafka_event(
            [record for _, record in batch],
            event_source=self.source.event_source,
            bootstrap_servers=self.bootstrap_servers,
            event_source_arn=self.source.stream_arn,
        )

    def _failure(
        self, batch: list[tuple[Message, KafkaRecord]], first: dict[TP, int], result: InvokeResult
    ) -> _Failure | None:
        """What of the batch failed: all of it (an error, or a malformed batchItemFailures), the reported items,
        or nothing."""
        if not result.ok:
            error = result.error or {}
            reason = f"{result.status}: {error.get('errorType')}: {error.get('errorMessage')}"
            return _Failure(dict(first), [msg for msg, _ in batch], reason)
        if not self.source.report_batch_item_failures:
            return None
        failures = parse_batch_item_failures(result.result, {f"{t}-{p}" for t, p in first})
        # (only checked when there are failures: building the set costs a string per record)
        if failures and not set(failures) <= {(f"{m.topic()}-{m.partition()}", m.offset()) for m, _ in batch}:
            failures = None  # an offset that is not in this batch: as malformed as it gets
        if failures is None:
            return _Failure(dict(first), [msg for msg, _ in batch], "malformed batchItemFailures")
        if not failures:
            return None
        by_key = {f"{t}-{p}": (t, p) for t, p in first}
        retry_from: dict[TP, int] = {}
        for key, offset in failures:
            tp = by_key[key]
            retry_from[tp] = min(offset, retry_from.get(tp, offset))
        ids = {(by_key[k], o) for k, o in failures}
        messages = [m for m, _ in batch if ((m.topic(), m.partition()), m.offset()) in ids]
        return _Failure(retry_from, messages, f"{len(failures)} batchItemFailures")

    def _succeeded(self, first: dict[TP, int], last: dict[TP, int], desc: str, result: InvokeResult) -> None:
        self._commit({tp: off + 1 for tp, off in last.items()})
        for tp in first:
            self._attempts.pop(tp, None)
        self.batches_ok += 1
        instruments().kafka_batches.labels(self.source.function_id, "ok").inc()
        if self._batch_limit is not None:  # bisecting: grow back towards BatchSize
            doubled = 2 * self._batch_limit
            self._batch_limit = doubled if doubled < self.source.batch_size else None
        log.info("%s -> ok %.1fms", desc, result.duration_ms)

    def _failed(
        self,
        batch: list[tuple[Message, KafkaRecord]],
        first: dict[TP, int],
        last: dict[TP, int],
        failure: _Failure,
        result: InvokeResult,
        desc: str,
    ) -> None:
        failed = failure.retry_from
        # Partial success: everything before the first failure of each partition is done.
        done = {tp: last[tp] + 1 for tp in last if tp not in failed}
        done.update({tp: offset for tp, offset in failed.items() if offset > first[tp]})
        self._commit(done)
        self.batches_failed += 1
        instruments().kafka_batches.labels(self.source.function_id, "failed" if failed == first else "partial").inc()
        if not result.ok and self.source.bisect_batch_on_function_error and len(batch) > 1:
            self._bisect(len(batch), failure, desc)
            return
        attempts = self._count_attempt(failed)
        max_retries = self.source.effective_max_retries
        if max_retries is not None and attempts > max_retries:
            log.error("%s -> failed (%s); retries exhausted after %d attempts", desc, failure.reason, attempts)
            if self._send_to_destination(failure.messages, result, attempts, failure.reason):
                self._skip(failure, last)
                return
        self._retry(failure, attempts, result, desc)

    def _bisect(self, batch_size: int, failure: _Failure, desc: str) -> None:
        """Retry at once, as the first half of the failed batch, without counting an attempt."""
        self._batch_limit = batch_size // 2
        log.warning("%s -> failed (%s); bisecting: next batch %d record(s)", desc, failure.reason, self._batch_limit)
        self._rewind.update(failure.retry_from)
        self._back_off(0.0)

    def _retry(self, failure: _Failure, attempts: int, result: InvokeResult, desc: str) -> None:
        """Retry from the failed offsets after the back-off of this attempt."""
        delay = backoff_delay(attempts)
        instruments().kafka_retries.labels(self.source.function_id).inc()
        log.warning(
            "%s -> failed (%s) %.1fms; attempt %d, retrying in %.1fs",
            desc,
            failure.reason,
            result.duration_ms,
            attempts,
            delay,
        )
        self._rewind.update(failure.retry_from)
        self._back_off(delay)

    def _skip(self, failure: _Failure, last: dict[TP, int]) -> None:
        """Past records given up on (sent to the destination, logged or discarded): commit and forget them."""
        instruments().dead_letters.labels(self.source.function_id, self._destination_name).inc(len(failure.messages))
        self._commit({tp: last[tp] + 1 for tp in failure.retry_from})
        for tp in failure.retry_from:
            self._attempts.pop(tp, None)

    @property
    def _destination_name(self) -> str:
        """The on-failure destination as the dead-letter counter names it."""
        return self.destination[1] if self.destination else "none"

    def _count_attempt(self, failed: dict[TP, int]) -> int:
        attempts = 0
        for tp, offset in failed.items():
            previous_offset, count = self._attempts.get(tp, (offset, 0))
            count = count + 1 if previous_offset == offset else 1
            self._attempts[tp] = (offset, count)
            attempts = max(attempts, count)
        return attempts

    def _commit(self, offsets: dict[TP, int]) -> None:
        assert self.consumer is not None
        tps = [TopicPartition(t, p, off) for (t, p), off in offsets.items() if (t, p) in self.assigned]
        if not tps:
            return
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # e.g. the group rebalanced meanwhile: the records will be delivered again (at least once)
            log.warning("%s: commit failed: %s", self.label, exc)

    def _back_off(self, delay: float) -> None:
        """Pause, wait (still polling, to stay in the group), then rewind the failed partitions and resume."""
        assert self.consumer is not None
        paused = [TopicPartition(t, p) for t, p in self.assigned]
        self.consumer.pause(paused)
        # Records fetched but not processed must be fetched again after the rewind.
        for msg in self._carry:
            self._note_rewind((msg.topic(), msg.partition()), msg.offset())
        self._carry = []
        deadline = time.monotonic() + delay
        while not self.stopping and (remaining := deadline - time.monotonic()) > 0:
            for msg in self.consumer.consume(100, timeout=min(remaining, 0.2)):
                if msg.error() is None and (msg.topic(), msg.partition()) in self.assigned:
                    self._note_rewind((msg.topic(), msg.partition()), msg.offset())
        if self.stopping:
            return  # nothing committed past the failure: the next owner starts there
        rewind, self._rewind = self._rewind, {}
        for (topic, partition), offset in rewind.items():
            if (topic, partition) not in self.assigned:
                continue
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.warning("%s: seek failed (%s); restarting the consumer", self.label, exc)
                self._restart_consumer()
                return
        self.consumer.resume([TopicPartition(t, p) for t, p in self.assigned])

    def _note_rewind(self, tp: TP, offset: int) -> None:
        self._rewind[tp] = min(offset, self._rewind.get(tp, offset))

    def _restart_consumer(self) -> None:
        """Fallback when a seek is refused: a fresh consumer resumes from the committed offsets, which are
        exactly where processing stopped (nothing past a failure is ever committed)."""
        assert self.consumer is not None
        self.consumer.close()
        self.assigned.clear()
        self._rewind.clear()
        self.consumer = Consumer(self.consumer_config, logger=logging.getLogger("runner.kafka"))
        self.consumer.subscribe(
            list(self.source.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    # on-failure destination -------------------------------------------------------------------------------
    def _send_to_destination(self, messages: list[Message], result: InvokeResult, attempts: int, reason: str) -> bool:
        """True when the records may be skipped (sent, logged, or no destination); False to keep retrying."""
        error = result.error or {"errorType": "BatchItemFailure", "errorMessage": reason}
        if self.destination is None:
            log.error("%s: no on-failure destination; discarding %d record(s)", self.label, len(messages))
            return True
        kind, target = self.destination
        if kind == "other":
            log.error(
                "%s: on-failure destination %s is not reachable locally; invocation record: %s",
                self.label,
                target,
                json.dumps(self._invocation_record(messages, result, attempts, error)),
            )
            return True
        return self._produce_failed(target, messages, result, attempts, error)

    def _produce_failed(
        self, topic: str, messages: list[Message], result: InvokeResult, attempts: int, error: dict[str, Any]
    ) -> bool:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.bootstrap_servers,
                    "enable.idempotence": True,
                    "acks": "all",
                    "client.id": f"lambda-runner-{self.source.function_id}-destination",
                },
                logger=logging.getLogger("runner.kafka"),
            )
        errors: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err.str())

        for msg in messages:
            headers = list(msg.headers() or []) + dead_letter_headers(
                error=f"{error.get('errorType')}: {error.get('errorMessage')}",
                attempts=attempts,
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                timestamp_ms=msg.timestamp()[1],
                writer=self.function_arn,
                request_id=result.request_id,
            )
            self._producer.produce(topic, key=msg.key(), value=msg.value(), headers=headers, on_delivery=delivered)
        remaining = self._producer.flush(30)
        if errors or remaining:
            log.error("%s: publishing to %s failed (%s); will retry the batch", self.label, topic, errors or remaining)
            return False
        log.error("%s: sent %d failed record(s) to %s", self.label, len(messages), topic)
        return True

    def _invocation_record(
        self, messages: list[Message], result: InvokeResult, attempts: int, error: dict[str, Any]
    ) -> dict[str, Any]:
        info: dict[str, dict[str, str]] = {}
        for msg in messages:
            key = f"{msg.topic()}-{msg.partition()}"
            ts = datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC).isoformat(timespec="milliseconds")
            entry = info.setdefault(key, {"firstRecordOffset": str(msg.offset()), "firstRecordTimestamp": ts})
            entry["lastRecordOffset"] = str(msg.offset())
            entry["lastRecordTimestamp"] = ts
        return {
            "requestContext": {
                "requestId": result.request_id,
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": error.get("errorType", "Unhandled"),
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "KafkaBatchInfo": {
                "batchSize": len(messages),
                "bootstrapServers": self.bootstrap_servers,
                "recordsInfo": info,
            },
        }


@dataclass(frozen=True)
class _Failure:
    """The failed part of a batch."""

    retry_from: dict[TP, int]  # partition -> the offset to retry from
    messages: list[Message]  # the records that failed (what goes to the on-failure destination)
    reason: str


def _offset_range(batch: list[tuple[Message, KafkaRecord]]) -> tuple[dict[TP, int], dict[TP, int]]:
    """The first and last offset of each partition in the batch."""
    first: dict[TP, int] = {}
    last: dict[TP, int] = {}
    for msg, _ in batch:
        tp = (msg.topic(), msg.partition())
        first.setdefault(tp, msg.offset())
        last[tp] = msg.offset()
    return first, last


def dead_letter_headers(
    *,
    error: str,
    attempts: int,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    writer: str,
    request_id: str,
) -> list[tuple[str, bytes]]:
    """The ``x-dlq-*`` headers of a record sent to the on-failure destination, in the scheme docs/sink.md
    documents (``x-dlq-source-timestamp`` and ``x-dlq-request-id`` are the event source mapping's own)."""
    values = {
        "x-dlq-reason": "RetryAttemptsExhausted",
        "x-dlq-error": error[:1000],
        "x-dlq-attempts": str(attempts),
        "x-dlq-source-topic": topic,
        "x-dlq-source-partition": str(partition),
        "x-dlq-source-offset": str(offset),
        "x-dlq-source-timestamp": str(timestamp_ms),
        "x-dlq-failed-at": datetime.now(UTC).isoformat(),
        "x-dlq-writer": writer,
        "x-dlq-request-id": request_id,
    }
    return [(name, value.encode()) for name, value in values.items()]


def _to_record(msg: Message) -> KafkaRecord:
    ts_type, ts = msg.timestamp()
    return kafka_record(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp_type=ts_type,
        timestamp=ts,
        key=msg.key(),
        value=msg.value(),
        headers=msg.headers(),
    )


def _fmt(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{p.topic}-{p.partition}" for p in partitions) or "(none)"

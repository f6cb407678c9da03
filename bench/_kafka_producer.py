"""Baseline: a plain confluent-kafka producer (acks=all, idempotent), like one producer instance.

    python bench/_kafka_producer.py --seconds 15 [--values FILE --batch 1000]

Produces the producer's record (the normalized seed event, keyed by organization) to the bench topic one at a time,
each awaited; with ``--values``, the records of that file (one JSON value a line, keyed by their organizationId),
``--batch`` of them at a time with one wait for all their acknowledgements. Prints {"events", "p99_ms", "cpu_s"}
as JSON on its last line (p99 of one wait). Started several times in parallel by bench/ingest.py and
bench/shippers.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "bench-baseline"


def record(organization_id: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "organizationId": organization_id,
            "level": "INFO",
            "message": "User logged in",
            "source": "auth-service",
            "timestamp": now,
            "receivedAt": now,
            "attributes": {},
            "traceId": None,
            "spanId": None,
        }
    ).encode()


def ensure_topic(bootstrap: str, topic: str = TOPIC) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)]).values():
            try:
                future.result()
            except Exception as exc:  # created by a sibling process meanwhile
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--values", type=Path, help="records to produce, one JSON value a line")
    parser.add_argument("--batch", type=int, default=1, help="records produced per wait (with --values)")
    args = parser.parse_args()
    seconds = args.seconds
    if args.values:
        values = args.values.read_bytes().splitlines()
        key = json.loads(values[0])["organizationId"].encode()
        batches = [
            [values[(first + i) % len(values)] for i in range(args.batch)]
            for first in range(0, len(values), args.batch)
        ]
    else:
        batches = []
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    ensure_topic(bootstrap)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "compression.type": "lz4",
            "delivery.report.only.error": True,  # as logpipe's producer: one wait for the queue, no report per record
        }
    )
    producer.produce(TOPIC, value=record("warmup"), key=b"warmup")
    producer.flush(10)
    latencies: list[float] = []
    cpu_before = time.process_time()
    deadline = time.monotonic() + seconds
    failures: list[object] = []
    events = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        batch = batches[len(latencies) % len(batches)] if batches else [record("acme")]
        for value in batch:
            producer.produce(TOPIC, value=value, key=key if batches else b"acme",
                             on_delivery=lambda err, _msg: failures.append(err))  # fmt: skip
        if producer.flush(10) or failures:
            raise SystemExit(f"delivery failed: {failures[0] if failures else 'not acknowledged within 10 s'}")
        latencies.append((time.perf_counter() - started) * 1000)
        events += len(batch)
    cpu = time.process_time() - cpu_before
    latencies.sort()
    p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else None
    print(json.dumps({"events": events, "p99_ms": round(p99, 2) if p99 else None, "cpu_s": round(cpu, 3)}))


if __name__ == "__main__":
    main()

"""Baseline: a plain confluent-kafka producer, one event at a time, each awaited (acks=all), like one instance.

    python bench/_kafka_producer.py --seconds 15

Produces the producer's record (the normalized seed event, keyed by organization) to the bench topic and prints
{"events", "p99_ms", "cpu_s"} as JSON on its last line. Started several times in parallel by bench/ingest.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from datetime import UTC, datetime

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


def ensure_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(TOPIC, num_partitions=6, replication_factor=1)]).values():
            try:
                future.result()
            except Exception as exc:  # created by a sibling process meanwhile
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    seconds = parser.parse_args().seconds
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    ensure_topic(bootstrap)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "compression.type": "lz4",
        }
    )
    producer.produce(TOPIC, value=record("warmup"), key=b"warmup")
    producer.flush(10)
    latencies: list[float] = []
    cpu_before = time.process_time()
    deadline = time.monotonic() + seconds
    reports: list[object] = []
    while time.monotonic() < deadline:
        reports.clear()
        started = time.perf_counter()
        producer.produce(TOPIC, value=record("acme"), key=b"acme", on_delivery=lambda err, _msg: reports.append(err))
        while not reports:
            producer.poll(1)
        if reports[0] is not None:
            raise SystemExit(f"delivery failed: {reports[0]}")
        latencies.append((time.perf_counter() - started) * 1000)
    cpu = time.process_time() - cpu_before
    latencies.sort()
    p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else None
    print(json.dumps({"events": len(latencies), "p99_ms": round(p99, 2) if p99 else None, "cpu_s": round(cpu, 3)}))


if __name__ == "__main__":
    main()

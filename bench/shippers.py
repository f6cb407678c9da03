"""Shippers bench: OTLP/HTTP, the native batch, Loki push and Elasticsearch `_bulk` through the runner's intake,
with plain confluent-kafka and VictoriaLogs measured in the same run.

    python bench/shippers.py [--quick] [--sustained-only] [--rates 15000,20000]

Requests hold 1,000 realistic records each (250-450 bytes, 5-12 attributes: the builders of the decoders'
micro-benchmark, tests/unit/edge/decoders/bench_decoders.py, with timestamps of today), encoded once with the real
encoders; a fixed-width request number patched into each (a resource attribute, a Loki label, a field of the first
document) makes every request distinct, so the ids derived from the body's digest never repeat.

1. ``intake``: local/runner.py serving template.yaml with its Kafka pollers off (``--no-kafka``), publishing to a
   fresh topic; for each protocol, a separate load process posts closed loop over several connections: events
   acknowledged per second (2xx answers x records), answers by status, latencies, CPU per event of each process
   group (/proc), and the topic's watermarks (every acknowledged event reached it).
2. ``sustained_end_to_end``: the runner with its Kafka pollers on (the consumer storing into PostgreSQL), OTLP
   requests offered open loop at constant rates (``Plan.sustained_rates``, 60 s each): per rate, the answers, the
   consumer group's lag sampled every 2 s and its growth over the second half (least squares), and the time from
   the producer's receipt to the committed row (p50/p99/max); the highest rate at which the consumer kept up.
3. ``kafka_producer``: plain confluent-kafka processes producing the JSON values logpipe publishes for the same
   records (``logpipe.ingest.records.event_record``), acks=all, idempotent, one wait per 1,000.
4. ``victoria_logs``: VictoriaLogs (.venv/bin/victoria-logs, temp storage) taking the same OTLP protobuf requests
   at /insert/opentelemetry/v1/logs from the same load process, when it is installed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cramjam
import psycopg
from _common import (
    CLOCK_TICKS,
    REPO,
    CpuMeter,
    children,
    emit,
    percentile,
    progress,
    runner_process_groups,
    service_ports,
    services_env,
    warm_runner,
    worker_function,
)
from _kafka_producer import ensure_topic
from confluent_kafka import Consumer, TopicPartition
from ingest import PRODUCER_INSTANCES, Keys, kafka_baseline
from run import cpu_times
from sink import consumer_lag, receipt_to_row_ms, template_for

sys.path.insert(0, str(REPO / "tests" / "unit" / "edge" / "decoders"))
import bench_decoders  # the records of the decoders' micro-benchmark (it puts the layer on sys.path)

from logpipe.edge.decoders import loki, otlp

EVENTS = bench_decoders.EVENTS  # records per request
CONNECTIONS = 4
VICTORIA_LOGS = REPO / ".venv" / "bin" / "victoria-logs"
VICTORIA_LOGS_VERSION = "v1.52.2"  # `go install` leaves the binary's -version empty
VICTORIA_LOGS_INSTALL = (
    f"GOBIN=.venv/bin go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@{VICTORIA_LOGS_VERSION}"
)
MARKER = b"bench-request-000000000"  # its digits are the request number
DIGITS = 9
TOPIC_PARTITIONS = 6
BENCH_REDIS_DB = 14


@dataclass(frozen=True)
class Plan:
    seconds: float  # per measured part
    warmup_s: float
    baseline_s: float
    sustained_s: float  # per offered rate, end to end
    sustained_rates: tuple[int, ...]  # events/s offered end to end, in order


FULL = Plan(seconds=20, warmup_s=4, baseline_s=15, sustained_s=60, sustained_rates=(10_000, 15_000, 20_000, 25_000))
QUICK = Plan(seconds=3, warmup_s=1, baseline_s=3, sustained_s=5, sustained_rates=(5_000,))
LAG_SAMPLE_S = 2


# ------------------------------------------------------------------------------------------------ requests
@dataclass(frozen=True)
class Shipment:
    """One protocol's request, encoded once; ``body(n)`` is request n: the marker's digits set to n (same length,
    so the encoding stays valid), then snappy-compressed for Loki."""

    name: str
    path: str
    content_type: str
    target_events_per_s: int
    template: bytes
    snappy: bool = False

    def body(self, n: int) -> bytes:
        at = self.template.index(MARKER) + len(MARKER) - DIGITS
        raw = b"%s%0*d%s" % (self.template[:at], DIGITS, n % 10**DIGITS, self.template[at + DIGITS :])
        return bytes(cramjam.snappy.compress_raw(raw)) if self.snappy else raw

    def record_bytes(self) -> int:
        return len(self.body(0)) // EVENTS


def shipments() -> list[Shipment]:
    rng = random.Random(14)
    start_ns = time.time_ns() - 60 * 10**9
    otlp_request = bench_decoders.otlp_request(rng)
    for n, record in enumerate(otlp_request.resource_logs[0].scope_logs[0].log_records):
        record.time_unix_nano = start_ns + n * 1_000_000
        record.observed_time_unix_nano = record.time_unix_nano + 500
    otlp_request.resource_logs[0].resource.attributes.add(key="bench.request").value.string_value = MARKER.decode()
    otlp_body = otlp_request.SerializeToString()

    items = otlp.decode(otlp_body, "application/x-protobuf", EVENTS, len(otlp_body))
    native_body = json.dumps(items, default=datetime.isoformat, separators=(",", ":")).encode()

    push = loki.PushRequest.FromString(loki.unsnappy(bench_decoders.loki_request(rng)[0], 1 << 30))
    for stream in push.streams:
        for n, entry in enumerate(stream.entries):
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(start_ns + n * 1_000_000, 10**9)
    push.streams[0].labels = push.streams[0].labels[:-1] + f', bench_request="{MARKER.decode()}"}}'

    # _bulk: its documents' day set to yesterday (within the accepted window), the marker in the first document.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d").encode()
    bulk_body = bench_decoders.bulk_request(rng).replace(b'"@timestamp":"2024-05-01', b'"@timestamp":"' + yesterday)
    bulk_body = bulk_body.replace(b'"message":', b'"labels":{"bench":"%s"},"message":' % MARKER, 1)
    return [
        Shipment("otlp_protobuf", "/v1/logs", "application/x-protobuf", 50_000, otlp_body),
        Shipment("native_batch", "/api/logs/batch", "application/json", 50_000, native_body),
        Shipment(
            "loki_protobuf", "/loki/api/v1/push", "application/x-protobuf", 30_000, push.SerializeToString(), True
        ),
        Shipment("elasticsearch_bulk", "/logs/_bulk", "application/x-ndjson", 30_000, bulk_body),
    ]


def published_values(shipment: Shipment, organization_id: str) -> bytes:
    """The Kafka values logpipe publishes for a request's records, one a line (the layer's own normalization)."""
    from pydantic import TypeAdapter

    from logpipe.config import get_settings
    from logpipe.ingest.records import event_record
    from logpipe.models import LogEventFields

    settings, now = get_settings(), datetime.now(UTC)
    items = otlp.decode(shipment.body(0), shipment.content_type, EVENTS, 1 << 30)
    fields = TypeAdapter(list[LogEventFields]).validate_python(items)
    records = (event_record(item, organization_id, uuid.uuid4(), now, settings) for item in fields)
    return b"\n".join(record.value for record in records) + b"\n"


# ---------------------------------------------------------------------------------------------------- load
def _load(url: str, shipment: Shipment, connections: int, seconds: float, headers: dict, first: int, out) -> None:
    """Closed loop: each of ``connections`` keep-alive connections posts request after request until time is up."""
    host, _, port = url.removeprefix("http://").partition(":")
    numbers = itertools.count(first)
    codes: list[Counter[int]] = [Counter() for _ in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    headers = {**headers, "Content-Type": shipment.content_type}
    deadline = time.monotonic() + seconds

    def connection(slot: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while time.monotonic() < deadline:
            body = shipment.body(next(numbers))
            started = time.perf_counter()
            try:
                conn.request("POST", shipment.path, body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except OSError:
                conn.close()
                status = 0
            latencies[slot].append((time.perf_counter() - started) * 1000)
            codes[slot][status] += 1
        conn.close()

    cpu_before, machine_before, started = time.process_time(), cpu_times(), time.monotonic()
    threads = [threading.Thread(target=connection, args=(slot,)) for slot in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    machine = [after - then for after, then in zip(cpu_times(), machine_before, strict=True)]
    every = sorted(itertools.chain.from_iterable(latencies))
    out.put(
        {
            "seconds": time.monotonic() - started,
            "codes": dict(sum(codes, Counter())),
            "p50_ms": percentile(every, 50),
            "p99_ms": percentile(every, 99),
            "max_ms": percentile(every, 100),
            "cpu_s": time.process_time() - cpu_before,
            # user, nice, system, irq, softirq of the whole machine: ours and other work on it.
            "machine_cpu_s": (sum(machine[:3]) + sum(machine[5:7])) / CLOCK_TICKS,
        }
    )


def offer(url: str, shipment: Shipment, seconds: float, headers: dict[str, str], first: int) -> dict[str, Any]:
    """``_load`` in a separate process; request numbers start at ``first``."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_load, args=(url, shipment, CONNECTIONS, seconds, headers, first, queue))
    process.start()
    outcome = queue.get(timeout=seconds + 300)
    process.join()
    return outcome


def measure(
    url: str, shipment: Shipment, seconds: float, headers: dict[str, str], groups: dict[str, list[int]], first: int
) -> dict[str, Any]:
    """``seconds`` of load with the CPU of ``groups`` metered: events/s acknowledged, answers, CPU µs per event."""
    meter = CpuMeter(groups).start()
    result = offer(url, shipment, seconds, headers, first)
    meter.stop()
    others_s = result["machine_cpu_s"] - sum(meter.used_s.values()) - result["cpu_s"]
    acknowledged = EVENTS * sum(n for code, n in result["codes"].items() if 200 <= int(code) < 300)
    cpu = {name: us for name, us in meter.per_event_us(acknowledged).items() if us is not None}
    if acknowledged:
        cpu["total_without_load_generator"] = round(sum(cpu.values()), 1)
        cpu["load_generator"] = round(result["cpu_s"] * 1e6 / acknowledged, 1)
    return {
        "events_per_s": round(acknowledged / result["seconds"]),
        "events_acknowledged": acknowledged,
        "requests_by_status": {str(code): n for code, n in sorted(result["codes"].items())},
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
        "cpu_us_per_event": cpu,
        # CPU of processes outside the figures (other work on this shared machine), in cores over the part.
        "other_processes_cpus": round(max(0.0, others_s) / result["seconds"], 2),
    }


# ---------------------------------------------------------------------------------------------- logpipe
def topic_end(bootstrap: str, topic: str) -> int:
    """Records on a fresh topic: the sum of its partitions' high watermarks."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-probe-{uuid.uuid4().hex[:8]}"})
    try:
        return sum(
            probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(TOPIC_PARTITIONS)
        )
    finally:
        probe.close()


def intake(env: dict[str, str], plan: Plan, organization_id: str, headers: dict[str, str]) -> dict[str, Any]:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench-shippers-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic)
    # The intake's capacity, not a tenant's quota: the bench organization's bucket never runs dry (the limiter
    # still runs, its cost is in the figures). A Redis database of its own: the Kafka circuit other runs on this
    # machine open on purpose (tests of the breaker) is not the bench's.
    overrides = {
        "INGEST_RATE_OVERRIDES": json.dumps({organization_id: {"rate": 1e12, "burst": 10**12}}),
        "REDIS_URL": env["REDIS_URL"].rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}",
    }
    figures: dict[str, Any] = {"topic": topic}
    with warm_runner(
        REPO / "template.yaml",
        {**env, **overrides, "KAFKA_TOPIC": topic},
        ["--prewarm", str(PRODUCER_INSTANCES), "--no-kafka"],
    ) as (process, groups):
        for number, shipment in enumerate(shipments()):
            progress(f"intake {shipment.name}: {CONNECTIONS} connections, {plan.seconds:g} s")
            offer(process.url, shipment, plan.warmup_s, headers, number * 10**8)
            before = topic_end(bootstrap, topic)
            part = measure(process.url, shipment, plan.seconds, headers, groups, number * 10**8 + 10**6)
            on_topic = topic_end(bootstrap, topic) - before
            figures[shipment.name] = {
                "wire_bytes_per_record": shipment.record_bytes(),
                **part,
                "events_on_topic": on_topic,  # at least once: a 5xx may still have published
                "acknowledged_reached_topic": on_topic >= part["events_acknowledged"],
                "target": f">= {shipment.target_events_per_s} events/s acknowledged",
                "met": part["events_per_s"] >= shipment.target_events_per_s,
            }
    return figures


# ---------------------------------------------------------------------------------------------------- end to end
def _paced(url: str, shipment: Shipment, rate: int, seconds: float, headers: dict, first: int, out) -> None:
    """Open loop: request i (``EVENTS`` records) is due at i * EVENTS / rate, sent on whichever keep-alive
    connection is free; what is due after the end is not sent, and a send more than 100 ms behind is counted late."""
    host, _, port = url.removeprefix("http://").partition(":")
    interval, start = EVENTS / rate, time.monotonic() + 0.2
    indexes = itertools.count()
    codes: Counter[int] = Counter()
    late = [0]
    headers = {**headers, "Content-Type": shipment.content_type}

    def connection() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while (index := next(indexes)) * interval < seconds:
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:
                late[0] += 1
            try:
                conn.request("POST", shipment.path, shipment.body(first + index), headers)
                response = conn.getresponse()
                response.read()
                codes[response.status] += 1
            except OSError:
                conn.close()
                codes[0] += 1
        conn.close()

    threads = [threading.Thread(target=connection) for _ in range(2 * CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put({"codes": dict(codes), "late_requests": late[0], "seconds": time.monotonic() - start})


def sustained(env: dict[str, str], plan: Plan) -> dict[str, Any]:
    """The whole pipeline, the consumer on: OTLP requests offered at constant rates, each for ``sustained_s``;
    per rate, the consumer's lag sampled every LAG_SAMPLE_S and its growth over the second half, and the time from
    the producer's receipt to the committed row (``received_at`` to ``stored_at``)."""
    bootstrap, shipment = env["KAFKA_BOOTSTRAP_SERVERS"], shipments()[0]
    topic = f"bench-sustained-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic)
    warmup_organization = f"bench-sustained-warmup-{uuid.uuid4().hex[:6]}"
    organizations = [f"bench-sustained-{rate}-{uuid.uuid4().hex[:6]}" for rate in plan.sustained_rates]
    overrides = {
        "KAFKA_TOPIC": topic,
        "INGEST_RATE_OVERRIDES": json.dumps(
            {org: {"rate": 1e12, "burst": 10**12} for org in [warmup_organization, *organizations]}
        ),
    }
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}"})
    steps: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-sustained-") as workdir,
        warm_runner(template_for(topic, f"bench-{topic}", Path(workdir)), {**env, **overrides},
                    ["--prewarm", str(PRODUCER_INSTANCES)]) as (process, _),
        psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn,
    ):  # fmt: skip
        progress(f"end to end: warm-up, {plan.sustained_rates[0]} events/s for {plan.warmup_s:g} s")
        warmup = Plan(**{**plan.__dict__, "sustained_s": plan.warmup_s})
        headers = Keys(env).headers(warmup_organization)
        _sustained_step(process.url, shipment, plan.sustained_rates[0], warmup, headers, (probe, topic), 4 * 10**8)
        for number, (rate, organization) in enumerate(zip(plan.sustained_rates, organizations, strict=True)):
            progress(f"end to end: {rate} events/s of OTLP for {plan.sustained_s:g} s, the consumer on")
            headers = Keys(env).headers(organization)
            meter = CpuMeter(_pipeline_groups(process, env, Path(workdir).name)).start()
            step = _sustained_step(process.url, shipment, rate, plan, headers, (probe, topic), (number + 5) * 10**8)
            deadline = time.monotonic() + 120
            while consumer_lag(probe, topic) and time.monotonic() < deadline:  # drained before the next rate
                time.sleep(1)
            meter.stop()  # from the first request to the last row stored: both sides of each event
            step["cpu_us_per_event"] = meter.per_event_us(step["events_accepted"])
            step.update(_receipt_to_row(conn, organization))
            step["every_accepted_event_stored"] = step["stored"] == step["events_accepted"]
            steps.append(step)
    probe.close()
    kept_up = [step["offered_events_per_s"] for step in steps if step["kept_up"]]
    return {
        "max_sustained_events_per_s": max(kept_up, default=0),
        "target": ">= 20000 events/s with the consumer's lag stable",
        "met": max(kept_up, default=0) >= 20_000,
        "rates": steps,
    }


def _pipeline_groups(process: Any, env: dict[str, str], source_directory: str) -> dict[str, list[int]]:
    """The runner's process groups, its Kafka event source (the worker whose directory is the template's) and the
    consumer instances it runs named apart, and PostgreSQL's backends as they are now (the consumer's among them)."""
    groups = runner_process_groups(process, service_ports(env))
    sources = groups.pop(f"instances_{source_directory}", [])
    groups["runner_kafka_source"] = sources
    for pid in (child for source in sources for child in children(source)):
        groups.setdefault(f"instances_{worker_function(pid)}", []).append(pid)
    return groups


def _sustained_step(
    url: str, shipment: Shipment, rate: int, plan: Plan, headers: dict, lag_of: tuple[Consumer, str], first: int
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    load = context.Process(target=_paced, args=(url, shipment, rate, plan.sustained_s, headers, first, queue))
    load.start()
    lags: list[tuple[float, int]] = []
    started = time.monotonic()
    while load.is_alive() and queue.empty():
        lags.append((time.monotonic() - started, consumer_lag(*lag_of)))
        time.sleep(LAG_SAMPLE_S)
    result = queue.get(timeout=300)
    load.join()
    accepted = EVENTS * sum(n for code, n in result["codes"].items() if 200 <= int(code) < 300)
    growth = _lag_growth_per_s(lags)
    return {
        "offered_events_per_s": rate,
        "accepted_events_per_s": round(accepted / result["seconds"]),
        "requests_by_status": {str(code): n for code, n in sorted(result["codes"].items())},
        "late_requests": result["late_requests"],
        "lag_samples": [lag for _, lag in lags],
        "lag_growth_events_per_s": round(growth),
        # Kept up: (nearly) every offered event accepted, and the lag not growing over the second half by more
        # than 5 % of the rate (a stable lag is the consumer's batching, a growing one is falling behind).
        "kept_up": accepted >= 0.99 * rate * plan.sustained_s and growth < 0.05 * rate,
        "events_accepted": accepted,
    }


def _lag_growth_per_s(lags: list[tuple[float, int]]) -> float:
    """The least-squares slope of the lag over the second half of the samples, in events per second."""
    half = lags[len(lags) // 2 :]
    if len(half) < 2:
        return 0.0
    mean_t = sum(t for t, _ in half) / len(half)
    mean_lag = sum(lag for _, lag in half) / len(half)
    spread = sum((t - mean_t) ** 2 for t, _ in half)
    return sum((t - mean_t) * (lag - mean_lag) for t, lag in half) / spread if spread else 0.0


def _receipt_to_row(conn: psycopg.Connection, organization: str) -> dict[str, Any]:
    stored, p50, p99, worst = receipt_to_row_ms(conn, organization)
    return {"stored": stored, "receipt_to_row_ms": {"p50": round(p50), "p99": round(p99), "max": round(worst)}}


# ---------------------------------------------------------------------------------------------------- peer
def victoria_logs(shipment: Shipment, plan: Plan) -> dict[str, Any]:
    if not VICTORIA_LOGS.is_file():
        return {"unavailable": f"{VICTORIA_LOGS.relative_to(REPO)} is not installed: {VICTORIA_LOGS_INSTALL}"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-victoria-logs-") as storage:
        command = [str(VICTORIA_LOGS), f"-storageDataPath={storage}", f"-httpListenAddr=127.0.0.1:{port}"]
        proc = subprocess.Popen([*command, "-loggerLevel=WARN"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/health", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        return {"unavailable": f"victoria-logs did not start (exit code {proc.poll()})"}
                    time.sleep(0.2)
            peer = Shipment(
                "victoria_logs", "/insert/opentelemetry/v1/logs", shipment.content_type, 0, shipment.template
            )
            progress(f"VictoriaLogs: OTLP protobuf, {CONNECTIONS} connections, {plan.seconds:g} s")
            offer(url, peer, plan.warmup_s, {}, 0)
            part = measure(url, peer, plan.seconds, {}, {"victoria_logs": [proc.pid]}, 10**6)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"version": VICTORIA_LOGS_VERSION, **part}


# ---------------------------------------------------------------------------------------------------- main
def _rates(text: str) -> tuple[int, ...]:
    return tuple(int(rate) for rate in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds per part")
    parser.add_argument("--sustained-only", action="store_true", help="only the end-to-end part (its figures alone)")
    parser.add_argument("--rates", type=_rates, help="events/s offered end to end, comma-separated (10000,15000)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rates:
        plan = Plan(**{**plan.__dict__, "sustained_rates": args.rates})
    env = services_env()
    os.environ.update(env)
    if args.sustained_only:
        emit({"events_per_request": EVENTS, "sustained_end_to_end": sustained(env, plan)})
        return 0
    organization_id = f"bench-shippers-{uuid.uuid4().hex[:8]}"
    figures: dict[str, Any] = {
        "events_per_request": EVENTS,
        "connections": CONNECTIONS,
        "seconds_per_part": plan.seconds,
    }
    figures["intake"] = intake(env, plan, organization_id, Keys(env).headers(organization_id))
    figures["sustained_end_to_end"] = sustained(env, plan)

    otlp_shipment = shipments()[0]
    with tempfile.NamedTemporaryFile(prefix="bench-shippers-", suffix=".ndjson") as values:
        values.write(published_values(otlp_shipment, organization_id))
        values.flush()
        baseline = kafka_baseline(env, CONNECTIONS, plan.baseline_s, ("--values", values.name, "--batch", str(EVENTS)))
    del baseline["cpu_ms_per_event"]
    events = max(1, baseline["events_per_s"] * plan.baseline_s)
    baseline["cpu_us_per_event"] = {name: round(s * 1e6 / events, 1) for name, s in baseline.pop("cpu_s").items()}
    baseline["p99_ms_worst_wait"] = baseline.pop("p99_ms_worst_process")
    figures["kafka_producer"] = baseline
    figures["logpipe_vs_kafka_producer"] = {
        name: round(part["events_per_s"] / baseline["events_per_s"], 2) if baseline["events_per_s"] else None
        for name, part in figures["intake"].items()
        if isinstance(part, dict)
    }
    figures["victoria_logs"] = victoria_logs(otlp_shipment, plan)
    if "events_per_s" in figures["victoria_logs"]:
        peer = figures["victoria_logs"]["events_per_s"]
        figures["otlp_logpipe_vs_victoria_logs"] = round(figures["intake"]["otlp_protobuf"]["events_per_s"] / peer, 3)
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

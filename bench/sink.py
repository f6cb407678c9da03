"""Sink benchmark: the consumer through local/runner.py against plain psycopg doing the same SQL, in one run.

    python bench/sink.py [--quick] [--events N] [--e2e-rate R] [--e2e-seconds S] [--e2e-batch B]

Needs the services' environment (``eval "$(make -s env)"``). Progress goes to stderr; the last stdout line is one
JSON object of figures:

- ``baseline_rows_per_s``: plain psycopg, rows prepared beforehand, the consumer's own statements
  (``storage._insert_rows``: binary COPY into log_event_ids and log_events, the staging-table claim when an id is
  taken),
  batches of the template's BatchSize, into the real, fully indexed table, at the CPU priority the runner gives
  Kafka event sources;
- ``consumer_rows_per_s``: the ConsumerFunction under the runner draining a pre-filled 6-partition topic of fresh
  events (as many as the baseline stored), from the first stored row to the last; ``consumer_vs_baseline``;
- ``consumer_cpu_ms_per_1k``: CPU milliseconds per 1,000 stored events, per process group (the runner's HTTP
  process, its Kafka event source process, the function instances, PostgreSQL), from /proc;
- ``e2e_*``: events POSTed at a fixed offered rate by a separate load process, ``--e2e-batch`` per request
  (default 10, to /api/logs/batch: the single-event route alone does not carry 2,000 requests/s on two cores,
  docs/bench.md; 1 posts single events to /api/logs), then the latency from the producer's receipt
  (``received_at``) to the committed row (``stored_at``), p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "layers" / "logpipe"), str(REPO_ROOT)]

from _common import wait_until_idle  # noqa: E402

from local.backing_services.postgres import Postgres  # noqa: E402
from local.backing_services.settings import Config  # noqa: E402
from local.lambda_runner import workers  # noqa: E402
from local.lambda_runner.template import load_template  # noqa: E402
from local.lambda_runner.testing import RunnerProcess  # noqa: E402
from logpipe.access import keys  # noqa: E402
from logpipe.access.models import Scope  # noqa: E402
from logpipe.config import get_settings  # noqa: E402
from logpipe.models import LogEvent  # noqa: E402
from logpipe.sink import storage  # noqa: E402

PARTITIONS = 6
E2E_WARMUP_S = 15
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[sink] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ events
def event_json(organization_id: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return (
        f'{{"id":"{uuid.uuid4()}","organizationId":"{organization_id}","level":"INFO",'
        f'"message":"GET /api/orders/42 200 in 12 ms","source":"bench-sink","timestamp":"{now}",'
        f'"receivedAt":"{now}","attributes":{{"route":"/api/orders","status":200}},'
        f'"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7"}}'
    ).encode()


def fresh_topic(bootstrap: str) -> str:
    name = f"bench-sink-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1)]).values():
        future.result(30)
    return name


def fill(bootstrap: str, topic: str, organization_id: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4", "acks": "all"})
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=organization_id.encode(), value=event_json(organization_id),
                                 partition=i % PARTITIONS)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


# --------------------------------------------------------------------------------------------- baseline
def baseline(database_url: str, organization_id: str, count: int, batch: int) -> dict:
    # As the consumer stores them (storage.EventFields: LogEvent's fields by name).
    events = [LogEvent.model_validate_json(event_json(organization_id)).model_dump() for _ in range(count)]
    rows = [storage._row(event) for event in events]
    with psycopg.connect(database_url) as conn:
        storage._ensure_partitions(conn, {storage.utc_day(events[0]["timestamp"])})
        conn.commit()
        postgres_pid = own_postgres_pid()
        pg_before = cpu_by_group(os.getpid(), postgres_pid)["postgresql"]
        client_before = time.process_time()
        started = time.perf_counter()
        stored = sum(storage._insert_rows(conn, rows[first : first + batch]) for first in range(0, count, batch))
        elapsed = time.perf_counter() - started
        client_s = time.process_time() - client_before
        pg_s = cpu_by_group(os.getpid(), postgres_pid)["postgresql"] - pg_before
    assert stored == count, f"{stored} of {count} stored"
    return {
        "baseline_rows_per_s": round(count / elapsed),
        "baseline_cpu_ms_per_1k": {
            "client": round(client_s * 1e6 / count, 1),
            "postgresql": round(pg_s * 1e6 / count, 1),
        },
    }


def niced(function, *args):
    """Run function(*args) in a child at the Kafka source's CPU priority, so the baseline and the consumer compete
    for a busy machine on equal terms (PostgreSQL runs at its own priority in both)."""
    with multiprocessing.get_context("spawn").Pool(
        1, initializer=os.nice, initargs=(workers.INSTANCE_NICENESS,)
    ) as pool:
        return pool.apply(function, args)


# ------------------------------------------------------------------------------------------- processes
def cpu_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def tree(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier.extend(children)
    return members


def cpu_by_group(runner_pid: int, postgres_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of the runner process, its Kafka source process(es), function instances, PostgreSQL."""
    table = cpu_ticks()
    groups = {"runner_http": 0, "kafka_source": 0, "instances": 0, "postgresql": 0}
    groups["runner_http"] = table.get(runner_pid, (0, 0))[1]
    for pid in tree(runner_pid, table) - {runner_pid}:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}/cmdline").exists() else b""
        group = "instances" if b"worker_process.py" in cmdline else "kafka_source"
        groups[group] += table[pid][1]
    if postgres_pid:
        groups["postgresql"] = sum(table[pid][1] for pid in tree(postgres_pid, table))
    return {name: ticks / CLK_TCK for name, ticks in groups.items()}


def own_postgres_pid() -> int | None:
    saved = os.environ.pop("DATABASE_URL", None)
    try:
        return Postgres(Config.from_env()).our_pid()
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved


def template_for(topic: str, group: str, directory: Path) -> Path:
    text = (REPO_ROOT / "template.yaml").read_text()
    for old, new in (
        ("Topics: [!Ref EventsTopic]", f"Topics: [{topic}]"),
        ("ConsumerGroupId: logpipe-consumer", f"ConsumerGroupId: {group}"),
        ("CodeUri: functions/", f"CodeUri: {REPO_ROOT}/functions/"),
        ("ContentUri: layers/logpipe/", f"ContentUri: {REPO_ROOT}/layers/logpipe/"),
    ):
        text = text.replace(old, new)
    path = directory / "template.yaml"
    path.write_text(text)
    return path


def any_stored(conn: psycopg.Connection, organization_id: str) -> bool:
    query = "SELECT EXISTS (SELECT FROM log_events WHERE organization_id = %s)"
    return conn.execute(query, (organization_id,)).fetchone()[0]


def consumer_lag(probe: Consumer, topic: str) -> int:
    """Records of the topic the probe's consumer group has not committed (the consumer commits only what is
    stored): a probe that costs PostgreSQL nothing, unlike counting rows while they are written."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committed = probe.committed(partitions, timeout=10)
    ends = sum(probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    return ends - sum(max(0, tp.offset) for tp in committed)


def receipt_to_row_ms(conn: psycopg.Connection, organization_id: str) -> tuple[int, float, float, float]:
    """The organization's stored rows and the time from the producer's receipt (`received_at`) to the committed row
    (`stored_at`): p50, p99 and max in milliseconds."""
    stored, p50, p99, worst = conn.execute(
        "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) FROM"
        " (SELECT extract(epoch FROM stored_at - received_at) * 1000 AS lag"
        "  FROM log_events WHERE organization_id = %s) AS lags",
        (organization_id,),
    ).fetchone()
    return stored, p50 or 0.0, p99 or 0.0, worst or 0.0


def count_stored(conn: psycopg.Connection, organization_id: str) -> int:
    return conn.execute("SELECT count(*) FROM log_events WHERE organization_id = %s", (organization_id,)).fetchone()[0]


# -------------------------------------------------------------------------------------------- consumer
def consumer_run(settings, organization_id: str, count: int, workdir: Path) -> dict:
    topic = fresh_topic(settings.kafka_bootstrap_servers)
    say(f"filling {topic} with {count} events")
    fill(settings.kafka_bootstrap_servers, topic, organization_id, count)
    group = f"bench-{topic}"
    template = template_for(topic, group, workdir)
    postgres_pid = own_postgres_pid()
    probe = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group})
    with (
        psycopg.connect(settings.database_url, autocommit=True) as conn,
        RunnerProcess(template, args=["--workers", "1"], start_timeout=90) as runner,
    ):
        assert runner.proc is not None
        deadline = time.monotonic() + 600
        while not any_stored(conn, organization_id):
            assert time.monotonic() < deadline, "the consumer stored nothing"
            time.sleep(0.01)
        t_first = time.perf_counter()
        cpu_start = cpu_by_group(runner.proc.pid, postgres_pid)
        first = count_stored(conn, organization_id)  # the first batch, committed just now
        while consumer_lag(probe, topic):
            assert time.monotonic() < deadline, "the consumer did not catch up"
            time.sleep(0.05)
        elapsed = time.perf_counter() - t_first
        cpu_end = cpu_by_group(runner.proc.pid, postgres_pid)
        stored = count_stored(conn, organization_id)
    probe.close()
    assert stored == count, f"{stored} of {count} stored"
    rows = count - first
    return {
        "consumer_rows_per_s": round(rows / elapsed),
        "consumer_cpu_ms_per_1k": {
            name: round((cpu_end[name] - cpu_start[name]) * 1000 / rows * 1000, 1) for name in cpu_end
        },
    }


# ------------------------------------------------------------------------------------------------ e2e
def load(
    url: str,
    organization_id: str,
    authorization: str,
    rate: int,
    seconds: int,
    batch: int,
    result: multiprocessing.Queue,
) -> None:
    """Open-loop load of `rate` events/s, `batch` per request: request i is due at i * batch / rate, on whichever of
    many keep-alive connections is free; what is not sent when the time is up is counted, not sent later."""
    host, port = url.removeprefix("http://").split(":")
    request_rate = rate / batch

    async def main() -> dict:
        total = int(request_rate * seconds)
        next_index = 0
        accepted = late = 0
        refused: collections.Counter[str] = collections.Counter()  # events per HTTP status other than 202
        start = time.perf_counter() + 0.2
        event = {"organizationId": organization_id, "level": "INFO", "message": "GET /api/orders/42 200 in 12 ms",
                 "source": "bench-sink", "attributes": {"route": "/api/orders", "status": 200}}  # fmt: skip
        path = b"/api/logs/batch" if batch > 1 else b"/api/logs"

        def api_body(index: int) -> bytes:
            """The request's body, distinct per request: a batch without ids is stored once per distinct body (its
            ids derive from the body's digest, docs/ingest.md), so identical batches would store one batch's rows."""
            numbered = {**event, "attributes": {**event["attributes"], "request": index}}
            return json.dumps([numbered] * batch if batch > 1 else numbered).encode()

        async def connection() -> None:
            nonlocal next_index, accepted, late
            reader, writer = await asyncio.open_connection(host, int(port))
            while next_index < total and time.perf_counter() < start + seconds:  # open loop: the run ends on time
                index, next_index = next_index, next_index + 1
                delay = start + index / request_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    late += 1
                body = api_body(index)
                writer.write(
                    b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    b"Authorization: " + authorization.encode() + b"\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))  # fmt: skip
                await reader.readexactly(length)
                status = head[9:12].decode()
                if status == "202":
                    accepted += batch
                else:
                    refused[status] += batch
            writer.close()

        await asyncio.gather(*(connection() for _ in range(max(1, min(256, int(request_rate))))))
        return {
            "accepted": accepted,
            "refused": dict(refused),
            "late": late * batch,
            "unsent": (total - next_index) * batch,
            "seconds": time.perf_counter() - start,
        }

    result.put(asyncio.run(main()))


def offer(url: str, organization_id: str, rate: int, seconds: int, batch: int) -> dict:
    """`load` from a separate process, with a new ingest key for the organization."""
    authorization = f"Bearer {keys.create_key(organization_id, [Scope.INGEST]).key}"
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=load, args=(url, organization_id, authorization, rate, seconds, batch, queue)
    )
    process.start()
    outcome = queue.get(timeout=seconds + 300)
    process.join()
    return outcome


def e2e_run(settings, organization_id: str, rate: int, seconds: int, batch: int, workdir: Path) -> dict:
    topic = fresh_topic(settings.kafka_bootstrap_servers)
    template = template_for(topic, f"bench-{topic}", workdir)
    producers = load_template(template).functions["ProducerFunction"].reserved_concurrency or 1
    # The bench measures the pipeline, not a tenant's quota: the bench organization's limit is above the offered rate.
    unlimited = {"INGEST_RATE_BYTES": str(10**12), "INGEST_BURST_BYTES": str(10**12)}
    with RunnerProcess(
        template, args=["--prewarm", str(producers)], env={"KAFKA_TOPIC": topic, **unlimited}, start_timeout=90
    ) as runner:
        assert runner.proc is not None
        wait_until_idle(tree(runner.proc.pid, cpu_ticks()))  # the instances' cold starts are over
        # The same load for a while, not measured: until every producer instance, the consumers and PostgreSQL's
        # caches are warm (each producer instance's first requests connect to Kafka and Redis).
        say(f"e2e warm-up: {rate} events/s for {E2E_WARMUP_S}s")
        warmup = offer(runner.url, f"{organization_id}-warmup", rate, E2E_WARMUP_S, batch)
        say(f"e2e: {rate} events/s, {batch} per request, for {seconds}s at {runner.url} (warm-up: {warmup})")
        outcome = offer(runner.url, organization_id, rate, seconds, batch)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while count_stored(conn, organization_id) < outcome["accepted"] and time.monotonic() < deadline:
                time.sleep(0.2)
            stored, p50, p99, worst = receipt_to_row_ms(conn, organization_id)
    return {
        "e2e_offered_events_per_s": rate,
        "e2e_events_per_request": batch,
        "e2e_achieved_events_per_s": round(outcome["accepted"] / outcome["seconds"]),
        "e2e_accepted": outcome["accepted"],
        "e2e_refused_by_status": outcome["refused"],
        "e2e_late_sends": outcome["late"],
        "e2e_unsent": outcome["unsent"],  # due but not sent by the end: the front did not keep up
        "e2e_stored": stored,
        "e2e_latency_ms_p50": round(p50),
        "e2e_latency_ms_p99": round(p99),
        "e2e_latency_ms_max": round(worst),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--e2e-rate", type=int, default=2000)
    parser.add_argument("--e2e-seconds", type=int, default=60)
    parser.add_argument("--e2e-batch", type=int, default=10, help="events per request (1: POST /api/logs)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.e2e_rate, args.e2e_seconds = 20_000, 200, 5
    settings = get_settings()
    [source] = load_template(REPO_ROOT / "template.yaml").functions["ConsumerFunction"].kafka_sources
    run_id = uuid.uuid4().hex[:8]
    figures: dict = {"events": args.events, "batch_size": source.batch_size, "consumers": source.minimum_pollers}

    say(f"baseline: plain psycopg, {args.events} rows in batches of {source.batch_size}")
    figures.update(niced(baseline, settings.database_url, f"bench-base-{run_id}", args.events, source.batch_size))
    with tempfile.TemporaryDirectory() as workdir:
        say("consumer through the runner")
        figures.update(consumer_run(settings, f"bench-consumer-{run_id}", args.events, Path(workdir)))
        figures["consumer_vs_baseline"] = round(figures["consumer_rows_per_s"] / figures["baseline_rows_per_s"], 2)
        say(json.dumps(figures))
        e2e = (args.e2e_rate, args.e2e_seconds, args.e2e_batch)
        figures.update(e2e_run(settings, f"bench-e2e-{run_id}", *e2e, Path(workdir)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

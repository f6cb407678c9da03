"""Ingest bench: POST /api/logs through the local runner, open loop (vegeta), consumer running, with its baselines.

    python bench/ingest.py [--quick] [--overload-only RATE]

Phases, each against the project's template.yaml served by local/runner.py (Kafka consumer polling):
1. ``single_1000``: single events at 1,000 req/s (target: every answer 202, p99 <= 50 ms), CPU per event per process;
2. ``max_sustained``: a step search for the highest rate with >= 99.9 % 202 and p99 <= 100 ms (target >= 2,000);
3. ``below_capacity``: 25, 50 and 75 % of that rate, each for a step (target: no 5xx at all);
4. ``overload``: twice that rate (targets: accepted throughput >= 80 % of the sustained rate with p99 <= 200 ms,
   every refusal a 429 with p99 <= 20 ms, no 5xx), then one more request served normally;
5. ``batch``: 500-event POST /api/logs/batch requests (target >= 50,000 events/s acknowledged), if the route exists;
6. ``lost``: every accepted id of phases 1-4 looked up in PostgreSQL once the consumer caught up (target: 0).
``--overload-only RATE`` runs phase 4 alone at twice RATE (the sustained rate of an earlier run) and phase 6 for it,
without the baselines: the quick way to check a change against overload.
Baselines in the same run: ``noop_runner`` (bench/noop: the same runner and concurrency, a handler that does
nothing) and ``kafka_producer`` (plain confluent-kafka processes, one event at a time, acks=all).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    REPO,
    Attack,
    CpuMeter,
    attack,
    children,
    emit,
    listener_pid,
    progress,
    runner,
    runner_process_groups,
    service_ports,
    services_env,
    wait_until_idle,
)

BENCH = Path(__file__).resolve().parent
PRODUCER_INSTANCES = 16  # as many as ProducerFunction's ReservedConcurrentExecutions
BATCH_SIZE = 500
BATCH_CONNECTIONS = 4


@dataclass(frozen=True)
class Plan:
    single_s: float
    steps: tuple[int, ...]
    steps_down: tuple[int, ...]
    step_s: float
    overload_s: float
    batch_s: float
    baseline_s: float
    warmup_s: float
    kafka_processes: int = PRODUCER_INSTANCES


FULL = Plan(
    single_s=60,
    steps=(1200, 1500, 2000, 2500, 3000),
    steps_down=(900, 800, 700, 600, 500, 400, 300, 200, 100),
    step_s=15,
    overload_s=30,
    batch_s=15,
    baseline_s=15,
    warmup_s=10,
)
QUICK = Plan(
    single_s=8,
    steps=(1200, 1500),
    steps_down=(800, 500, 300, 100),
    step_s=4,
    overload_s=5,
    batch_s=4,
    baseline_s=4,
    warmup_s=3,
)


def event(organization_id: str) -> dict[str, Any]:
    """The seed's body."""
    return {"organizationId": organization_id, "level": "INFO", "message": "User logged in", "source": "auth-service"}


def body(organization_id: str) -> bytes:
    return json.dumps(event(organization_id)).encode()


def sustained(result: Attack, p99_limit_ms: float) -> bool:
    p99 = result.latency(99)
    return result.count(202) >= 0.999 * len(result.results) and p99 is not None and p99 <= p99_limit_ms


def cpu_per_event(meter: CpuMeter, events: int, result: Attack) -> dict[str, float | None]:
    figures = meter.per_event_ms(events)
    figures["load_generator_vegeta"] = round(result.load_generator_cpu_s * 1000 / events, 3) if events else None
    return figures


def ids(result: Attack) -> set[str]:
    return {r.value for r in result.results if r.code == 202 and r.value}


# ------------------------------------------------------------------------------------------------- phases
def single_and_search(
    url: str, plan: Plan, groups: dict[str, list[int]], orgs: dict[str, set[str]], keys: Keys
) -> dict:
    figures: dict[str, Any] = {}
    org = f"bench-single-{uuid.uuid4().hex[:8]}"
    progress(f"single events at 1,000 req/s for {plan.single_s:g} s")
    meter = CpuMeter(groups).start()
    single = attack(url, body(org), rate=1000, duration_s=plan.single_s, headers=keys.headers(org))
    meter.stop()
    orgs[org] = ids(single)
    figures["single_1000"] = {
        **single.summary(),
        "all_202": single.count(202) == len(single.results),
        "target": "all 202, p99 <= 50 ms",
        "met": single.count(202) == len(single.results) and (single.latency(99) or 1e9) <= 50,
        "cpu_ms_per_event": cpu_per_event(meter, single.count(202), single),
    }

    # Up from 1,000 while the rate is sustained, or down from it until one is.
    upward = sustained(single, 100)
    best = 1000 if upward else 0
    steps = []
    for rate in plan.steps if upward else plan.steps_down:
        org = f"bench-step-{rate}-{uuid.uuid4().hex[:8]}"
        progress(f"step search: {rate} req/s for {plan.step_s:g} s")
        step = attack(url, body(org), rate=rate, duration_s=plan.step_s, headers=keys.headers(org))
        orgs[org] = ids(step)
        steps.append({"rate": rate, "p99_ms": step.latency(99), "codes": step.codes()})
        if sustained(step, 100):
            best = rate
            if not upward:
                break
        elif upward:
            break
    figures["max_sustained"] = {
        "rate": best,
        "steps": steps,
        "target": ">= 2000 req/s with p99 <= 100 ms",
        "met": best >= 2000,
    }
    return figures


def server_errors_pct(result: Attack) -> float:
    """The share of answers that are 5xx (or no answer at all), in percent."""
    failed = sum(1 for r in result.results if r.code >= 500 or r.code == 0)
    return round(100 * failed / len(result.results), 3) if result.results else 0.0


def below_capacity(url: str, best: int, plan: Plan, orgs: dict[str, set[str]], keys: Keys) -> dict[str, Any]:
    """Below the sustained rate, every request is served: the share of 5xx at 25, 50 and 75 % of it."""
    points = {}
    for percent in (25, 50, 75):
        rate = max(1, round(best * percent / 100))
        org = f"bench-below-{percent}-{uuid.uuid4().hex[:8]}"
        progress(f"below capacity: {percent} % of {best} = {rate} req/s for {plan.step_s:g} s")
        result = attack(url, body(org), rate=rate, duration_s=plan.step_s, headers=keys.headers(org))
        orgs[org] = ids(result)
        points[f"{percent}%"] = {
            "rate": rate,
            "codes": result.codes(),
            "server_errors_pct": server_errors_pct(result),
            "p99_ms": result.latency(99),
        }
    return {
        "sustained_rate": best,
        "points": points,
        "target": "no 5xx at 25, 50 and 75 % of the sustained rate",
        "met": all(point["server_errors_pct"] == 0 for point in points.values()),
    }


def overload(url: str, best: int, plan: Plan, orgs: dict[str, set[str]], keys: Keys) -> dict[str, Any]:
    """Twice the sustained rate: the goodput stays, and what is refused is refused fast, with 429."""
    org = f"bench-overload-{uuid.uuid4().hex[:8]}"
    headers = keys.headers(org)
    rate = 2 * best
    progress(f"overload: {rate} req/s (twice {best}) for {plan.overload_s:g} s")
    result = attack(url, body(org), rate=rate, duration_s=plan.overload_s, headers=headers)
    orgs[org] = ids(result)
    time.sleep(2)
    after = attack(url, body(org), rate=1, duration_s=1, headers=headers)
    orgs[org] |= ids(after)
    throttled_p99, accepted_p99 = result.latency(99, code=429), result.latency(99, code=202)
    accepted_per_s = round(result.count(202) / plan.overload_s, 1)
    refusals = len(result.results) - result.count(202)
    return {
        **result.summary(),
        "sustained_rate": best,
        "accepted_per_s": accepted_per_s,
        "goodput_pct_of_sustained": round(100 * accepted_per_s / best, 1),
        "accepted_p99_ms": accepted_p99,
        "refused": refusals,
        "refused_429": result.count(429),
        "throttled_p99_ms": throttled_p99,
        "server_errors_pct": server_errors_pct(result),
        "served_normally_after": after.codes(),
        "target": "accepted >= 80 % of the sustained rate with p99 <= 200 ms; every refusal a 429 within 20 ms "
        "(p99); then served normally",
        "met": accepted_per_s >= 0.8 * best
        and (accepted_p99 or 1e9) <= 200
        and result.count(429) == refusals
        and (throttled_p99 or 0) <= 20
        and after.codes() == {"202": 1},
    }


def batch(url: str, plan: Plan, keys: Keys) -> dict[str, Any]:
    org = f"bench-batch-{uuid.uuid4().hex[:8]}"
    headers = keys.headers(org)
    payload = json.dumps([event(org) for _ in range(BATCH_SIZE)]).encode()
    probe = attack(
        url, json.dumps([event(org)]).encode(), rate=1, duration_s=1, read_body=lambda c, b: b[:300], headers=headers
    )
    code = probe.results[0].code if probe.results else 0
    if code in (404, 405):
        return {"unavailable": f"POST /api/logs/batch answered {code}: the route does not exist on this branch"}
    progress(f"batch: {BATCH_SIZE}-event requests, {BATCH_CONNECTIONS} connections, {plan.batch_s:g} s")
    result = attack(
        url,
        payload,
        rate=0,
        duration_s=plan.batch_s,
        connections=BATCH_CONNECTIONS,
        read_body=accepted_items,
        headers=headers,
    )
    events = sum(r.value or 0 for r in result.results)
    rate = round(events / plan.batch_s)
    return {
        "requests": len(result.results),
        "codes": result.codes(),
        "events_acknowledged": events,
        "events_per_s": rate,
        "p99_ms": result.latency(99),
        "target": ">= 50000 events/s acknowledged",
        "met": rate >= 50_000,
    }


def accepted_items(code: int, answer: bytes) -> int:
    """How many items of a batch answer were accepted (per-item results: an id and no error)."""
    if not 200 <= code < 300:
        return 0
    document = json.loads(answer)
    items = document if isinstance(document, list) else None
    if isinstance(document, dict):
        items = next((document[k] for k in ("items", "results", "events") if isinstance(document.get(k), list)), None)
    if items is None:
        return 0
    return sum(
        1
        for item in items
        if isinstance(item, dict) and item.get("id") and not item.get("error") and item.get("status") != "error"
    )


def lost(orgs: dict[str, set[str]], database_url: str, timeout_s: float = 90) -> dict[str, Any]:
    """Accepted ids that never reached PostgreSQL, once the consumer caught up (or gave up waiting)."""
    accepted = sum(len(v) for v in orgs.values())
    progress(f"waiting for {accepted} accepted events to reach PostgreSQL")
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            missing = 0
            for org, wanted in orgs.items():
                rows = conn.execute("SELECT id::text FROM log_events WHERE organization_id = %s", (org,)).fetchall()
                missing += len(wanted - {row[0] for row in rows})
            if missing == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
    return {"accepted": accepted, "missing_in_postgresql": missing, "target": 0, "met": missing == 0}


# ---------------------------------------------------------------------------------------------- baselines
def noop_baseline(env: dict[str, str], plan: Plan) -> dict[str, Any]:
    template = BENCH / "noop" / "template.yaml"
    with runner(template, env, ["--no-kafka"]) as process:  # provisioned like the producer (bench/noop)
        wait_until_idle(children(process.proc.pid))
        url = process.url + "/api/logs"
        attack(url, body("noop"), rate=200, duration_s=2)
        groups = runner_process_groups(process, {})
        progress(f"noop runner baseline: 1,000 req/s for {plan.baseline_s:g} s")
        meter = CpuMeter(groups).start()
        result = attack(url, body("noop"), rate=1000, duration_s=plan.baseline_s)
        meter.stop()
        best = 1000 if sustained(result, 100) else 0
        for rate in (*plan.steps, 6000):
            progress(f"noop runner baseline: {rate} req/s for {plan.step_s:g} s")
            if not sustained(attack(url, body("noop"), rate=rate, duration_s=plan.step_s), 100):
                break
            best = rate
    return {
        "at_1000": {**result.summary(), "cpu_ms_per_event": cpu_per_event(meter, result.count(202), result)},
        "max_sustained_rate": best,
    }


def kafka_baseline(env: dict[str, str], processes: int, seconds: float, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """``processes`` plain confluent-kafka producers (bench/_kafka_producer.py ``args``) side by side."""
    progress(f"plain confluent-kafka baseline: {processes} processes for {seconds:g} s")
    meter = CpuMeter(broker_group(env)).start()
    command = [sys.executable, str(BENCH / "_kafka_producer.py"), "--seconds", str(seconds), *args]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    outputs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    meter.stop()
    events = sum(o["events"] for o in outputs)
    client_cpu_s = sum(o["cpu_s"] for o in outputs)
    return {
        "processes": processes,
        "events_per_s": round(events / seconds),
        "p99_ms_worst_process": max(o["p99_ms"] for o in outputs),
        "cpu_ms_per_event": {
            "producer_processes": round(client_cpu_s * 1000 / events, 3) if events else None,
            **meter.per_event_ms(events),
        },
        "cpu_s": {"producer_processes": client_cpu_s, **meter.used_s},
    }


def broker_group(env: dict[str, str]) -> dict[str, list[int]]:
    pid = listener_pid(service_ports(env)["kafka_broker"])
    return {"kafka_broker": [pid]} if pid else {}


# ---------------------------------------------------------------------------------------------------- keys
class Keys:
    """An ingest key per bench organization, made the way `make key` makes one (a real key in PostgreSQL)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**env, "PYTHONPATH": str(REPO / "layers" / "logpipe")}

    def headers(self, organization_id: str) -> dict[str, str]:
        command = [sys.executable, "-m", "logpipe.ops.keys", "--org", organization_id, "--scopes", "ingest"]
        made = subprocess.run(command, env=self.env, check=True, capture_output=True, text=True)
        return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}


# The bench measures the intake's capacity, not a tenant's quota: the runner's functions get a per-organization
# rate limit far above any rate offered here (the limiter still runs: its cost is in the figures).
UNLIMITED_TENANTS = {"INGEST_RATE_BYTES": str(10**12), "INGEST_BURST_BYTES": str(10**12)}


# ---------------------------------------------------------------------------------------------------- main
def overload_only(env: dict[str, str], plan: Plan, sustained_rate: int) -> dict[str, Any]:
    """Phase 4 alone, at twice ``sustained_rate``, after the same warm-up, and its accepted ids checked."""
    orgs: dict[str, set[str]] = {}
    keys = Keys(env)
    with runner(REPO / "template.yaml", {**env, **UNLIMITED_TENANTS}) as process:
        progress("waiting for the instances' cold starts")
        wait_until_idle(children(process.proc.pid))
        url = process.url + "/api/logs"
        attack(url, body("bench-warmup"), rate=500, duration_s=plan.warmup_s, headers=keys.headers("bench-warmup"))
        time.sleep(2)
        figures = {"overload": overload(url, sustained_rate, plan, orgs, keys)}
        figures["lost"] = lost(orgs, env["DATABASE_URL"])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    parser.add_argument("--overload-only", type=int, metavar="RATE", help="only the overload phase, at twice RATE")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    env = services_env()
    if args.overload_only:
        emit(overload_only(env, plan, args.overload_only))
        return 0
    figures: dict[str, Any] = {}
    orgs: dict[str, set[str]] = {}
    keys = Keys(env)
    with runner(REPO / "template.yaml", {**env, **UNLIMITED_TENANTS}) as process:  # as `make run` starts it
        progress("waiting for the instances' cold starts")
        wait_until_idle(children(process.proc.pid))
        url = process.url + "/api/logs"
        # Warm up at half the first phase's rate: the broker's JIT, the instances' connections and caches.
        attack(url, body("bench-warmup"), rate=500, duration_s=plan.warmup_s, headers=keys.headers("bench-warmup"))
        groups = runner_process_groups(process, service_ports(env))
        figures.update(single_and_search(url, plan, groups, orgs, keys))
        best = figures["max_sustained"]["rate"]
        for name, phase in (("below_capacity", below_capacity), ("overload", overload)):
            time.sleep(2)
            figures[name] = phase(url, best, plan, orgs, keys) if best else {"unavailable": "no rate was sustained"}
        figures["batch"] = batch(process.url + "/api/logs/batch", plan, keys)
        figures["lost"] = lost(orgs, env["DATABASE_URL"])
    figures["noop_runner"] = noop_baseline(env, plan)
    figures["kafka_producer"] = kafka_baseline(env, plan.kafka_processes, plan.baseline_s)
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

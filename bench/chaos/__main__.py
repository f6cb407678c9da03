"""`make chaos`: faults under load, nothing lost, nothing doubled (issue 16).

    python bench/chaos [--short] [--seed N] [--faults NAME,...] [--rate R]

A workload (workload.py) posts at a constant rate through the HTTP API of a runner on the harness's own services
(stack.py: private ports and state folder, because the faults kill them), while a seeded schedule (schedule.py)
injects the faults of faults.py one at a time. Then the load stops, the consumer catches up, and the checker
(checker.py) holds PostgreSQL and the dead-letter topic against the ledger of answers (ledger.py). Results go to
bench/results/chaos.json and the README's table (report.py); the short form (CI) to bench/results/chaos-short.json.
Exit status 1 when a check fails (the ids, or the attempts answered 500, are printed), 2 when the harness itself
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1] / "local"), str(HERE.parents[1] / "layers/logpipe")]

import checker  # noqa: E402
import report  # noqa: E402
import schedule  # noqa: E402
import stack  # noqa: E402
from _common import progress, wait_until_idle  # noqa: E402
from faults import FAULTS, Stage  # noqa: E402
from ingest import UNLIMITED_TENANTS, Keys  # noqa: E402
from lag import LagProbe  # noqa: E402
from ledger import Ledger  # noqa: E402
from workload import Requests, Workload  # noqa: E402

DRAIN_TIMEOUT_S = 180
STEADY_TIMEOUT_S = 120


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help=f"CI's form: {', '.join(schedule.SHORT)}")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's schedule (printed at the start)")
    parser.add_argument("--faults", default=None, help=f"comma-separated, of: {', '.join(FAULTS)}")
    parser.add_argument("--rate", type=float, default=None, help="requests per second offered")
    return parser.parse_args()


def wait_steady(ledger: Ledger, quiet_s: float) -> float:
    """Until the stack answered ``quiet_s`` seconds without a failure (cold instances, a broker just started);
    the seconds it took."""
    started = time.time()
    while time.time() - started < STEADY_TIMEOUT_S:
        time.sleep(1)
        failures = [a.started for a in ledger.attempts[-2000:] if checker.failed(a)]
        if time.time() - max(failures, default=started) >= quiet_s:
            break
    return round(time.time() - started, 1)


def run_faults(steps: list[schedule.Step], stage: Stage) -> list[tuple[str, float, float]]:
    """Each fault after its stretch of load; (name, injected at, restored at) for each."""
    timeline = []
    for step in steps:
        time.sleep(step.after_s)
        progress(f"fault {step.fault}")
        injected = time.time()
        FAULTS[step.fault](stage)
        restored = time.time()
        progress(f"fault {step.fault}: back after {restored - injected:.1f} s")
        timeline.append((step.fault, injected, restored))
    return timeline


def main() -> int:
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    plan = schedule.QUICK if args.short else schedule.FULL
    names = args.faults.split(",") if args.faults else list(schedule.SHORT if args.short else FAULTS)
    unknown = set(names) - set(FAULTS)
    if unknown:
        raise SystemExit(f"unknown faults: {', '.join(sorted(unknown))}")
    steps = schedule.schedule(names, plan, seed)
    rate = args.rate or plan.rate
    progress(f"chaos: seed {seed} (repeat with --seed {seed}); faults {', '.join(names)}")

    cfg = stack.use_private_services()
    env = stack.up(cfg)
    runner = stack.Runner({**env, **UNLIMITED_TENANTS})
    try:
        organization_id = f"chaos-{uuid.uuid4().hex[:8]}"
        headers = Keys(env).headers(organization_id)
        runner.start()
        wait_until_idle(runner.descendants())
        events_topic, dlq_topic = cfg.topics
        probe = LagProbe(cfg.bootstrap_servers, events_topic.name, stack.consumer_group())
        ledger = Ledger()
        workload = Workload(runner.url, Requests(organization_id, headers), ledger, rate, seed)
        started_at, load_started = datetime.now(UTC).isoformat(timespec="seconds"), time.time()
        load_average = os.getloadavg()
        probe.start()
        workload.start()
        progress(f"load: {rate:g} requests/s; warm-up until {plan.warmup_s:g} s without a failed answer")
        warmed_up_s = wait_steady(ledger, plan.warmup_s)
        warmup_answers = checker.by_status(ledger.attempts)
        timeline = run_faults(steps, Stage(cfg, runner, random.Random(seed)))
        time.sleep(plan.tail_s)
        progress("load stopping; waiting for requests in flight")
        workload.stop()
        stopped = time.time()
        drained_s = probe.wait_drained(DRAIN_TIMEOUT_S)
        probe.stop()
        progress(f"consumer caught up in {drained_s} s; checking")
        stored = checker.stored_counts(cfg.database_url, organization_id)
        letters = checker.dead_letters(cfg.bootstrap_servers, dlq_topic.name, since=load_started)
    except Exception as exc:
        progress(f"chaos harness failed: {exc!r}\nrunner log:\n{runner.log_tail()}")
        return 2
    finally:
        runner.stop()
        runner.save_log(report.results_path(args.short).with_suffix(".runner.log"))
        stack.down()

    slot_ends = [injected for _, injected, _ in timeline[1:]] + [stopped]
    runs = [checker.FaultRun(n, i, r, end) for (n, i, r), end in zip(timeline, slot_ends, strict=True)]
    checks = checker.check(ledger, stored, letters, runs)
    results = {
        "started_at": started_at,
        "seed": seed,
        "form": "short" if args.short else "full",
        "offered_requests_per_s": rate,
        "load_average_at_start": [round(x, 2) for x in load_average],
        "host": "2 vCPUs shared with other engineers' test runs: timings are those of a busy host",
        "warm_up_s": warmed_up_s,
        "warm_up_answers": warmup_answers,
        "requests_not_sent_clients_busy": workload.not_sent,
        "requests_given_up": ledger.gave_up,
        "attempts_by_request_kind": checker.by_kind_and_status(ledger.attempts),
        "events_acknowledged": len(ledger.acknowledged),
        "events_refused": len(ledger.refused),
        "rows_stored": sum(stored.values()),
        "stored_without_acknowledgement": sum(1 for i in stored if i not in ledger.acknowledged),
        "consumer_drained_after_load_s": None if drained_s is None else round(drained_s, 1),
        "checks": checks,
        "faults": [checker.fault_figures(run, ledger.attempts, probe.samples, ledger, stored) for run in runs],
    }
    report.write(results, report.results_path(args.short))
    report.write_attempts(ledger.attempts, report.results_path(args.short).with_suffix(".attempts.csv"))
    if not args.short and not args.faults:
        report.update_readme(results)
    print(report.table(results))
    print(json.dumps(checks, indent=2))
    failures = [name for name, found in checks.items() if found["count"] and _gates(name, args.short)]
    if checks["answers_500"]["count"] and args.short:
        progress(f"chaos: {checks['answers_500']['count']} answers 500 (listed above; the full form fails on them)")
    if failures:
        progress(f"chaos: FAILED checks {', '.join(failures)} (seed {seed})")
        return 1
    progress(f"chaos: every check passed (seed {seed})")
    return 0


def _gates(check: str, short: bool) -> bool:
    """Whether a found case fails the run. Every check does in the full form. CI's short form fails on what breaks
    the promise of a 2xx (lost, doubled, refused yet stored, a dead letter without reason) and prints its 500s:
    a few still come at some broker's returns (11 in one CI run of three faults, none in the next full run), and
    a CI that fails at random lands nothing (docs/chaos.md, "What the runs found")."""
    return not (short and check == "answers_500")


if __name__ == "__main__":
    sys.exit(main())

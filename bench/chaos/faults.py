"""The faults, one function each: break a part of the private stack, bring it back, and say when it was back.

Services are stopped and started with local/backing_services (the same code as `make services`); processes are
signalled by pid, never by name."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from backing_services.kafka import Kafka
from backing_services.postgres import Postgres, clean_env
from backing_services.process import HOST, port_open, run
from backing_services.redis import Redis
from backing_services.settings import Config
from stack import Runner, wait_gone

KAFKA_PAUSE_S = 20
POSTGRES_DOWN_S = 15
TABLE_LOCK_S = 10


@dataclass(frozen=True)
class Stage:
    """What a fault needs to reach: the private services' settings, the runner, the seeded randomness."""

    cfg: Config
    runner: Runner
    random: random.Random


def runner_kill(stage: Stage) -> None:
    stage.runner.kill()
    stage.runner.start()


def _kill_instance(stage: Stage, function: str) -> None:
    instances = stage.runner.instances(function)
    if not instances:
        raise RuntimeError(f"no {function} instance to kill")
    victim = stage.random.choice(instances)
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)


def producer_instance_kill(stage: Stage) -> None:
    _kill_instance(stage, "producer")


def consumer_instance_kill(stage: Stage) -> None:
    _kill_instance(stage, "consumer")


def _kafka_pid(cfg: Config) -> int:
    pid = Kafka(cfg).our_pid()
    if pid is None:
        raise RuntimeError("the private Kafka broker is not running")
    return pid


def kafka_kill(stage: Stage) -> None:
    pid = _kafka_pid(stage.cfg)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    while port_open(HOST, stage.cfg.kafka_port):  # the JVM's other threads still hold the listener a moment
        time.sleep(0.05)
    Kafka(stage.cfg).up()


def kafka_pause(stage: Stage) -> None:
    pid = _kafka_pid(stage.cfg)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(KAFKA_PAUSE_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def postgres_stop(stage: Stage) -> None:
    """`pg_ctl stop -m immediate` (no checkpoint: a crash, as far as the data is concerned), then started again."""
    postgres = Postgres(stage.cfg)
    bindir = postgres.bindir()
    assert bindir is not None
    command = [bindir / "pg_ctl", "-D", postgres.data, "-m", "immediate", "-w", "-s", "stop"]
    run(command, timeout=60, what="pg_ctl stop -m immediate", env=clean_env(), cwd=postgres.home,
        user=postgres.run_user())  # fmt: skip
    time.sleep(POSTGRES_DOWN_S)
    postgres.up()


def redis_restart(stage: Stage) -> None:
    """Stopped, its data files removed, started again empty: idempotency records, limits, breaker state, caches
    are gone."""
    redis = Redis(stage.cfg)
    redis.down()
    shutil.rmtree(redis.data, ignore_errors=True)
    redis.up()


def events_table_lock(stage: Stage) -> None:
    """A slow PostgreSQL: a transaction holds an EXCLUSIVE lock on log_events (writes wait, reads go on)."""
    with psycopg.connect(stage.cfg.database_url) as conn:
        conn.execute("LOCK TABLE log_events IN EXCLUSIVE MODE")
        time.sleep(TABLE_LOCK_S)
        conn.rollback()


FAULTS: dict[str, Callable[[Stage], None]] = {
    fault.__name__: fault
    for fault in (
        runner_kill,
        producer_instance_kill,
        consumer_instance_kill,
        kafka_kill,
        kafka_pause,
        postgres_stop,
        redis_restart,
        events_table_lock,
    )
}

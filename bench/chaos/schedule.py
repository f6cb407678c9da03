"""The fault schedule: which faults, in which order, and how long the load runs before each (seeded, so a run can be
repeated with its seed)."""

from __future__ import annotations

import random
from dataclasses import dataclass

# CI's short form: the broker's loss, the database's loss and the runner's loss, about two minutes.
SHORT = ("kafka_kill", "postgres_stop", "runner_kill")


@dataclass(frozen=True)
class Step:
    fault: str
    after_s: float  # load before the fault begins (counted from the previous fault's recovery)


@dataclass(frozen=True)
class Plan:
    rate: float  # requests per second offered
    warmup_s: float
    gap_s: tuple[float, float]  # the load between two faults: uniform in this range
    tail_s: float  # load after the last fault


FULL = Plan(rate=40, warmup_s=15, gap_s=(15, 30), tail_s=30)
QUICK = Plan(rate=40, warmup_s=10, gap_s=(10, 16), tail_s=15)


def schedule(names: list[str], plan: Plan, seed: int) -> list[Step]:
    rng = random.Random(seed)
    return [Step(name, rng.uniform(*plan.gap_s)) for name in names]

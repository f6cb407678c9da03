"""Dependency health: each backing service probed concurrently, each bounded by the dependency timeout."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from logpipe import cache, db, kafka
from logpipe.config import Settings
from logpipe.models import DependencyHealth, HealthReport

Probe = Callable[[], None]

DEFAULT_PROBES: dict[str, Probe] = {"postgresql": db.ping, "redis": cache.ping, "kafka": kafka.ping}


def check_health(settings: Settings, probes: dict[str, Probe] = DEFAULT_PROBES) -> HealthReport:
    executor = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="health")
    try:
        futures = {name: executor.submit(_timed, probe) for name, probe in probes.items()}
        # The margin lets a client library report its own timeout before we give up on it.
        deadline = time.monotonic() + settings.dependency_timeout_seconds + 0.5
        results = {
            name: _result(future, deadline, settings.dependency_timeout_seconds) for name, future in futures.items()
        }
    finally:
        # A probe stuck past its deadline must not hold the answer hostage.
        executor.shutdown(wait=False, cancel_futures=True)
    overall = "up" if all(result.status == "up" for result in results.values()) else "down"
    return HealthReport(status=overall, dependencies=results)


def _timed(probe: Probe) -> DependencyHealth:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure means "down"; the message says why
        return DependencyHealth(status="down", latency_ms=_elapsed_ms(started), error=f"{type(exc).__name__}: {exc}")
    return DependencyHealth(status="up", latency_ms=_elapsed_ms(started))


def _result(future, deadline: float, timeout: float) -> DependencyHealth:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return DependencyHealth(status="down", latency_ms=timeout * 1000, error=f"no answer within {timeout}s")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

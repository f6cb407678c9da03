"""Dependency health: each backing service probed concurrently, each bounded by the dependency timeout.

Answers say "up"/"down", a latency and, when down, only "unreachable" or "timeout": driver messages (which
name hosts) go to the log. cached_health() reuses a report for `health_cache_seconds` per instance, so a flood
of health checks costs the dependencies one probe each per interval.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from logpipe.adapters import cache, kafka, postgres
from logpipe.config import Settings
from logpipe.observability import logger
from logpipe.read.models import DependencyHealth, HealthReport

Probe = Callable[[], None]

DEFAULT_PROBES: dict[str, Probe] = {"postgresql": postgres.ping, "redis": cache.ping, "kafka": kafka.ping}


_last_report: tuple[float, HealthReport] | None = None
_probing = threading.Lock()


def cached_health(settings: Settings, probes: dict[str, Probe] = DEFAULT_PROBES) -> HealthReport:
    global _last_report
    with _probing:  # concurrent checks wait for one probe rather than each probing
        if _last_report is None or time.monotonic() - _last_report[0] > settings.health_cache_seconds:
            _last_report = (time.monotonic(), check_health(settings, probes))
        return _last_report[1]


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
    except Exception as exc:  # any failure means "down"; the log says why
        logger.warning("health probe failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return DependencyHealth(status="down", latency_ms=_elapsed_ms(started), error="unreachable")
    return DependencyHealth(status="up", latency_ms=_elapsed_ms(started))


def _result(future, deadline: float, timeout: float) -> DependencyHealth:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return DependencyHealth(status="down", latency_ms=timeout * 1000, error="timeout")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

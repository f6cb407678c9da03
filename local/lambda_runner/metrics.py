"""The runner's Prometheus metrics: its own (requests, instances, invocations, Kafka sources) and the functions'.

Functions publish metrics the Lambda way, as CloudWatch Embedded Metric Format (EMF) documents printed on stdout
(Powertools Metrics does this). The runner reads each instance's stdout (:class:`StdoutRelay`), passes every line
on to its own stdout, and turns each EMF document into Prometheus samples (:meth:`Instruments.record_emf`):

- a metric named ``*_total`` becomes a counter (incremented by each value);
- a metric in a time unit (Seconds, Milliseconds, Microseconds) becomes a histogram in seconds;
- anything else becomes a gauge holding the most recent value (e.g. a circuit breaker's state).

Labels: ``function`` (the template's logical id) and the document's dimensions named in ``ALLOWED_DIMENSIONS``,
with values of at most ``MAX_LABEL_VALUE_CHARS`` characters; other dimensions (``service``, an organization id,
anything unbounded) are dropped, and a metric stops taking new label sets once it has ``MAX_SERIES_PER_METRIC``
(counted in ``runner_emf_dropped_total``). A metric keeps the label names of the first document that named it.

Several processes report: the HTTP front, and the Kafka event sources when they run in processes of their own.
prometheus_client's multiprocess mode collects them: :func:`enable_multiprocess` (called by the runner before any
metric exists) creates a per-run directory and names it in ``PROMETHEUS_MULTIPROC_DIR``, which processes started
afterwards inherit; each process writes its samples there, and ``/metrics`` (:func:`exposition`) reads them all.
Gauges count live processes only (``livesum``/``mostrecent``).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("runner")

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_PREFIX = "lambda-runner-metrics-"  # then the runner's process id
ALLOWED_DIMENSIONS = frozenset({"circuit", "route", "status", "outcome", "reason", "level", "topic"})
MAX_LABEL_VALUE_CHARS = 64
MAX_SERIES_PER_METRIC = 100
# Seconds: from a fast in-memory answer to a slow batch; the same buckets for every duration.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TIME_UNITS = {"Seconds": 1.0, "Milliseconds": 1e-3, "Microseconds": 1e-6}
# Every value the runner's labels take that is known in advance: those series exist at 0 from the start, so that a
# dashboard reads 0 and not "No data" before the first event of their kind (Prometheus' instrumentation guidance,
# "avoid missing metrics").
EMF_DROP_REASONS = ("label_value", "malformed", "too_many_series")
KAFKA_BATCH_OUTCOMES = ("ok", "partial", "failed")
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


class Instruments:
    """Every metric the runner exposes; one per process (see :func:`instruments`)."""

    def __init__(self, registry: Any = None) -> None:
        """``registry``: a ``CollectorRegistry`` in single-process use (tests); None in multiprocess mode."""
        from prometheus_client import Counter, Gauge, Histogram

        self._registry = registry
        self._lock = threading.Lock()
        self._emf: dict[str, tuple[Any, tuple[str, ...]]] = {}
        self._series: dict[str, set[tuple[str, ...]]] = {}
        self._emf_children: dict[tuple[Any, ...], tuple[Callable[[float], None], float]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        kw = {"registry": registry}
        self.http_requests = Counter(
            "runner_http_requests", "HTTP API requests answered", ["function", "route", "status"], **kw
        )
        self.http_duration = Histogram(
            "runner_http_request_duration_seconds",
            "HTTP API requests: from arrival to answer",
            ["function", "route"],
            buckets=DURATION_BUCKETS,
            **kw,
        )
        self.invocations = Counter(
            "runner_invocations", "Function invocations by outcome", ["function", "outcome"], **kw
        )
        self.invocation_duration = Histogram(
            "runner_invocation_duration_seconds",
            "Function invocations: waiting for an instance plus running the handler",
            ["function"],
            buckets=DURATION_BUCKETS,
            **kw,
        )
        self.cold_starts = Counter("runner_cold_starts", "Instances started (Lambda cold starts)", ["function"], **kw)
        self.instances = Gauge(
            "runner_instances", "Function instances by state", ["function", "state"], multiprocess_mode="livesum", **kw
        )
        self.kafka_lag = Gauge(
            "runner_kafka_consumer_lag",
            "Records behind the partition's end, per assigned partition",
            ["function", "topic", "partition"],
            multiprocess_mode="livesum",
            **kw,
        )
        self.kafka_batches = Counter(
            "runner_kafka_batches", "Kafka batches delivered, by outcome", ["function", "outcome"], **kw
        )
        self.kafka_retries = Counter("runner_kafka_retries", "Kafka batches delivered again", ["function"], **kw)
        self.dead_letters = Counter(
            "runner_dead_letters",
            "Records given up on after the retries (sent to the on-failure destination, or discarded)",
            ["function", "destination"],
            **kw,
        )
        self.emf_dropped = Counter(
            "runner_emf_dropped", "EMF samples or dimensions not turned into metrics", ["reason"], **kw
        )
        for reason in EMF_DROP_REASONS:
            self.child(self.emf_dropped, reason)

    # the runner's own -------------------------------------------------------------------------------------
    def declare_function(self, function: str, outcomes: Iterable[str]) -> None:
        """A function's series at 0 before anything happens to it: cold starts, and invocations by outcome."""
        self.child(self.cold_starts, function)
        for outcome in outcomes:
            self.child(self.invocations, function, outcome)

    def declare_kafka_source(self, function: str, destination: str) -> None:
        """An event source's series at 0 before its first batch: batches by outcome, retries, dead letters."""
        for outcome in KAFKA_BATCH_OUTCOMES:
            self.child(self.kafka_batches, function, outcome)
        self.child(self.kafka_retries, function)
        self.child(self.dead_letters, function, destination)

    def child(self, metric: Any, *label_values: str) -> Any:
        """``metric.labels(...)``, cached: the lookup costs more than the increment (hot path)."""
        key = (id(metric), label_values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*label_values)
        return found

    def http_request(self, function: str, route: str, status: int, seconds: float) -> None:
        self.child(self.http_requests, function, route, str(status)).inc()
        self.child(self.http_duration, function, route).observe(seconds)

    def invocation(self, function: str, outcome: str, seconds: float) -> None:
        self.child(self.invocations, function, outcome).inc()
        self.child(self.invocation_duration, function).observe(seconds)

    def instance_counts(self, function: str, busy: int, total: int) -> None:
        self.child(self.instances, function, "busy").set(busy)
        self.child(self.instances, function, "idle").set(total - busy)

    def consumer_lag(self, function: str, lag: dict[tuple[str, int], int]) -> None:
        for (topic, partition), records in lag.items():
            self.child(self.kafka_lag, function, topic, str(partition)).set(records)

    # the functions' EMF ----------------------------------------------------------------------------------
    def record_emf(self, function: str, document: dict[str, Any]) -> int:
        """Turn one EMF document into samples; returns how many values were recorded."""
        directives = (document.get("_aws") or {}).get("CloudWatchMetrics")
        if not isinstance(directives, list):
            return 0
        recorded = 0
        for directive in directives:
            labels = self._labels(function, directive.get("Dimensions"), document)
            for definition in directive.get("Metrics") or []:
                recorded += self._record_metric(definition, document, labels)
        return recorded

    def _labels(self, function: str, dimension_sets: Any, document: dict[str, Any]) -> dict[str, str]:
        labels = {"function": function}
        for dimension_set in dimension_sets or []:
            for name in dimension_set or []:
                if name not in ALLOWED_DIMENSIONS or name in labels:
                    continue
                value = document.get(name)
                if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE_CHARS:
                    self.child(self.emf_dropped, "label_value").inc()
                    continue
                labels[name] = value
        return labels

    def _record_metric(self, definition: dict[str, Any], document: dict[str, Any], labels: dict[str, str]) -> int:
        name = definition.get("Name")
        if not isinstance(name, str) or name not in document:
            self.child(self.emf_dropped, "malformed").inc()
            return 0
        values = document[name] if isinstance(document[name], list) else [document[name]]
        unit = definition.get("Unit") or "None"
        series = self._emf_series(name, unit, labels)
        if series is None:
            return 0
        record, scale = series
        count = 0
        for value in values:
            if not isinstance(value, int | float) or isinstance(value, bool):
                self.child(self.emf_dropped, "malformed").inc()
                continue
            record(value * scale)
            count += 1
        return count

    def _emf_series(self, name: str, unit: str, labels: dict[str, str]) -> tuple[Callable[[float], None], float] | None:
        """How to record one value of this metric and label set (observe/inc/set, unit scale); None: refused."""
        key = (name, unit, tuple(labels.items()))
        found = self._emf_children.get(key)
        if found is not None:
            return found
        with self._lock:
            metric, label_names = self._emf_metric(_NAME_CHARS.sub("_", name), unit, tuple(labels))
            series = self._series.setdefault(name, set())
            label_values = tuple(labels.get(label, "") for label in label_names)
            if label_values not in series and len(series) >= MAX_SERIES_PER_METRIC:
                self.child(self.emf_dropped, "too_many_series").inc()
                return None
            series.add(label_values)
            child = metric.labels(*label_values)
            if unit in TIME_UNITS:
                found = (child.observe, TIME_UNITS[unit])
            elif name.endswith("_total"):
                found = (child.inc, 1.0)
            else:
                found = (child.set, 1.0)
            self._emf_children[key] = found
            return found

    def _emf_metric(self, name: str, unit: str, label_names: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
        """The metric behind an EMF name (created with the first label names seen); call with the lock held."""
        from prometheus_client import Counter, Gauge, Histogram

        known = self._emf.get(name)
        if known is None:
            doc = f"EMF metric {name} ({unit}) published by the functions"
            if unit in TIME_UNITS:  # seconds, whatever the EMF unit
                metric = Histogram(name, doc, label_names, buckets=DURATION_BUCKETS, registry=self._registry)
            elif name.endswith("_total"):
                metric = Counter(name.removesuffix("_total"), doc, label_names, registry=self._registry)
            else:
                metric = Gauge(name, doc, label_names, multiprocess_mode="mostrecent", registry=self._registry)
            known = self._emf[name] = (metric, label_names)
        return known


# ---------------------------------------------------------------------------------------------- per process
_instruments: Instruments | None = None
_instruments_lock = threading.Lock()


def instruments() -> Instruments:
    """This process's instruments, created on first use (after :func:`enable_multiprocess` in the runner)."""
    global _instruments
    if _instruments is None:
        with _instruments_lock:
            if _instruments is None:
                _instruments = Instruments()
    return _instruments


def enable_multiprocess() -> str:
    """Give this run its own metrics directory; processes started afterwards inherit it. Idempotent.

    The directory is removed when the runner exits, and, since a runner killed outright (``kill -9``) runs no exit
    handler, the directories of runners no longer running are removed when the next one starts: each is named after
    its runner's process id.
    """
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_VARIABLE):
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    path = os.environ.get(MULTIPROC_VARIABLE)
    if not path:
        owner = os.getpid()
        _remove_directories_of_dead_runners(Path(tempfile.gettempdir()))
        path = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{owner}-")
        os.environ[MULTIPROC_VARIABLE] = path
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))
    return path


def _remove_directories_of_dead_runners(parent: Path) -> None:
    for directory in parent.glob(f"{METRICS_DIR_PREFIX}*"):
        owner = directory.name.removeprefix(METRICS_DIR_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _running(int(owner)):
            shutil.rmtree(directory, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def process_exited(pid: int) -> None:
    """A child that reported metrics is gone: its live gauges (instances, lag) leave the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process of this run."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


# -------------------------------------------------------------------------------------- function stdout
_EMF_MARK = b'"_aws"'
MAX_LINE_BYTES = 1 << 20  # CloudWatch takes EMF documents up to 1 MB


class StdoutRelay:
    """Reads one instance's stdout on the event loop: passes it on to the runner's stdout, records EMF lines."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, function: str) -> None:
        self.loop = loop
        self.fd = fd
        self.function = function
        self._partial = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        _write_stdout(data)
        if not self._partial and data.endswith(b"\n") and _EMF_MARK not in data:
            return  # the common case: whole log lines, no metrics
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_BYTES:  # not a line anyone will finish: stop holding it
            self._partial = b""
        self._record(lines)

    def _record(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            if _EMF_MARK not in line:
                continue
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict):
                instruments().record_emf(self.function, document)

    def close(self) -> None:
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self._partial:
            self._record([self._partial])
            self._partial = b""


def _write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()

"""The process-wide Logger, Metrics and Tracer; every module imports them from here."""

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit


class _Tracer(Tracer):
    """Powertools' Tracer, except that a disabled one leaves methods undecorated.

    Powertools disables tracing outside Lambda, under `sam local` and with POWERTOOLS_TRACE_DISABLED=true, but its
    capture_method still opens a (dummy) X-Ray subsegment around every call: about 50 µs per call, measured, for
    nothing. Whether tracing is on is decided once, at cold start, before the decorators run.
    """

    def capture_method(self, method: Callable[..., Any] | None = None, **options: Any) -> Any:
        if self.disabled:
            return method if method is not None else _undecorated
        return super().capture_method(method, **options)


def _undecorated(method: Callable[..., Any]) -> Callable[..., Any]:
    return method


logger = Logger()
metrics = Metrics()
tracer = _Tracer()

# Error paths and health checks legitimately emit no metric; Powertools would warn on every such call.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

# The counters the functions publish, by the part of the layer that counts them. Each function publishes its own at 0
# when an instance starts (publish_at_zero), so that their series exist before the first event counts in them: a
# dashboard reads 0, not "No data" (Prometheus' instrumentation guidance, "avoid missing metrics"; CloudWatch alike).
# Labelled ones are published at 0 for each label set known up front (CIRCUIT_COUNTERS: per circuit and state).
INGEST_COUNTERS = ("log_events_received_total",)
SINK_COUNTERS = ("log_events_processed_total", "log_events_dead_lettered_total", "log_events_errors_total")
CIRCUIT_COUNTERS = ("circuit_transitions_total",)


def publish_at_zero(counters: tuple[str, ...], dimension_sets: Iterable[Mapping[str, str]] = ({},)) -> None:
    """One EMF document per dimension set with each of these counters at 0, printed now (call it at cold start).
    Without a metrics namespace (POWERTOOLS_METRICS_NAMESPACE) Powertools publishes no metric, and neither does
    this."""
    if not metrics.namespace:
        return
    zeros = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
    for dimensions in dimension_sets:
        for name, value in dimensions.items():
            zeros.add_dimension(name=name, value=value)
        for name in counters:
            zeros.add_metric(name=name, unit=MetricUnit.Count, value=0)
        zeros.flush_metrics()  # clears the metrics and the dimensions


__all__ = [
    "CIRCUIT_COUNTERS",
    "INGEST_COUNTERS",
    "SINK_COUNTERS",
    "MetricUnit",
    "logger",
    "metrics",
    "publish_at_zero",
    "tracer",
]

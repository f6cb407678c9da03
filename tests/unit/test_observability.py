"""The shared Tracer: free when tracing is off, Powertools' own capture_method when it is on."""

import json
import re
from pathlib import Path

import pytest

from logpipe.observability import (
    CIRCUIT_COUNTERS,
    INGEST_COUNTERS,
    SINK_COUNTERS,
    _Tracer,
    metrics,
    publish_at_zero,
    tracer,
)

pytestmark = pytest.mark.unit


def double(value: int) -> int:
    return 2 * value


def test_a_disabled_tracer_leaves_methods_undecorated() -> None:
    assert tracer.disabled  # the tests run with POWERTOOLS_TRACE_DISABLED=true, like sam local and the runner
    assert tracer.capture_method(double) is double
    assert tracer.capture_method(capture_response=False)(double) is double


def test_an_enabled_tracer_wraps_methods_in_subsegments() -> None:
    enabled = _Tracer()
    enabled.disabled = False  # an instance attribute: the shared (Borg) configuration stays untouched
    wrapped = enabled.capture_method(double)
    assert wrapped is not double
    assert wrapped.__wrapped__ is double
    assert wrapped(21) == 42


def test_every_counter_the_functions_publish_is_published_at_zero_by_its_function() -> None:
    repo = Path(__file__).resolve().parents[2]
    sources = [*repo.glob("layers/*/logpipe/**/*.py"), *repo.glob("functions/*/*.py")]
    declared = repo / "layers/logpipe/logpipe/observability.py"
    counted = {
        name for path in sources if path != declared for name in re.findall(r'"([a-z_]+_total)"', path.read_text())
    }
    assert counted == set(INGEST_COUNTERS) | set(SINK_COUNTERS) | set(CIRCUIT_COUNTERS)
    assert "publish_at_zero(INGEST_COUNTERS)" in (repo / "functions/producer/app.py").read_text()
    assert "publish_at_zero(SINK_COUNTERS)" in (repo / "functions/consumer/app.py").read_text()
    assert (
        "publish_at_zero(CIRCUIT_COUNTERS" in (repo / "layers/logpipe/logpipe/adapters/circuit_breaker.py").read_text()
    )
    assert "publisher.report_kafka_circuit(settings)" in (repo / "functions/producer/app.py").read_text()


def test_labelled_counters_are_published_at_zero_once_per_label_set(capsys: pytest.CaptureFixture) -> None:
    publish_at_zero(
        CIRCUIT_COUNTERS, [{"circuit": "kafka", "to_state": "OPEN"}, {"circuit": "kafka", "to_state": "CLOSED"}]
    )
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["circuit"], d["to_state"], d["circuit_transitions_total"]) for d in documents] == [
        ("kafka", "OPEN", [0.0]),
        ("kafka", "CLOSED", [0.0]),
    ]
    assert all(
        d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["circuit", "to_state", "service"]] for d in documents
    )


def test_publish_at_zero_prints_one_emf_document_with_each_counter_at_zero(capsys: pytest.CaptureFixture) -> None:
    publish_at_zero(SINK_COUNTERS)
    document = json.loads(capsys.readouterr().out)
    declared = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert [(m["Name"], m["Unit"]) for m in declared] == [(name, "Count") for name in SINK_COUNTERS]
    assert all(document[name] in (0, [0]) for name in SINK_COUNTERS)


def test_without_a_namespace_nothing_is_published_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(type(metrics), "namespace", property(lambda self: None))
    publish_at_zero(SINK_COUNTERS)  # an instance without POWERTOOLS_METRICS_NAMESPACE still starts
    assert capsys.readouterr().out == ""

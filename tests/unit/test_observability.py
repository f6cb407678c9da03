"""The shared Tracer: free when tracing is off, Powertools' own capture_method when it is on."""

import pytest

from logpipe.observability import _Tracer, tracer

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

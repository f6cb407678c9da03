import json

import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState, CircuitTransition
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitStateRecord

from logpipe.adapters.circuit_breaker import BreakerPolicy, RedisCircuitStore, report_state, report_transition
from logpipe.observability import metrics


@pytest.mark.parametrize(
    ("to_state", "value"), [(CircuitState.OPEN, 2), (CircuitState.HALF_OPEN, 1), (CircuitState.CLOSED, 0)]
)
def test_a_transition_is_a_log_line_and_emf_metrics(
    capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, to_state: CircuitState, value: int
) -> None:
    report_transition(CircuitTransition(circuit_name="kafka", from_state=CircuitState.CLOSED, to_state=to_state))

    [log] = [record for record in caplog.records if record.getMessage() == "circuit state changed"]
    assert (log.circuit, log.from_state, log.to_state) == ("kafka", "CLOSED", str(to_state))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line.get("circuit_state"), line.get("circuit_transitions_total")) for line in emf] == [
        ([value], None),
        (None, [1.0]),
    ]
    assert all((line["circuit"], line["to_state"]) == ("kafka", str(to_state)) for line in emf)


class _StoredState(RedisCircuitStore):
    """The Redis store with one record already in place and no Redis (a unit test's fake)."""

    def __init__(self, state: CircuitState) -> None:
        super().__init__(client=lambda: None)
        self.state = state

    def _get_record(self, name: str) -> CircuitStateRecord | None:
        return CircuitStateRecord(name=name, state=self.state)


@pytest.mark.parametrize(("state", "value"), [(CircuitState.OPEN, 2), (CircuitState.CLOSED, 0)])
def test_at_cold_start_the_circuit_series_exist_with_its_shared_state_and_no_transition(
    capsys: pytest.CaptureFixture, state: CircuitState, value: int
) -> None:
    policy = BreakerPolicy(failure_threshold=3, recovery_seconds=3, success_threshold=2, state_cache_seconds=1)
    report_state("kafka", policy, _StoredState(state))

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["circuit"], line["circuit_state"]) for line in emf if "circuit_state" in line] == [("kafka", [value])]
    transitions = [
        (line["to_state"], line["circuit_transitions_total"]) for line in emf if "circuit_transitions_total" in line
    ]
    assert sorted(transitions) == [("CLOSED", [0.0]), ("HALF_OPEN", [0.0]), ("OPEN", [0.0])]


def test_without_a_namespace_the_cold_start_publishes_nothing_and_does_not_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(type(metrics), "namespace", property(lambda self: None))
    policy = BreakerPolicy(failure_threshold=3, recovery_seconds=3, success_threshold=2, state_cache_seconds=1)
    report_state("kafka", policy, _StoredState(CircuitState.OPEN))  # a producer without one still starts
    assert capsys.readouterr().out == ""

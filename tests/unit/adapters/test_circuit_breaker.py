import json

import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState, CircuitTransition

from logpipe.adapters.circuit_breaker import report_transition


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

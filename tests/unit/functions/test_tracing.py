"""The handlers with tracing on, as on AWS (`Tracing: Active`): the tests' own processes run with tracing off, as
`sam local` and the runner do, and a disabled tracer leaves every decorator out, so this runs them in a process
of its own (traced_invocations.py) with a real tracer and an X-Ray emitter that keeps what it is sent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EVENTS = ["producer_post_log", "producer_post_batch", "consumer_msk_batch"]


@pytest.fixture(scope="module")
def traced() -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "PYTEST_CURRENT_TEST")
    }
    env.update(
        LAMBDA_TASK_ROOT=str(REPO),
        AWS_LAMBDA_FUNCTION_NAME="traced",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        POWERTOOLS_IDEMPOTENCY_DISABLED="true",
        POWERTOOLS_CIRCUIT_BREAKER_DISABLED="true",
        PYTHONPATH=os.pathsep.join([str(REPO / "layers" / "logpipe"), str(REPO)]),
    )
    run = subprocess.run(
        [sys.executable, str(HERE / "traced_invocations.py"), *EVENTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_class_of_the_layer_stays_a_class_with_tracing_on(traced: dict) -> None:
    assert traced["broken_classes"] == []


def test_the_producer_answers_and_traces_its_logic(traced: dict) -> None:
    single, batch = traced["producer_post_log"], traced["producer_post_batch"]
    assert single["result"]["statusCode"] == 202
    assert batch["result"]["statusCode"] == 207  # the sample batch holds one invalid event among two valid ones
    assert "## logpipe.ingest.intake.ingest_event" in single["names"]
    assert "## logpipe.ingest.intake.accept_batch" in batch["names"]


def test_the_consumer_stores_and_traces_its_batch(traced: dict) -> None:
    consumed = traced["consumer_msk_batch"]
    assert consumed["result"]["stored"] == 2
    assert "## logpipe.sink.consume.process_batch" in consumed["names"]

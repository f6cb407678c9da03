"""The runner and the layer write one dead-letter header scheme (docs/sink.md): the event source mapping's
on-failure destination (local/lambda_runner) and the consumer function (logpipe) cannot drift apart.

Neither side may import the other, so this test imports both."""

import pytest

from local.lambda_runner.kafka_poller import dead_letter_headers
from logpipe.sink import deadletter as layer_deadletter

pytestmark = pytest.mark.unit

# Written by the event source mapping only (docs/sink.md): the function has no request id of the mapping's, and
# the record's timestamp is in the event it received.
MAPPING_ONLY = {"x-dlq-source-timestamp", "x-dlq-request-id"}


def runner_headers(error: str = "RuntimeError: boom") -> list[tuple[str, bytes]]:
    return dead_letter_headers(
        error=error,
        attempts=3,
        topic="log-events",
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        writer="arn:aws:lambda:us-east-1:123456789012:function:consumer",
        request_id="r-1",
    )


def layer_headers(error: str = "ValueError: bad") -> list[tuple[str, bytes]]:
    letter = layer_deadletter.DeadLetter(
        key=None,
        value=b"{}",
        reason="unstorable",
        error=error,
        attempts=1,
        source_topic="log-events",
        source_partition=2,
        source_offset=41,
        writer="consumer",
    )
    return letter.headers()


def test_the_runner_writes_the_layers_header_names_plus_the_mappings_own() -> None:
    runner_names = [name for name, _ in runner_headers()]
    layer_names = [name for name, _ in layer_headers()]
    assert len(runner_names) == len(set(runner_names))
    assert set(runner_names) == set(layer_names) | MAPPING_ONLY
    assert all(name.startswith(layer_deadletter.HEADER_PREFIX) for name in runner_names)


def test_the_layer_reads_what_the_runner_writes() -> None:
    received = layer_deadletter.ReceivedDeadLetter(
        key=None,
        value=b"{}",
        headers=layer_deadletter.decode_headers(runner_headers()),
        partition=0,
        offset=0,
    )
    assert received.reason == "RetryAttemptsExhausted"
    assert received.origin == ("log-events", 2, 41)
    assert received.replay_count == 0
    assert received.headers["x-dlq-attempts"] == "3"
    assert received.headers["x-dlq-error"] == "RuntimeError: boom"


def test_the_error_is_cut_at_the_same_length_on_both_sides() -> None:
    long_error = "E" * 5000
    runner_error = dict(runner_headers(long_error))["x-dlq-error"]
    assert runner_error == dict(layer_headers(long_error))["x-dlq-error"]
    assert len(runner_error) < len(long_error)

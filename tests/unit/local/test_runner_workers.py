"""Worker pools: handler loading, environment, context, cold starts, concurrency, timeouts, errors, crashes.

Toy handlers in tmp_path run in real worker processes (no external service involved).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import uvloop

from local.lambda_runner import worker_process, workers
from local.lambda_runner.environment import function_environment
from local.lambda_runner.sam_model import FunctionSpec
from local.lambda_runner.workers import FunctionPool, InvokeResult

pytestmark = pytest.mark.unit

HANDLER = """
import os, sys, time
from aws_lambda_powertools import Logger
from toylayer import LAYER_VALUE

logger = Logger(service="toy")
INVOCATIONS = 0

@logger.inject_lambda_context
def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    action = event.get("action")
    if action == "context":
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "identity": context.identity.cognito_identity_id,
            "client_context": context.client_context,
            "logger_keys": sorted(logger.get_current_keys()),
        }
    if action == "env":
        names = ["FROM_TEMPLATE", "OVERRIDDEN", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT", "_HANDLER",
                 "AWS_EXECUTION_ENV", "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID"]
        return {"env": {n: os.environ.get(n) for n in names}, "path": sys.path[:2], "cwd": os.getcwd(),
                "layer": LAYER_VALUE}
    if action == "sleep":
        started = time.time()
        time.sleep(event["seconds"])
        return {"pid": os.getpid(), "started": started, "ended": time.time()}
    if action == "count":
        return {"pid": os.getpid(), "invocations": INVOCATIONS}
    if action == "niceness":
        return {"niceness": os.nice(0)}
    if action == "raise":
        raise KeyError("nope")
    if action == "exit":
        os._exit(3)
    if action == "print":
        print("a whole line")
        sys.stdout.write("an unfinished line")
        return {}
    if action == "unserializable":
        return {"x": object()}
    if action == "text":
        return "x" * event["characters"]
    return event
"""


@pytest.fixture
def toy(write_files) -> Path:
    return write_files(
        {
            "fn/app.py": HANDLER,
            "fn/broken.py": "raise RuntimeError('cannot start')\n",
            "layer/python/toylayer.py": "LAYER_VALUE = 'from the layer'\n",
        }
    )


def make_spec(root: Path, *, handler: str = "app.handler", timeout: float = 5.0) -> FunctionSpec:
    return FunctionSpec(
        logical_id="ToyFunction",
        function_name="toy-function",
        code_uri=root / "fn",
        handler=handler,
        timeout_s=timeout,
        memory_mb=256,
        environment={"FROM_TEMPLATE": "template", "OVERRIDDEN": "template"},
        layer_paths=[root / "layer" / "python"],
    )


def run_pool(spec: FunctionSpec, scenario, *, max_workers: int = 2, base_env: dict[str, str] | None = None):
    """Run ``scenario(pool)`` in a fresh event loop, then shut the pool down; return its result."""

    async def main():
        base = dict(os.environ) if base_env is None else base_env
        env = function_environment(spec, base_env=base, region="eu-west-1")
        pool = FunctionPool(spec, env, region="eu-west-1", max_workers=max_workers, loop=asyncio.get_running_loop())
        try:
            return await scenario(pool)
        finally:
            await pool.shutdown(grace_s=1)
            assert not pool.workers

    return asyncio.run(main())


def invoke(pool: FunctionPool, event: dict) -> asyncio.Future[InvokeResult]:
    return asyncio.ensure_future(pool.invoke(json.dumps(event).encode()))


def test_context_is_realistic_and_accepted_by_powertools(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {"action": "context"})

    result = run_pool(make_spec(toy), scenario)
    assert result.ok, result.error
    ctx = result.result
    assert ctx["function_name"] == "toy-function"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:toy-function"
    assert ctx["memory_limit_in_mb"] == "256"  # a string, as in the Lambda Python runtime
    assert ctx["aws_request_id"] == result.request_id
    assert ctx["log_group_name"] == "/aws/lambda/toy-function"
    assert "[$LATEST]" in ctx["log_stream_name"]
    assert 4000 < ctx["remaining"] <= 5000
    assert ctx["identity"] is None and ctx["client_context"] is None
    assert {"function_name", "function_request_id", "cold_start"} <= set(ctx["logger_keys"])


def test_environment_sys_path_and_cwd(toy: Path) -> None:
    base = {**os.environ, "OVERRIDDEN": "from-the-runner"}
    base.pop("FROM_TEMPLATE", None)

    async def scenario(pool):
        return await invoke(pool, {"action": "env"})

    result = run_pool(make_spec(toy), scenario, base_env=base)
    assert result.ok, result.error
    env = result.result["env"]
    assert env["FROM_TEMPLATE"] == "template"
    assert env["OVERRIDDEN"] == "from-the-runner"  # set in the runner's environment: wins
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "toy-function"
    assert env["LAMBDA_TASK_ROOT"] == str(toy / "fn")
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert result.result["path"] == [str(toy / "fn"), str(toy / "layer" / "python")]
    assert result.result["cwd"] == str(toy / "fn")
    assert result.result["layer"] == "from the layer"


def test_instances_yield_the_cpu_to_the_front(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {"action": "niceness"})

    result = run_pool(make_spec(toy), scenario)
    assert result.ok, result.error
    assert workers.INSTANCE_NICENESS > 0  # lower than the front's
    assert result.result["niceness"] == max(workers.INSTANCE_NICENESS, os.nice(0))


def test_cold_start_once_per_instance(toy: Path) -> None:
    async def scenario(pool):
        return [await invoke(pool, {"action": "count"}) for _ in range(3)]

    results = run_pool(make_spec(toy), scenario, max_workers=1)
    assert [r.result["invocations"] for r in results] == [1, 2, 3]
    assert len({r.result["pid"] for r in results}) == 1


def test_invocations_run_concurrently_across_instances(toy: Path) -> None:
    async def scenario(pool):
        # Long enough that the first instance is still busy when the second has cold-started on a loaded machine
        # (a free warm instance would rightly take the second invocation, as Lambda's would).
        return await asyncio.gather(*(invoke(pool, {"action": "sleep", "seconds": 3}) for _ in range(2)))

    first, second = run_pool(make_spec(toy), scenario, max_workers=2)
    assert first.result["pid"] != second.result["pid"]
    assert first.result["started"] < second.result["ended"] and second.result["started"] < first.result["ended"]


def test_one_invocation_at_a_time_per_instance(toy: Path) -> None:
    async def scenario(pool):
        return await asyncio.gather(*(invoke(pool, {"action": "sleep", "seconds": 0.2}) for _ in range(3)))

    results = run_pool(make_spec(toy), scenario, max_workers=1)
    spans = sorted((r.result["started"], r.result["ended"]) for r in results)
    assert len({r.result["pid"] for r in results}) == 1
    assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans))


def test_timeout_kills_and_replaces_the_instance(toy: Path) -> None:
    async def scenario(pool):
        before = await invoke(pool, {"action": "count"})
        timed_out = await invoke(pool, {"action": "sleep", "seconds": 30})
        after = await invoke(pool, {"action": "count"})
        return before, timed_out, after

    before, timed_out, after = run_pool(make_spec(toy, timeout=1), scenario, max_workers=1)
    assert timed_out.status == "timeout"
    assert timed_out.error["errorMessage"] == "Task timed out after 1.00 seconds"
    assert 900 <= timed_out.duration_ms < 5000
    assert after.ok and after.result["pid"] != before.result["pid"]
    assert after.result["invocations"] == 1  # a fresh instance: cold start again


def test_handler_exception_is_a_function_error(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {"action": "raise"}), await invoke(pool, {"action": "count"})

    failed, after = run_pool(make_spec(toy), scenario, max_workers=1)
    assert failed.status == "error"
    assert failed.error["errorType"] == "KeyError"
    assert failed.error["errorMessage"] == "'nope'"
    assert failed.error["requestId"] == failed.request_id
    assert any("app.py" in line for line in failed.error["stackTrace"])
    assert after.ok and after.result["invocations"] == 2  # the instance survives a handler error


def test_unserializable_result_is_a_marshal_error(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {"action": "unserializable"})

    result = run_pool(make_spec(toy), scenario)
    assert result.status == "error" and result.error["errorType"] == "Runtime.MarshalError"


def test_a_result_over_lambdas_response_limit_fails_the_invocation_as_lambda_does(toy: Path) -> None:
    limit = worker_process.MAX_RESPONSE_BYTES  # the result's JSON: the text and its two quotes

    async def scenario(pool):
        at_limit = await invoke(pool, {"action": "text", "characters": limit - 2})
        over = await invoke(pool, {"action": "text", "characters": limit - 1})
        return at_limit, over, await invoke(pool, {"action": "count"})

    at_limit, over, after = run_pool(make_spec(toy), scenario, max_workers=1)
    assert at_limit.ok and len(at_limit.result) == limit - 2
    assert over.status == "too_large"
    assert over.error == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes).",
    }
    assert after.ok and after.result["invocations"] == 3  # the instance survives


def test_crashed_instance_is_replaced(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {"action": "exit"}), await invoke(pool, {"action": "count"})

    crashed, after = run_pool(make_spec(toy), scenario, max_workers=1)
    assert crashed.status == "crash" and crashed.error["errorType"] == "Runtime.ExitError"
    assert after.ok and after.result["invocations"] == 1


def test_init_error_fails_the_invocation_and_is_retried(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {}), await invoke(pool, {})

    first, second = run_pool(make_spec(toy, handler="broken.handler"), scenario)
    for result in (first, second):
        assert result.status == "init_error"
        assert result.error["errorType"] == "Runtime.RuntimeError"
        assert result.error["errorMessage"] == "cannot start"


def test_missing_handler_attribute(toy: Path) -> None:
    async def scenario(pool):
        return await invoke(pool, {})

    result = run_pool(make_spec(toy, handler="app.nothing_here"), scenario)
    assert result.status == "init_error"
    assert "nothing_here" in result.error["errorMessage"]


def test_sigint_does_not_interrupt_an_invocation(toy: Path) -> None:
    async def scenario(pool):
        task = invoke(pool, {"action": "sleep", "seconds": 1.0})
        while not any(w.busy for w in pool.workers):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # let the handler start sleeping
        for worker in pool.workers:
            os.killpg(worker.proc.pid, signal.SIGINT)
        return await task

    result = run_pool(make_spec(toy), scenario, max_workers=1)
    assert result.ok, result.error


def test_at_the_cap_an_invocation_that_gets_no_instance_within_its_wait_is_throttled(toy: Path) -> None:
    async def scenario(pool):
        await invoke(pool, {"action": "count"})  # the one instance is warm
        busy = invoke(pool, {"action": "sleep", "seconds": 1})
        await asyncio.sleep(0)  # the sleeping invocation holds the instance
        throttled = await pool.invoke(b'{"action": "count"}', instance_wait_s=0)
        after = await busy
        served = await pool.invoke(b'{"action": "count"}', instance_wait_s=0)  # load gone: served normally
        return throttled, after, served

    throttled, after, served = run_pool(make_spec(toy), scenario, max_workers=1)
    assert throttled.status == "throttled"
    assert throttled.error == {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
    assert after.ok and served.ok
    assert served.result["invocations"] == 3  # the throttled invocation never reached the instance


def test_an_instance_freed_within_the_wait_serves_the_waiting_invocation(toy: Path) -> None:
    async def scenario(pool):
        await invoke(pool, {"action": "count"})
        busy = invoke(pool, {"action": "sleep", "seconds": 0.3})
        await asyncio.sleep(0)
        waiting = await pool.invoke(b'{"action": "count"}', instance_wait_s=30)
        return await busy, waiting

    busy, waiting = run_pool(make_spec(toy), scenario, max_workers=1)
    assert busy.ok and waiting.ok
    assert waiting.result["pid"] == busy.result["pid"]


def test_a_cold_start_is_not_cut_short_by_the_wait(toy: Path) -> None:
    async def scenario(pool):
        return await pool.invoke(b'{"action": "count"}', instance_wait_s=0)

    result = run_pool(make_spec(toy), scenario, max_workers=1)
    assert result.ok and result.result["invocations"] == 1


def test_no_concurrency_throttles_every_invocation(toy: Path) -> None:
    async def scenario(pool):
        return await pool.invoke(b'{"action": "count"}', instance_wait_s=30), len(pool.workers)

    result, instances = run_pool(make_spec(toy), scenario, max_workers=0)
    assert result.status == "throttled"
    assert instances == 0


def test_output_reaches_the_log_by_the_end_of_the_invocation(toy: Path, capfd: pytest.CaptureFixture[str]) -> None:
    async def scenario(pool):
        printed = await invoke(pool, {"action": "print"})
        await invoke(pool, {"action": "count"})  # the same instance: it flushed the first one's output before this
        return printed, capfd.readouterr().out  # read before the instance exits (exiting flushes anyway)

    printed, out = run_pool(make_spec(toy), scenario, max_workers=1)
    assert printed.ok
    assert "a whole line\nan unfinished line" in out


def test_an_answer_that_arrived_within_the_wait_is_read_before_throttling(toy: Path) -> None:
    """The front's loop held past the wait (a busy machine): the instance answered in time, its answer is unread."""

    async def main():
        env = function_environment(make_spec(toy), base_env=dict(os.environ), region="eu-west-1")
        pool = FunctionPool(make_spec(toy), env, region="eu-west-1", max_workers=1, loop=asyncio.get_running_loop())
        try:
            await invoke(pool, {"action": "count"})  # the one instance is warm
            busy = invoke(pool, {"action": "sleep", "seconds": 0.1})
            await asyncio.sleep(0.01)  # the instance is busy
            waiting = asyncio.ensure_future(pool.invoke(b'{"action": "count"}', instance_wait_s=0.5))
            await asyncio.sleep(0.01)  # the invocation waits for the instance
            # The loop is held in an I/O callback (as a front descheduled while it reads a request): the instance
            # answers at 0.1 s and the wait ends at 0.5 s meanwhile. libuv then runs the due timers before it polls.
            held, wake = socket.socketpair()
            loop = asyncio.get_running_loop()
            loop.add_reader(held, lambda: (held.recv(1), time.sleep(1.5)))
            wake.send(b"x")
            try:
                return await busy, await waiting
            finally:
                loop.remove_reader(held)
                held.close()
                wake.close()
        finally:
            await pool.shutdown(grace_s=1)

    busy, waiting = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(main())
    assert busy.ok
    assert waiting.ok, waiting.error


def test_a_freed_instance_takes_the_waiting_invocation_at_once(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not when the waiting task next runs: a loop held right after the answer (a busy machine) must not leave the
    instance idle meanwhile."""
    invoke_on_instance = workers.Worker.invoke
    answers: list[asyncio.Future] = []

    def invoke_and_note(self, payload: bytes, request_id: str, timeout_s: float):
        answer = invoke_on_instance(self, payload, request_id, timeout_s)
        if not answers:  # the first invocation: once it is answered, the loop is held 1 s
            answer.add_done_callback(lambda _: time.sleep(1))
        answers.append(answer)
        return answer

    monkeypatch.setattr(workers.Worker, "invoke", invoke_and_note)

    async def scenario(pool):
        busy = invoke(pool, {"action": "sleep", "seconds": 0.2})
        await asyncio.sleep(0.1)  # busy holds the one instance (after its cold start)
        while not answers:
            await asyncio.sleep(0.01)
        waiting = pool.invoke(b'{"action": "sleep", "seconds": 0}', instance_wait_s=30)
        return await asyncio.gather(busy, waiting)

    first, second = run_pool(make_spec(toy), scenario, max_workers=1)
    assert first.ok and second.ok
    assert second.result["started"] - first.result["ended"] < 0.6  # started during the hold, not after it

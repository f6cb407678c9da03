"""Per-function pools of worker processes, driven from the asyncio loop.

Each worker is a fresh interpreter (``python -P worker_process.py``) in its own process group, with the function's
environment and sys.path: one Lambda instance. It runs one invocation at a time; a pool runs up to ``max_workers``
invocations concurrently and starts instances on demand (cold starts), like Lambda scaling out.

Why not ProcessPoolExecutor: a timed-out invocation must kill *its* instance only (killing a pool process breaks
the whole executor), and a spawned multiprocessing child re-imports the runner's ``__main__`` and inherits its
sys.path. A plain subprocess gives a clean runtime and per-instance control.

All methods must be called from the loop thread; other threads use ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .metrics import StdoutRelay, instruments
from .sam_model import DEFAULT_ACCOUNT_ID, FunctionSpec
from .worker_process import RESPONSE_TOO_LARGE

log = logging.getLogger("runner")

_HEADER = struct.Struct("!I")
WORKER_SCRIPT = Path(__file__).with_name("worker_process.py")
# On AWS, API Gateway never shares a CPU with the functions; here the HTTP front and the instances share two cores,
# and a front starved by busy instances answers late even the requests it refuses (its 429s). Instances therefore
# run at a lower CPU priority than the front (the Kafka event source process already does, and so do its instances).
INSTANCE_NICENESS = 5
INIT_TIMEOUT_S = 60.0
TIMEOUT_RESOLUTION_S = 0.05
# How long an invocation may wait for a busy instance when the function runs at its concurrency cap, before it is
# throttled. Lambda throttles at once; a short wait absorbs the hand-back of an instance that just answered and the
# scheduling jitter of a busy machine, and still keeps an accepted request's latency bounded.
DEFAULT_INSTANCE_WAIT_S = 0.1
INSTANCE_REPORT_S = 1.0


# Every status an InvokeResult has: each function's invocation counter exists at 0 for each from the start.
INVOKE_STATUSES = ("ok", "error", "timeout", "init_error", "crash", "too_large", "throttled")


@dataclass
class InvokeResult:
    """The outcome of one invocation.

    status: "ok" | "error" (handler raised) | "timeout" | "init_error" | "crash" (instance died) | "too_large"
            | "throttled" (no instance free within the wait bound: Lambda's TooManyRequestsException)
    """

    status: str
    request_id: str
    duration_ms: float
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class _Invocation:
    """An invocation before an instance takes it."""

    request_id: str
    trace_id: str
    event_json: bytes

    def payload(self, arn: str, timeout_s: float) -> bytes:
        """What the instance reads; its deadline counts from now, when the instance takes it."""
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        head = json.dumps(
            {"id": self.request_id, "deadline_ms": deadline_ms, "arn": arn, "trace_id": self.trace_id},
            separators=(",", ":"),
        ).encode()
        return head[:-1] + b',"event":' + self.event_json + b"}"


@dataclass(eq=False, slots=True)
class _Waiter:
    """An invocation waiting for an instance: ``answer`` gets the future of its answer once an instance took it, or
    None when its wait bound expired (throttled)."""

    answer: asyncio.Future[asyncio.Future[dict[str, Any]] | None]
    invocation: _Invocation


class InitError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error


class Worker:
    """The parent's end of one instance."""

    def __init__(self, pool: FunctionPool, index: int) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.index = index
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.alive = True
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._pending: tuple[str, asyncio.Future[dict[str, Any]]] | None = None
        self.deadline = 0.0  # loop.time() by which the running invocation must have answered

        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{secrets.token_hex(16)}"
        env = dict(pool.env, AWS_LAMBDA_LOG_STREAM_NAME=stream)
        config = json.dumps({"layer_paths": [str(p) for p in pool.spec.layer_paths]})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", str(WORKER_SCRIPT), str(req_r), str(resp_w), config],
                env=env,
                cwd=str(pool.spec.code_uri),
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # relayed by the runner, which reads the function's EMF metrics in it
                # Own process group: a terminal Ctrl-C reaches the runner only; the runner stops workers itself.
                process_group=0,
            )
        except BaseException:
            os.close(self._req_w)
            os.close(self._resp_r)
            raise
        finally:
            os.close(req_r)
            os.close(resp_w)
        with contextlib.suppress(OSError):  # the instance may already be gone (a failed start)
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, max(INSTANCE_NICENESS, os.getpriority(os.PRIO_PROCESS, 0)))
        os.set_blocking(self._req_w, False)
        os.set_blocking(self._resp_r, False)
        self.loop.add_reader(self._resp_r, self.read_answers)
        assert self.proc.stdout is not None
        self.stdout = StdoutRelay(self.loop, os.dup(self.proc.stdout.fileno()), pool.name)
        self.proc.stdout.close()

    # io ----------------------------------------------------------------------------------------------
    def read_answers(self) -> None:
        """Whatever the instance has written (the loop calls it when the pipe is readable; the pool, to read now)."""
        try:
            data = os.read(self._resp_r, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_exit()
            return
        buf = self._rbuf
        buf += data
        while len(buf) >= 4:
            (size,) = _HEADER.unpack_from(buf)
            if len(buf) < 4 + size:
                break
            frame = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            self._on_message(frame)

    def _write(self, payload: bytes) -> None:
        data = _HEADER.pack(len(payload)) + payload
        if self._wbuf:
            self._wbuf += data
            return
        try:
            n = os.write(self._req_w, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self._on_exit()
            return
        if n < len(data):
            self._wbuf += data[n:]
            self.loop.add_writer(self._req_w, self._on_writable)

    def _on_writable(self) -> None:
        try:
            n = os.write(self._req_w, self._wbuf)
        except BlockingIOError:
            return
        except OSError:
            self.loop.remove_writer(self._req_w)
            self._on_exit()
            return
        del self._wbuf[:n]
        if not self._wbuf:
            self.loop.remove_writer(self._req_w)

    # protocol ------------------------------------------------------------------------------------------
    def _on_message(self, frame: bytes) -> None:
        message = json.loads(frame)
        kind = message.get("type")
        if kind == "result":
            if self._pending is None or self._pending[0] != message.get("id"):
                return  # a late answer for an invocation we already gave up on
            _, fut = self._pending
            self._pending = None
            if not fut.done():
                fut.set_result(message)
            self.pool._release(self)
        elif kind == "ready":
            log.debug("%s: instance %d ready (init %.0f ms)", self.pool.name, self.index, message.get("init_ms", 0))
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "init_error" and not self.ready.done():
            self.ready.set_exception(InitError(message.get("error") or {}))

    def invoke(self, payload: bytes, request_id: str, timeout_s: float) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._pending = (request_id, fut)
        self.deadline = self.loop.time() + timeout_s
        self._write(payload)
        return fut

    def on_timeout(self) -> None:
        if self._pending is None:
            return
        _, fut = self._pending
        self._pending = None
        if not fut.done():
            fut.set_result({"ok": False, "timeout": True})
        self.kill()  # a Lambda instance that timed out is thrown away

    def _on_exit(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self._close_fds()
        if not self.ready.done():
            self.ready.set_exception(
                InitError({"errorType": "Runtime.ExitError", "errorMessage": "instance exited during init"})
            )
        if self._pending is not None:
            _, fut = self._pending
            self._pending = None
            if not fut.done():
                fut.set_result({"ok": False, "crash": True, "returncode": self.proc.poll()})
        self.pool._forget(self)
        self._reap()

    def _close_fds(self) -> None:
        for fd, remove in ((self._resp_r, self.loop.remove_reader), (self._req_w, self.loop.remove_writer)):
            if fd >= 0:
                remove(fd)
                os.close(fd)
        self._resp_r = self._req_w = -1

    def _reap(self, attempt: int = 0) -> None:
        if self.proc.poll() is None:
            if attempt == 50:  # 5 s after its pipes closed: not leaving on its own
                self.proc.kill()
            self.loop.call_later(0.1, self._reap, attempt + 1)

    def close(self) -> None:
        """Ask the instance to exit (EOF on its request pipe); it finishes a running invocation first."""
        if self._req_w >= 0 and not self._wbuf:
            self.loop.remove_writer(self._req_w)
            os.close(self._req_w)
            self._req_w = -1

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._on_exit()

    @property
    def busy(self) -> bool:
        return self._pending is not None


class FunctionPool:
    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        max_workers: int = 2,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """``max_workers``: the most instances at once; 0 throttles every invocation (a reserved concurrency of 0)."""
        self.spec = spec
        self.name = spec.logical_id
        self.env = env
        self.arn = spec.arn(region, account_id)
        self.max_workers = max(0, max_workers)
        self.loop = loop
        self.workers: set[Worker] = set()
        self._idle: collections.deque[Worker] = collections.deque()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._starting = 0
        self._counter = 0
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        instruments().declare_function(self.name, INVOKE_STATUSES)
        loop.call_soon(self._report_instances)

    # instances -------------------------------------------------------------------------------------------
    def prewarm(self, count: int) -> None:
        for _ in range(min(count, self.max_workers) - len(self.workers)):
            self._spawn()

    async def provision(self, count: int) -> None:
        """Start instances up to ``count`` and return once each has initialized, as Lambda readies provisioned
        concurrency before the alias takes traffic. One that fails its init is logged and replaced on demand."""
        self.prewarm(count)
        starting = [worker.ready for worker in self.workers if not worker.ready.done()]
        if starting:
            await asyncio.wait(starting, timeout=INIT_TIMEOUT_S)

    def _spawn(self) -> bool:
        self._counter += 1
        try:
            worker = Worker(self, self._counter)
        except OSError as exc:
            log.error("%s: cannot start an instance: %s", self.name, exc)
            error = {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": str(exc)}
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.answer.done():
                    waiter.answer.set_exception(InitError(error))
            return False
        self.workers.add(worker)
        self._starting += 1
        instruments().cold_starts.labels(self.name).inc()
        self.loop.create_task(self._await_ready(worker))
        return True

    async def _await_ready(self, worker: Worker) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), INIT_TIMEOUT_S)
        except (InitError, TimeoutError) as exc:
            self._starting -= 1
            error = (
                exc.error
                if isinstance(exc, InitError)
                else {
                    "errorType": "Runtime.InitTimeout",
                    "errorMessage": f"init did not finish within {INIT_TIMEOUT_S:.0f} s",
                }
            )
            log.error("%s: init failed: %s: %s", self.name, error.get("errorType"), error.get("errorMessage"))
            # Like Lambda: the invocation that caused this cold start gets the init error; the next one retries.
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.answer.done():
                    waiter.answer.set_exception(InitError(error))
                    break
            worker.kill()
            self._maybe_spawn()  # the next waiting invocation gets a fresh cold start
            return
        self._starting -= 1
        self._release(worker)

    def _maybe_spawn(self) -> None:
        while not self._closing and len(self.workers) < self.max_workers:
            if len(self._waiters) <= self._starting or not self._spawn():
                return

    def _release(self, worker: Worker) -> None:
        """A free instance takes the first waiting invocation at once (not when the waiting task next runs: on a busy
        machine that can be long after, the instance idle meanwhile), or becomes idle."""
        if not worker.alive:
            return
        if self._closing:
            worker.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.answer.done():
                waiter.answer.set_result(self._dispatch(worker, waiter.invocation))
                return
        self._idle.append(worker)

    def _dispatch(self, worker: Worker, invocation: _Invocation) -> asyncio.Future[dict[str, Any]]:
        """Hand the invocation to the instance; the future of its answer."""
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(TIMEOUT_RESOLUTION_S, self._sweep)
        timeout_s = self.spec.timeout_s
        return worker.invoke(invocation.payload(self.arn, timeout_s), invocation.request_id, timeout_s)

    def _forget(self, worker: Worker) -> None:
        self.workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._maybe_spawn()

    def _report_instances(self) -> None:
        """The busy/idle instance gauges, sampled every INSTANCE_REPORT_S (not per invocation: the hot path)."""
        busy = sum(1 for worker in self.workers if worker.busy)
        instruments().instance_counts(self.name, busy, len(self.workers))
        if not self._closing:
            self.loop.call_later(INSTANCE_REPORT_S, self._report_instances)

    def _sweep(self) -> None:
        """Enforce Timeout: one timer per pool instead of one per invocation (cheaper on the hot path)."""
        now = self.loop.time()
        for worker in list(self.workers):
            if worker.busy and worker.deadline <= now:
                worker.on_timeout()
        self._sweeper = self.loop.call_later(TIMEOUT_RESOLUTION_S, self._sweep) if self.workers else None

    async def _start(self, invocation: _Invocation, wait_s: float | None) -> asyncio.Future[dict[str, Any]] | None:
        """The invocation taken by an idle instance, a new one (cold start), or a busy one freed within ``wait_s``:
        the future of its answer; None: throttled.

        ``wait_s`` None waits as long as it takes (an event source mapping holds its batch until it can invoke).
        """
        if self._closing:
            raise InitError({"errorType": "Runtime.Shutdown", "errorMessage": "runner stopping"})
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return self._dispatch(worker, invocation)
        if self.max_workers == 0:
            return None
        waiter = _Waiter(self.loop.create_future(), invocation)
        self._waiters.append(waiter)
        self._maybe_spawn()
        if wait_s is None or self._starting >= len(self._waiters):
            expiry = None  # or a cold start is under way for this invocation: bounded by INIT_TIMEOUT_S
        else:
            expiry = self.loop.call_later(wait_s, self._expire, waiter)
        try:
            return await waiter.answer
        finally:
            if expiry is not None:
                expiry.cancel()
            if not waiter.answer.done() or waiter.answer.cancelled():  # the caller went away
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _expire(self, waiter: _Waiter) -> None:
        """The wait is over: throttled, unless an instance answered meanwhile. On a busy machine the loop can be held
        past the wait, and libuv runs due timers before it polls for I/O: the answers that arrived are read first."""
        for worker in [worker for worker in self.workers if worker.busy]:
            if waiter.answer.done():
                return
            worker.read_answers()
        if not waiter.answer.done():
            waiter.answer.set_result(None)
            self._waiters.remove(waiter)

    # invoking --------------------------------------------------------------------------------------------
    async def invoke(self, event_json: bytes, **options: Any) -> InvokeResult:
        """Invoke the function with an event that is already JSON (Lambda hands handlers a JSON document)."""
        result = await self._invoke(event_json, **options)
        instruments().invocation(self.name, result.status, result.duration_ms / 1000)
        return result

    async def _invoke(
        self, event_json: bytes, *, trace_id: str | None = None, instance_wait_s: float | None = None
    ) -> InvokeResult:
        """A synchronous caller (API Gateway) passes ``instance_wait_s``: at the concurrency cap, an invocation that
        gets no instance within it is throttled instead of queueing without limit.
        """
        invocation = _Invocation(str(uuid.uuid4()), trace_id or _trace_id(), event_json)
        request_id = invocation.request_id
        started = time.perf_counter()
        try:
            answer = await self._start(invocation, instance_wait_s)
        except InitError as exc:
            return InvokeResult("init_error", request_id, _ms(started), error=exc.error)
        if answer is None:
            error = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
            return InvokeResult("throttled", request_id, _ms(started), error=error)
        message = await answer
        duration = _ms(started)
        timeout_s = self.spec.timeout_s
        if message.get("ok"):
            return InvokeResult("ok", request_id, duration, result=message.get("result"))
        if message.get("timeout"):
            error = {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout_s:.2f} seconds"}
            log.error("%s: %s (request %s)", self.name, error["errorMessage"], request_id)
            return InvokeResult("timeout", request_id, duration, error=error)
        if message.get("crash"):
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited (code {message.get('returncode')})",
            }
            log.error("%s: %s", self.name, error["errorMessage"])
            return InvokeResult("crash", request_id, duration, error=error)
        error = message.get("error") or {}
        if error.get("errorType") == RESPONSE_TOO_LARGE:  # the instance refused its handler's result
            log.error("%s: %s", self.name, error.get("errorMessage"))
            return InvokeResult("too_large", request_id, duration, error=error)
        return InvokeResult("error", request_id, duration, error=message.get("error"))

    # shutdown --------------------------------------------------------------------------------------------
    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Let running invocations finish (up to their timeout), then stop every instance."""
        self._closing = True
        for waiter in self._waiters:
            if not waiter.answer.done():
                shutdown = InitError({"errorType": "Runtime.Shutdown", "errorMessage": "runner stopping"})
                waiter.answer.set_exception(shutdown)
        for worker in list(self.workers):
            if not worker.busy:
                worker.close()
        deadline = time.monotonic() + self.spec.timeout_s + grace_s
        while self.workers and time.monotonic() < deadline:
            for worker in list(self.workers):
                if not worker.busy:
                    worker.close()
            await asyncio.sleep(0.05)
        for worker in list(self.workers):
            worker.kill()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def kill_all(self) -> None:
        self._closing = True
        for worker in list(self.workers):
            worker.kill()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"

"""One Kafka event source mapping in its own process: its consumers and the function's own instances.

The HTTP front never shares a GIL or an event loop with Kafka polling: :func:`start` spawns a
process that owns a :class:`~.workers.FunctionPool` for the function and one :class:`~.kafka_poller.KafkaPoller`
thread per consumer (ProvisionedPollerConfig.MinimumPollers, or ``--kafka-consumers``), which invoke it through
the process's own event loop.

It runs below the HTTP front's CPU priority, as its instances do (``workers.INSTANCE_NICENESS``). The process stops
gracefully on SIGTERM or SIGINT (in-flight batches finish and commit), and dies with the runner: if the runner is
killed (``kill -9``), the kernel sends it SIGKILL (PR_SET_PDEATHSIG), its consumers leave the group by session
timeout, and a restarted runner takes the partitions over (see :mod:`.kafka_poller`).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from .kafka_poller import KafkaPoller
from .sam_model import FunctionSpec, KafkaSource
from .workers import INSTANCE_NICENESS, FunctionPool, InvokeResult

log = logging.getLogger("runner")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class KafkaSourceJob:
    """Everything the process needs (picklable: it crosses to a spawned interpreter)."""

    spec: FunctionSpec
    source: KafkaSource
    env: dict[str, str]
    region: str
    account_id: str
    bootstrap_servers: str
    consumers: int
    prewarm: int
    instance_id: str | None
    log_level: str


class KafkaSourceProcess:
    """The runner's handle on one event source's process, and the consumer lag it reports."""

    def __init__(self, job: KafkaSourceJob) -> None:
        # spawn, not fork: the runner's threads and event loop must not be copied into the child.
        context = multiprocessing.get_context("spawn")
        self._lag_reports: multiprocessing.Queue = context.Queue()
        self._lag: dict[int, dict[tuple[str, int], int]] = {}  # consumer index -> its partitions' lag
        self.process: BaseProcess = context.Process(
            target=serve, args=(job, self._lag_reports), name=f"kafka:{job.spec.logical_id}/{job.source.event_id}"
        )
        self.process.start()

    def lag(self) -> dict[tuple[str, int], int]:
        """The latest lag of every partition the source's consumers hold (what a /metrics endpoint serves)."""
        while True:
            try:
                index, lag = self._lag_reports.get_nowait()
            except queue.Empty:
                break
            self._lag[index] = lag
        return {tp: n for lag in self._lag.values() for tp, n in lag.items()}

    def terminate(self) -> None:
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    def join(self) -> None:
        self.process.join()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "started in __init__"
        return self.process.pid


def serve(job: KafkaSourceJob, lag_reports: multiprocessing.Queue) -> None:
    _die_with_parent()
    os.nice(INSTANCE_NICENESS)  # on AWS the event source mapping polls on other machines: yield to the front
    logging.basicConfig(
        level=job.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [runner kafka {job.source.event_id}] %(message)s",
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(_serve(job, lag_reports)))


async def _serve(job: KafkaSourceJob, lag_reports: multiprocessing.Queue) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pool = FunctionPool(
        job.spec, job.env, region=job.region, account_id=job.account_id, max_workers=job.consumers, loop=loop
    )
    # Each consumer invokes as soon as its partitions hold records: its instance starts with the mapping instead of
    # cold-starting inside the first batches.
    pool.prewarm(max(job.prewarm, job.consumers))
    pollers = [
        KafkaPoller(
            job.source,
            invoke=_sync_invoker(pool, loop),
            bootstrap_servers=job.bootstrap_servers,
            function_arn=pool.arn,
            function_timeout_s=job.spec.timeout_s,
            index=index,
            instance_id=job.instance_id,
            on_lag=lambda lag, index=index: lag_reports.put((index, lag)),
        )
        for index in range(job.consumers)
    ]
    for poller in pollers:
        poller.start()
    await stop.wait()
    for poller in pollers:
        poller.stop()
    await asyncio.to_thread(lambda: [poller.join() for poller in pollers])
    await pool.shutdown()
    return 0


def _sync_invoker(pool: FunctionPool, loop: asyncio.AbstractEventLoop):
    def invoke(event_json: bytes) -> InvokeResult:
        return asyncio.run_coroutine_threadsafe(pool.invoke(event_json), loop).result()

    return invoke


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the runner dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the runner died before prctl took effect
        os._exit(1)

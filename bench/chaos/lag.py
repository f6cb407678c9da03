"""The consumer's lag, sampled every second: the consumer group's committed offsets against the topic's high
watermarks. Under constant load the lag is never exactly zero, so "caught up" means: every partition's committed
offset reached the high watermark of the sample before (the consumer is within one second of the head)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

INTERVAL_S = 1.0


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    lag: int | None  # None: Kafka did not answer
    caught_up: bool


def _quiet() -> logging.Logger:
    log = logging.getLogger("chaos.librdkafka")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


@dataclass
class LagProbe:
    bootstrap: str
    topic: str
    group: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def offsets(self) -> tuple[list[int], list[int]] | None:
        """(committed, high watermarks) per partition, or None when Kafka does not answer in time."""
        client = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "client.id": f"chaos-lag-{uuid.uuid4().hex[:6]}",
                "socket.timeout.ms": 2000,
                "logger": _quiet(),
            }
        )
        try:
            partitions = sorted(client.list_topics(self.topic, timeout=2).topics[self.topic].partitions)
            committed = client.committed([TopicPartition(self.topic, p) for p in partitions], timeout=2)
            ends = [client.get_watermark_offsets(TopicPartition(self.topic, p), timeout=2)[1] for p in partitions]
            return [max(0, tp.offset) for tp in committed], ends
        except Exception:  # Kafka down or paused: the sample says so
            return None
        finally:
            client.close()

    def sample(self, previous_ends: list[int] | None) -> tuple[Sample, list[int] | None]:
        at, offsets = time.time(), self.offsets()
        if offsets is None:
            return Sample(at, None, False), previous_ends
        committed, ends = offsets
        reference = previous_ends if previous_ends and len(previous_ends) == len(ends) else ends
        caught_up = all(c >= r for c, r in zip(committed, reference, strict=True))
        return Sample(at, sum(e - c for c, e in zip(committed, ends, strict=True)), caught_up), ends

    def run(self) -> None:
        previous: list[int] | None = None
        while not self._stop.is_set():
            sample, previous = self.sample(previous)
            self.samples.append(sample)
            self._stop.wait(INTERVAL_S)

    def start(self) -> None:
        threading.Thread(target=self.run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def wait_drained(self, timeout_s: float) -> float | None:
        """After the load stopped: wait until the lag is 0; the seconds it took, None if it never was."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            offsets = self.offsets()
            if offsets is not None and offsets[0] == offsets[1]:
                return time.monotonic() - started
            time.sleep(INTERVAL_S)
        return None

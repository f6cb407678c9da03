"""How long a publish waits for the broker (logpipe.adapters.kafka), with a fake producer whose broker answers when
the test says: every request waits the quick wait, then only with a permit; until the broker answered again after a
failure, a request asks for the permit before waiting at all."""

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError

from logpipe.adapters import kafka
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.models import EventRecord

QUICK_WAIT_S = 0.2


class FakeProducer:
    """Queues records; they leave the queue `delay_s` after they were produced, as `answers` says (a failed one is
    reported to its callback: delivery.report.only.error)."""

    def __init__(self) -> None:
        self.queued: list[tuple[float, Callable]] = []
        self.answers: KafkaError | bool = True  # True: acknowledged; a KafkaError: failed; False: no answer
        self.delay_s = 0.0

    def produce(self, topic: str, value: bytes, key: bytes, headers: object, on_delivery: Callable) -> None:
        self.queued.append((time.monotonic() + self.delay_s, on_delivery))

    def __len__(self) -> int:
        return len(self.queued)

    def flush(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.answers is not False and self.queued and self.queued[0][0] <= deadline:
            due, on_delivery = self.queued.pop(0)
            time.sleep(max(0.0, due - time.monotonic()))
            if self.answers is not True:
                on_delivery(self.answers, None)
        if self.queued:
            time.sleep(max(0.0, deadline - time.monotonic()))
        return len(self.queued)

    def poll(self, timeout: float) -> int:
        return 0


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProducer]:
    monkeypatch.setenv("KAFKA_PUBLISH_QUICK_WAIT_MS", str(int(QUICK_WAIT_S * 1000)))
    monkeypatch.setenv("KAFKA_PUBLISH_WAIT_MS", "1000")
    get_settings.cache_clear()
    fake = FakeProducer()
    monkeypatch.setattr(kafka, "_producer", lambda: fake)
    monkeypatch.setattr(kafka, "_contact", kafka._BrokerContact(acknowledged=True))
    yield fake
    get_settings.cache_clear()


def record() -> EventRecord:
    return EventRecord(organization_id="acme", id=str(uuid.uuid4()), received_at=datetime.now(UTC), value=b"{}")


def no_permit() -> contextlib.AbstractContextManager[bool]:
    return contextlib.nullcontext(False)


def publish_timed(permits: Callable = no_permit) -> tuple[str, float]:
    started = time.monotonic()
    try:
        kafka.publish_events([record()], patience=permits)
    except DependencyUnavailableError:
        return "503", time.monotonic() - started
    return "ok", time.monotonic() - started


def test_a_publish_the_broker_acknowledges_at_once_needs_no_permit(producer: FakeProducer) -> None:
    producer.delay_s = 0.01
    assert publish_timed()[0] == "ok"


def test_without_a_permit_a_slow_broker_holds_a_request_the_quick_wait_and_with_one_up_to_the_publish_wait(
    producer: FakeProducer,
) -> None:
    producer.delay_s = 0.4
    refused, refused_in = publish_timed()
    producer.queued.clear()
    kafka._contact.left_unacknowledged, kafka._contact.answering = False, True
    granted, granted_in = publish_timed(lambda: contextlib.nullcontext(True))

    assert refused == "503" and QUICK_WAIT_S <= refused_in < QUICK_WAIT_S + 0.1
    assert granted == "ok" and 0.4 <= granted_in < 0.5


def test_until_the_broker_answers_again_after_a_failure_a_request_without_a_permit_fails_at_once(
    producer: FakeProducer,
) -> None:
    producer.answers = KafkaError(KafkaError._MSG_TIMED_OUT)
    failed = publish_timed()[0]  # its record failed: the broker did not answer
    producer.answers, producer.delay_s = True, 0.1  # back, and slow at first (electing, loading its coordinator)
    refused, refused_in = publish_timed()
    producer.queued.clear()
    kafka._contact.left_unacknowledged = False
    answered = publish_timed(lambda: contextlib.nullcontext(True))[0]
    then_quick = publish_timed()[0]  # answering again: the quick wait covers 100 ms

    assert failed == "503"
    assert refused == "503" and refused_in < 0.05  # no quick wait: a permit first, and none was free
    assert (answered, then_quick) == ("ok", "ok")


def test_records_a_refused_wait_left_behind_and_the_broker_then_acknowledged_give_back_the_quick_wait(
    producer: FakeProducer,
) -> None:
    """A request refused a permit leaves its records queued; once they are acknowledged (not failed), the broker
    answers again: the next request waits the quick wait, without asking for a permit first."""
    producer.delay_s = 0.3
    refused = publish_timed()[0]  # slower than the quick wait, no permit: its record stays queued
    time.sleep(0.35)
    producer.flush(0)  # the broker acknowledged it meanwhile
    producer.delay_s = 0.05
    then = publish_timed()[0]

    assert (refused, then) == ("503", "ok")

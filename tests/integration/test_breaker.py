"""The Kafka circuit breaker against real services: a private broker this test starts, pauses (SIGSTOP) and resumes,
the shared state in the real Redis, and the policy when Redis itself is down."""

import contextlib
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from local.backing_services.kafka import Kafka
from local.backing_services.settings import Config
from logpipe.adapters import cache, circuit_breaker, kafka
from logpipe.config import get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.ingest import publisher
from logpipe.models import EventRecord, LogEvent
from tests.conftest import REPO_ROOT
from tests.hostile_inputs import SEED
from tests.integration.stored_events import record_of

KAFKA_DIR = REPO_ROOT / "local" / "kafka"
RECOVERY_SECONDS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_broker(bootstrap: str, topic: str, timeout: float = 180) -> None:
    """Until the topic exists and takes a record (leader elected), within `timeout`."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=10)
        except (KafkaException, TimeoutError) as exc:
            if not isinstance(exc, KafkaException) or exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                time.sleep(1)
                continue
        if takes_a_record(bootstrap, topic):
            return
    raise AssertionError(f"the private broker did not serve {bootstrap} within {timeout}s")


def takes_a_record(bootstrap: str, topic: str) -> bool:
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000})
    delivered: list[bool] = []
    producer.produce(topic, b"ready", on_delivery=lambda error, _message: delivered.append(error is None))
    producer.flush(10)
    return delivered == [True]


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A single-node KRaft broker of this test's own (never the shared one): (bootstrap, pid)."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("the breaker test needs java (the broker's runtime)")
    broker = Kafka(Config.from_env())
    broker.resolve_libs()  # this checkout's jars, also when the shared broker was started by another checkout
    home: Path = tmp_path_factory.mktemp("private-kafka")
    port, controller_port = free_port(), free_port()
    properties = home / "server.properties"
    properties.write_text(
        string.Template((KAFKA_DIR / "server.properties.template").read_text()).substitute(
            port=port,
            controller_port=controller_port,
            data_dir=home / "data",
            docker_listener="",
            docker_advertised_listener="",
        )
    )
    logging = [f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}", f"-Dkafka.logs.dir={home}"]
    classpath = ["-cp", f"{broker.libs}/*"]
    cluster_id = "bHBpcGUtYnJlYWtlci10ZQ"  # any 22-char base64url id
    subprocess.run(
        [
            java,
            "-Xmx128m",
            *classpath,
            *logging,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            properties,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(home / "kafka.out", "wb") as out:
        broker = subprocess.Popen(
            [java, "-Xms128m", "-Xmx256m", *logging, *classpath, "kafka.Kafka", str(properties)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_for_broker(bootstrap, get_settings().kafka_topic)
        yield bootstrap, broker.pid
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        broker.terminate()
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()


@pytest.fixture
def transitions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every transition the breakers built in this test report (through the real reporter: log line + metrics)."""
    seen: list[tuple[str, str]] = []
    report = circuit_breaker.report_transition

    def record(transition) -> None:
        seen.append((str(transition.from_state), str(transition.to_state)))
        report(transition)

    monkeypatch.setattr(circuit_breaker, "report_transition", record)
    return seen


def pause(pid: int) -> None:
    """SIGSTOP, and wait until every thread of the broker is stopped (the signal lands asynchronously)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = {thread_state(task) for task in Path(f"/proc/{pid}/task").iterdir()}
        if states <= {"T", "t"}:
            return
        time.sleep(0.05)
    raise AssertionError(f"broker {pid} did not stop: thread states {states}")


def use_private_broker(monkeypatch: pytest.MonkeyPatch, bootstrap: str, **settings: str) -> None:
    """The private broker and these settings (by lower-case name) from now on, with a fresh producer."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    for name, value in settings.items():
        monkeypatch.setenv(name.upper(), value)
    get_settings.cache_clear()
    kafka._producer.cache_clear()


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The broker stopped for the block, resumed after it whatever happens."""
    pause(pid)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def until_ok(call: Callable[[list[EventRecord]], None], timeout: float = 30) -> str:
    """Attempts until one succeeds (the resumed broker answers again) or `timeout`; the last outcome."""
    deadline = time.monotonic() + timeout
    while (outcome := attempt(call)[0]) != "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
    return outcome


def thread_state(task: Path) -> str:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # the thread ended meanwhile
        return "T"


def an_event() -> EventRecord:
    now = datetime.now(UTC)
    return record_of(
        LogEvent(
            id=uuid.uuid4(), organization_id="breaker-it", level="INFO", message="m", source="s", timestamp=now,
            received_at=now,
        )
    )  # fmt: skip


def attempt(call: Callable[[list[EventRecord]], None]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        call([an_event()])
    except DependencyUnavailableError as error:
        return f"503 after {error.retry_after_seconds}s", time.monotonic() - started
    return "ok", time.monotonic() - started


@pytest.mark.timeout(400)  # a JVM cold start on a busy 2-core machine, then two recovery cycles
def test_kafka_paused_opens_the_circuit_probes_and_closes_when_resumed(
    private_broker, transitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap, pid = private_broker
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "1000")
    monkeypatch.setenv("KAFKA_BREAKER_FAILURE_THRESHOLD", "2")
    monkeypatch.setenv("KAFKA_BREAKER_RECOVERY_SECONDS", str(RECOVERY_SECONDS))
    monkeypatch.setenv("KAFKA_BREAKER_SUCCESS_THRESHOLD", "2")
    monkeypatch.setenv("KAFKA_BREAKER_STATE_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    kafka._producer.cache_clear()
    store = circuit_breaker.RedisCircuitStore(prefix=f"it-breaker:{uuid.uuid4().hex}:")
    circuit = f"kafka-it-{uuid.uuid4().hex[:8]}"
    publish = circuit_breaker.guarded(
        "kafka", publisher.kafka_breaker_policy(get_settings()), store, circuit_name=circuit
    )(kafka.publish_events)
    try:
        # A cold producer's first write (connect, idempotent producer id) may outlast the 1 s timeout.
        assert "ok" in [attempt(kafka.publish_events)[0] for _ in range(5)]
        assert attempt(publish)[0] == "ok"

        pause(pid)
        try:
            failures = [attempt(publish)[0] for _ in range(2)]
            refused, refused_in = attempt(publish)
            time.sleep(RECOVERY_SECONDS + 1)
            failed_probe = attempt(publish)[0]
            shared_state = cache.client().hget(store.prefix + circuit, "state")
        finally:
            os.kill(pid, signal.SIGCONT)

        recovered = []  # after the resume: probes until the circuit closes (a reconnect may fail a first probe)
        deadline = time.monotonic() + 60
        while transitions[-1] != ("HALF_OPEN", "CLOSED") and time.monotonic() < deadline:
            time.sleep(RECOVERY_SECONDS + 0.5)
            recovered += [attempt(publish)[0] for _ in range(2)]
        after = attempt(publish)[0]
    finally:
        get_settings.cache_clear()
        kafka._producer.cache_clear()

    assert failures == ["503 after 5s", "503 after 5s"]  # Kafka's own delivery timeouts, counted
    assert refused.startswith("503 after") and refused_in < 0.2  # the open circuit answers at once
    assert failed_probe.startswith("503") and shared_state == b"OPEN"
    assert recovered[-2:] == ["ok", "ok"] and after == "ok"
    assert transitions[:3] == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN")]
    assert transitions[-2:] == [("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert cache.client().hget(store.prefix + circuit, "state") == b"CLOSED"


@pytest.mark.timeout(400)
def test_a_paused_broker_holds_one_publish_for_the_publish_wait_and_the_next_not_at_all(
    private_broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance must not wait out the 5 s delivery timeout for a broker that stopped answering (every instance
    busy waiting is how invocations got throttled, 500, while Kafka was down): one wait of KAFKA_PUBLISH_WAIT_MS,
    then, while those records are still unacknowledged, failures at once."""
    bootstrap, pid = private_broker
    use_private_broker(monkeypatch, bootstrap, kafka_delivery_timeout_ms="5000", kafka_publish_wait_ms="500")
    try:
        assert "ok" in [attempt(kafka.publish_events)[0] for _ in range(5)]
        with paused(pid):
            first, first_in = attempt(kafka.publish_events)
            second, second_in = attempt(kafka.publish_events)
        after = until_ok(kafka.publish_events)
    finally:
        get_settings.cache_clear()
        kafka._producer.cache_clear()

    assert first.startswith("503") and 0.4 < first_in < 1.5  # the publish wait, not the delivery timeout
    assert second.startswith("503") and second_in < 0.05  # behind the first one's records: no second wait
    assert after == "ok"


@pytest.mark.timeout(400)
def test_a_paused_broker_holds_a_publish_only_the_quick_wait_while_the_wait_permits_are_held_elsewhere(
    private_broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only KAFKA_PUBLISH_LONG_WAITS requests across every instance wait on a broker that stopped answering; the
    others give up after KAFKA_PUBLISH_QUICK_WAIT_MS (every instance waiting out the publish wait is how invocations
    got throttled, 500, in the first second of a pause)."""
    bootstrap, pid = private_broker
    use_private_broker(monkeypatch, bootstrap, kafka_publish_wait_ms="1000", kafka_publish_quick_wait_ms="200")
    permits = circuit_breaker.WaitPermits(f"kafka-it-{uuid.uuid4().hex[:8]}", limit=1, lease_seconds=30)

    def publish(records: list[EventRecord]) -> None:
        kafka.publish_events(records, patience=permits.permit)

    try:
        assert "ok" in [attempt(publish)[0] for _ in range(5)]
        with paused(pid), permits.permit() as held_elsewhere:  # another instance waits on the broker
            refused, refused_in = attempt(publish)
        after = until_ok(publish)
    finally:
        get_settings.cache_clear()
        kafka._producer.cache_clear()

    assert held_elsewhere
    assert refused.startswith("503") and 0.15 < refused_in < 0.6  # the quick wait, not the publish wait
    assert after == "ok"


def test_an_open_circuit_in_redis_makes_the_handler_answer_503_at_once_without_touching_kafka(
    settings, producer_function, http_event, acme_headers, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_publish(_events, **_) -> None:
        raise AssertionError("an open circuit must not call Kafka")

    monkeypatch.setattr(kafka, "publish_events", must_not_publish)
    store = publisher.kafka_circuit_store()
    opened_at = int(time.time())
    store.save_open("kafka", failure_count=3, opened_at=opened_at)  # as another instance would have written it
    store._cache.clear()  # this instance reads the shared record, as it would once its cached copy expires
    try:
        started = time.monotonic()
        response = producer_function.handler(http_event(SEED, headers=acme_headers), lambda_context)
        elapsed = time.monotonic() - started
    finally:
        store.save_closed("kafka")

    assert response["statusCode"] == 503
    assert 1 <= int(response["headers"]["Retry-After"]) < 2 * settings.kafka_breaker_recovery_seconds
    assert json.loads(response["body"])["error"]["details"] == {"dependency": "kafka"}
    assert elapsed < 0.5


def test_the_clients_an_open_circuit_refuses_come_back_spread_over_a_recovery_period(settings) -> None:
    """Not all in the second the circuit closes: there they outnumbered the instances and were throttled (500)."""
    calls: list[int] = []

    def broker_down(_events) -> None:
        calls.append(1)
        raise DependencyUnavailableError("kafka", "test: broker down", 5)

    store = circuit_breaker.RedisCircuitStore(prefix=f"it-breaker:{uuid.uuid4().hex}:")
    publish = circuit_breaker.guarded(
        "kafka", publisher.kafka_breaker_policy(settings), store, circuit_name=f"kafka-spread-{uuid.uuid4().hex[:8]}"
    )(broker_down)
    for _ in range(settings.kafka_breaker_failure_threshold):
        attempt(publish)

    waits = [int(attempt(publish)[0].removeprefix("503 after ").removesuffix("s")) for _ in range(30)]

    assert len(calls) == settings.kafka_breaker_failure_threshold  # the circuit is open: refused without a call
    recovery = settings.kafka_breaker_recovery_seconds
    assert all(1 <= wait < 2 * recovery for wait in waits)
    assert len(set(waits)) > 1, waits


def test_with_redis_down_each_instance_still_opens_probes_and_closes_on_its_own(
    settings, transitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_port = free_port()
    dead_redis = cache.connect(f"redis://127.0.0.1:{closed_port}/0", timeout_seconds=0.5)
    store = circuit_breaker.RedisCircuitStore(client=lambda: dead_redis)
    healthy = {"kafka": False}
    calls: list[int] = []

    def flaky(_events) -> None:
        calls.append(1)
        if not healthy["kafka"]:
            raise DependencyUnavailableError("kafka", "test: broker down", 5)

    monkeypatch.setenv("KAFKA_BREAKER_RECOVERY_SECONDS", "1")
    get_settings.cache_clear()
    try:
        publish = circuit_breaker.guarded(
            "kafka",
            publisher.kafka_breaker_policy(get_settings()),
            store,
            circuit_name=f"kafka-noredis-{uuid.uuid4().hex[:8]}",
        )(flaky)
    finally:
        get_settings.cache_clear()

    outcomes = [attempt(publish)[0] for _ in range(settings.kafka_breaker_failure_threshold + 2)]
    assert len(calls) == settings.kafka_breaker_failure_threshold  # the last two were refused without a call
    assert all(outcome.startswith("503") for outcome in outcomes)
    healthy["kafka"] = True
    time.sleep(2.1)
    assert [attempt(publish)[0] for _ in range(settings.kafka_breaker_success_threshold + 1)] == ["ok"] * 3
    assert transitions == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert cache.client().ping()  # the shared Redis was never the one failing here


def test_unkeyed_ingest_keeps_flowing_while_redis_is_down(
    settings, redis_down, producer_function, http_event, acme_headers, lambda_context
) -> None:
    publisher.kafka_circuit_store()._cache.clear()  # force a read of the (unreachable) shared state

    started = time.monotonic()
    response = producer_function.handler(http_event(SEED, headers=acme_headers), lambda_context)

    assert response["statusCode"] == 202, response["body"]
    assert time.monotonic() - started < 2  # the breaker's failed read costs milliseconds, not retries

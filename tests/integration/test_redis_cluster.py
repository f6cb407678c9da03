"""Every kind of Redis command logpipe sends, against a Redis Cluster (ElastiCache Serverless is always one): a
fixture starts three masters of Debian's redis-server on private ports, joins them with `redis-cli --cluster
create`, and stops them after the module. Keys of different organizations live on different nodes, so a command
that spanned slots, or a write sent to the wrong node, fails here."""

import random
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from aws_lambda_powertools.utilities.circuit_breaker.states import CircuitState
from pydantic import BaseModel
from redis.cluster import RedisCluster

from logpipe.access import auth, keys, ratelimit
from logpipe.access.models import Scope
from logpipe.adapters import cache, circuit_breaker
from logpipe.config import RateLimitPolicy, Settings, get_settings
from logpipe.errors import AuthenticationError, RateLimitedError
from logpipe.ingest import idempotency
from logpipe.models import IngestAccepted
from logpipe.read.answer_cache import AnswerCache
from logpipe.receipts import accepted
from tests.integration.stored_events import make_event

MASTERS = 3
ORGANIZATIONS = 12  # enough for their hash tags to fall on every node


def _port_with_free_bus(taken: list[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = random.randrange(20000, 30000)
        if port not in taken and _is_free(port) and _is_free(port + 10000):
            return port


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the local Redis Cluster never got {what}")


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-master Redis Cluster of redis-server processes of this fixture; yields the URL of one node."""
    ports: list[int] = []
    for _ in range(MASTERS):
        ports.append(_port_with_free_bus(ports))
    folder = tmp_path_factory.mktemp("redis-cluster")
    servers = [_start_node(folder / str(port), port) for port in ports]
    try:
        for port in ports:
            _wait_for(redis.Redis(port=port).ping, f"node {port} answering")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{port}" for port in ports], "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait_for(lambda port=port: redis.Redis(port=port).cluster("info")["cluster_state"] == "ok", "state ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


def _start_node(folder: Path, port: int) -> subprocess.Popen:
    folder.mkdir()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"]
    arguments += ["--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf")]
    log = (folder / "redis.log").open("w")
    return subprocess.Popen(["redis-server", *arguments], stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def on_cluster(redis_cluster: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings (and the process's Redis client) pointing at the cluster."""
    monkeypatch.setenv("REDIS_URL", redis_cluster)
    get_settings.cache_clear()
    cache.client.cache_clear()
    monkeypatch.setattr(ratelimit, "_leases", {})
    monkeypatch.setattr(auth, "_local_cache", {})
    yield get_settings()
    monkeypatch.undo()
    get_settings.cache_clear()
    cache.client.cache_clear()


@pytest.fixture
def organizations() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"cluster-{run}-{index}" for index in range(ORGANIZATIONS)]


def nodes_of(keys: list[str]) -> set[str]:
    cluster: RedisCluster = cache.client()
    return {cluster.get_node_from_key(key).name for key in keys}


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


def test_the_client_is_a_cluster_client_and_the_organizations_span_every_node(
    on_cluster: Settings, organizations: list[str]
) -> None:
    assert isinstance(cache.client(), RedisCluster)
    cache.ping()
    assert len(nodes_of([f"accepted:{{{organization}}}:1" for organization in organizations])) == MASTERS


def test_accept_records_are_recorded_found_and_removed_on_every_node(
    on_cluster: Settings, organizations: list[str]
) -> None:
    now = datetime.now(UTC)
    events = [make_event(organization, timestamp=now, received_at=now) for organization in organizations]
    accepted.record_accepted(events, on_cluster)  # one reply-less write per node
    for event in events:
        assert eventually(lambda event=event: accepted.was_accepted(event.organization_id, event.id, on_cluster))

    accepted.forget_settled(events, on_cluster)
    for event in events:
        assert eventually(lambda event=event: not accepted.was_accepted(event.organization_id, event.id, on_cluster))


def test_rate_limit_scripts_run_on_every_node(on_cluster: Settings, organizations: list[str]) -> None:
    small = RateLimitPolicy(rate=0.001, burst=2)
    settings = on_cluster.model_copy(update={"rate_limit_overrides": dict.fromkeys(organizations, small)})
    for organization in organizations:
        assert ratelimit.take_organization_tokens(organization, 2, settings).remaining == 0
        with pytest.raises(RateLimitedError):
            ratelimit.take_organization_tokens(organization, 1, settings)
    assert ratelimit.take_auth_failure_token("192.0.2.1", settings).admitted


def test_idempotency_records_work_on_every_node(on_cluster: Settings, organizations: list[str], lambda_context) -> None:
    idempotency.register_lambda_context(lambda_context)
    done: list[str] = []

    def work() -> IngestAccepted:
        done.append("work")
        return IngestAccepted(id=uuid.uuid4())

    for organization in organizations:
        scope = ["event-key", organization, "retry-me"]
        first = idempotency.once(scope, {"body": 1}, on_cluster, work, IngestAccepted)
        assert idempotency.once(scope, {"body": 1}, on_cluster, work, IngestAccepted) == first
    assert len(done) == len(organizations)


def test_circuit_state_is_shared_and_its_probe_elected(on_cluster: Settings) -> None:
    store = circuit_breaker.RedisCircuitStore()
    name, opened_at = f"cluster-{uuid.uuid4().hex[:8]}", int(time.time())
    store.save_open(name, failure_count=3, opened_at=opened_at)  # a transaction on the circuit's key
    store._cache.clear()
    assert store.get_state(name).state == CircuitState.OPEN
    assert store.try_acquire_half_open(name, "first", opened_at)  # the election script
    assert not store.try_acquire_half_open(name, "second", opened_at)
    store.save_closed(name)


class Counted(BaseModel):
    total: int


def test_answer_caches_work_on_every_node(on_cluster: Settings, organizations: list[str]) -> None:
    answers = AnswerCache("cluster-it", Counted)
    computed: list[str] = []

    def compute() -> Counted:
        computed.append("query")
        return Counted(total=7)

    for organization in organizations:
        assert answers.get(organization, "window", compute, max_age=60).total == 7
        assert answers.get(organization, "window", compute, max_age=60).total == 7
        answers.invalidate(organization)
    assert len(computed) == len(organizations)


def test_the_key_cache_and_revocation_work_on_the_cluster(on_cluster: Settings, organization_id: str) -> None:
    created = keys.create_key(organization_id, [Scope.READ])
    assert auth.authenticate(created.key, on_cluster).organization_id == organization_id
    assert cache.client().get(auth._redis_key(auth.hash_key(created.key))) is not None  # cached on its node

    keys.revoke_key(organization_id, created.id, on_cluster)
    auth._local_cache.clear()
    with pytest.raises(AuthenticationError):
        auth.authenticate(created.key, on_cluster)

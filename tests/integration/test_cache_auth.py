"""The cache's user (ElastiCache RBAC in template.yaml) against a real Redis of the test's own, whose users are the
template's: `default` switched off, `logpipe` with CacheUser's access string and the password of a secret (moto for
Secrets Manager). logpipe authenticates from the secret, and its Redis work runs under that access string."""

import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from local.lambda_runner.cfn_yaml import load_yaml
from logpipe.adapters import cache
from logpipe.config import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
USERNAME = "logpipe"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class UsersRedis:
    url: str
    password: str  # of `logpipe`
    inspector: redis.Redis  # a test-only user that may read the ACL log


@pytest.fixture(scope="module")
def users_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersRedis]:
    """A Redis with the template's users (and the test's inspector), stopped afterwards."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    user = load_yaml(REPO_ROOT / "template.yaml")["Resources"]["CacheUser"]["Properties"]
    assert user["UserName"] == USERNAME
    folder, port, password = tmp_path_factory.mktemp("redis-users"), free_port(), secrets.token_urlsafe(24)
    inspector_password = secrets.token_urlsafe(24)
    config = folder / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {folder}\n'
        f"user default off\nuser {USERNAME} {user['AccessString']} >{password}\n"
        f"user inspector on ~* &* +@all >{inspector_password}\n"
    )
    process = subprocess.Popen([server, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.05)
        inspector = redis.Redis(port=port, username="inspector", password=inspector_password)
        yield UsersRedis(f"redis://127.0.0.1:{port}/0", password, inspector)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def on_users_redis(users_redis: UsersRedis, secrets_manager, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """logpipe's Redis client pointed at that Redis, REDIS_SECRET_ARN naming a secret of `logpipe`; yields the ARN."""
    live_store = cache.idempotency_store()  # bound to the live client; re-pointed below, restored by undo()
    arn = secrets_manager({"username": USERNAME, "password": users_redis.password})
    monkeypatch.setenv("REDIS_URL", users_redis.url)
    monkeypatch.setenv("REDIS_SECRET_ARN", arn)
    get_settings.cache_clear()
    cache.client.cache_clear()
    authenticated = cache.client()
    monkeypatch.setattr(live_store, "client", authenticated)
    try:
        yield arn
    finally:
        authenticated.close()  # not cache.client(): a test may have left it to make without the secret
        monkeypatch.undo()
        get_settings.cache_clear()
        cache.client.cache_clear()


def test_logpipe_authenticates_as_the_user_of_its_secret(on_users_redis: str) -> None:
    cache.ping()
    assert cache.client().acl_whoami() == USERNAME


def test_without_the_secret_the_cache_refuses_every_command(on_users_redis: str, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_SECRET_ARN")
    get_settings.cache_clear()
    cache.client.cache_clear()
    with pytest.raises(redis.AuthenticationError):
        cache.ping()


def test_the_producer_and_gateway_work_under_the_cache_users_access_string(
    on_users_redis: str,
    users_redis: UsersRedis,
    producer_function,
    gateway_function,
    sample_event,
    api_request,
    lambda_context,
    api_key,
    organization_id: str,
) -> None:
    """Key cache, rate limit script, idempotency record, accept records (replyless), stats cache: several of them
    fail open or go unanswered, so what the access string refused is read from Redis's ACL log."""
    users_redis.inspector.acl_log_reset()
    event = sample_event("producer_post_log")
    event["body"] = json.dumps({**json.loads(event["body"]), "organizationId": organization_id})
    event["headers"]["idempotency-key"] = "cache-auth-1"
    first, retry = (producer_function.handler(event, lambda_context) for _ in range(2))
    assert first["statusCode"] == retry["statusCode"] == 202, first
    assert first["body"] == retry["body"]
    stats = api_request("GET", "/api/stats", headers={"Authorization": f"Bearer {api_key}"})
    assert gateway_function.handler(stats, lambda_context)["statusCode"] == 200
    assert users_redis.inspector.acl_log() == []
    assert users_redis.inspector.dbsize() >= 5  # the work went to this Redis

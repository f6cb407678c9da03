import secrets
from collections.abc import Callable

import pytest

from logpipe.access import auth, ratelimit
from logpipe.access.auth import Principal
from logpipe.access.models import KEY_PREFIX, SECRET_BYTES
from logpipe.receipts import accepted, outcomes


@pytest.fixture(autouse=True)
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests have no Redis or PostgreSQL: Powertools skips idempotency records and circuit-breaker state when these
    are set, and the status API's records of accepted, settled and dead-lettered ids are not written."""
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_CIRCUIT_BREAKER_DISABLED", "true")
    monkeypatch.setattr(accepted, "record_accepted", lambda events, settings: None)
    monkeypatch.setattr(accepted, "forget_settled", lambda events, settings: None)
    monkeypatch.setattr(outcomes, "record_dead_letters", lambda letters: None)


@pytest.fixture
def auth_headers(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    """Unit tests have no PostgreSQL or Redis: keys live in a dict here and rate limits admit everything."""
    principals: dict[bytes, Principal] = {}
    monkeypatch.setattr(auth, "_lookup", lambda key_hash, settings: principals.get(key_hash))
    monkeypatch.setattr(ratelimit, "take_organization_tokens", lambda organization_id, cost, settings, bucket: None)

    def make(organization_id: str, scopes: str = "ingest,read,admin") -> dict[str, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        principals[auth.hash_key(key)] = Principal("unit", organization_id, frozenset(scopes.split(",")))
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def api_key(auth_headers) -> str:
    """The key sample /api events carry: organization acme (the sample events' tenant), every scope."""
    return auth_headers("acme")["Authorization"].removeprefix("Bearer ")

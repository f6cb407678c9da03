"""Revocation against real PostgreSQL and Redis: a revoked key stops working within API_KEY_CACHE_SECONDS, even
when a lookup that read the key as active races the revoke."""

import pytest

from logpipe.access import auth, key_store, keys
from logpipe.access.models import Scope
from logpipe.config import Settings
from logpipe.errors import AuthenticationError, DependencyUnavailableError


def _forget_this_process() -> None:
    """What another process sees once its own cache entry is older than API_KEY_CACHE_SECONDS."""
    auth._local_cache.clear()


def test_a_lookup_that_read_the_key_before_the_revoke_does_not_cache_it_after(
    organization_id: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = keys.create_key(organization_id, [Scope.READ])
    read_active_key = key_store.find_active_key

    def revoked_right_after_the_read(key_hash: bytes):
        found = read_active_key(key_hash)  # the key is still active here
        keys.revoke_key(organization_id, created.id, settings)  # another process revokes it now
        return found

    monkeypatch.setattr(key_store, "find_active_key", revoked_right_after_the_read)
    assert auth.authenticate(created.key, settings).organization_id == organization_id  # the racing lookup
    monkeypatch.undo()

    _forget_this_process()
    with pytest.raises(AuthenticationError):
        auth.authenticate(created.key, settings)


def test_a_revoked_key_cached_in_redis_stops_working(organization_id: str, settings: Settings) -> None:
    created = keys.create_key(organization_id, [Scope.READ])
    auth.authenticate(created.key, settings)  # cached in this process and in Redis
    _forget_this_process()
    assert auth.authenticate(created.key, settings).key_id == str(created.id)  # served by the Redis entry

    keys.revoke_key(organization_id, created.id, settings)
    _forget_this_process()
    with pytest.raises(AuthenticationError):
        auth.authenticate(created.key, settings)


def test_a_revocation_that_cannot_reach_redis_is_answered_as_unavailable(
    organization_id: str, settings: Settings, redis_down
) -> None:
    created = keys.create_key(organization_id, [Scope.READ])
    with pytest.raises(DependencyUnavailableError):
        keys.revoke_key(organization_id, created.id, settings)

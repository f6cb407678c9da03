"""Who is calling: the API key presented with a request, checked against its hash, cached so a warm request costs no
database trip.

Lookups are cached in process for `api_key_cache_seconds` and in Redis for `api_key_redis_cache_seconds`.
Revocation overwrites the Redis entry with a revocation mark (`forget`), and a lookup caches what PostgreSQL told
it only where no entry is (SET NX), and only when it read PostgreSQL less than CACHE_WRITE_DEADLINE_SECONDS ago:
a lookup that read the key as active just before the revoke cannot put it back after it. So a revoked key stops
working everywhere within `api_key_cache_seconds` (docs/gateway.md).

A presented key that cannot be one of ours (not `lp_` and 43 URL-safe base64 characters) is refused without a
lookup. Failed authentications are counted per client address; an address over the limit gets 429 for its
failures, while a valid key is accepted from any address (many clients may share one behind a NAT).
"""

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass

import redis

from logpipe.access import key_store, ratelimit
from logpipe.access.models import KEY_PREFIX, SECRET_BYTES, Scope
from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import AuthenticationError, DependencyUnavailableError, PermissionDeniedError, RateLimitedError
from logpipe.observability import logger


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's organization and scopes."""

    key_id: str
    organization_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Cached:
    principal: Principal | None
    expires_at: float


_LOCAL_CACHE_ENTRIES = 10_000
# A lookup slower than this (from its PostgreSQL read to its Redis write) does not cache what it read; the
# revocation mark outlives it many times over, so no write of a lookup that began before a revoke lands after it.
CACHE_WRITE_DEADLINE_SECONDS = 2.0
REVOKED_MARK_SECONDS = 60
_REVOKED = b"revoked"
# What logpipe.access.keys.create_key makes: the prefix and a token_urlsafe of SECRET_BYTES.
_KEY_SHAPE = re.compile(rf"{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]{{{math.ceil(SECRET_BYTES * 4 / 3)}}}")
_local_cache: dict[bytes, _Cached] = {}
# Client addresses over the failed-authentication limit, refused here until the given monotonic time.
_blocked_addresses: dict[str, tuple[float, ratelimit.Quota]] = {}


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def forget(key_hash: bytes, settings: Settings) -> None:
    """Drop a revoked key from this process's cache and mark it revoked in Redis (replacing its cache entry).

    Raises DependencyUnavailableError when Redis cannot be reached: the key is revoked in PostgreSQL, but other
    processes may serve it from Redis until the entry expires, so the revocation is answered as not yet done and
    its retry (revoking again is harmless) writes the mark.
    """
    _local_cache.pop(key_hash, None)
    try:
        cache.client().set(_redis_key(key_hash), _REVOKED, ex=REVOKED_MARK_SECONDS)
    except redis.RedisError as exc:
        raise DependencyUnavailableError(
            "redis", "the key is revoked but cannot be dropped from the cache", settings.retry_after_seconds
        ) from exc


def authenticate_request(key: str | None, client_address: str, settings: Settings) -> Principal:
    """The caller behind a key, counting failures per client address: a failure from an address over the limit
    is RateLimitedError (without asking Redis again while this process blocks the address)."""
    try:
        return authenticate(key, settings)
    except AuthenticationError:
        blocked = _blocked_addresses.get(client_address)
        if blocked and blocked[0] > time.monotonic():
            raise RateLimitedError("too many failed authentications from this address", blocked[1]) from None
        quota = ratelimit.take_auth_failure_token(client_address, settings)
        if quota is not None and not quota.admitted:
            if len(_blocked_addresses) >= _LOCAL_CACHE_ENTRIES:
                _blocked_addresses.clear()
            _blocked_addresses[client_address] = (time.monotonic() + quota.retry_after_seconds, quota)
            raise RateLimitedError("too many failed authentications from this address", quota) from None
        raise


def authenticate(key: str | None, settings: Settings) -> Principal:
    if not key:
        raise AuthenticationError("an API key is required (Authorization: Bearer <key> or X-Api-Key)")
    if not _KEY_SHAPE.fullmatch(key):
        raise AuthenticationError("the API key is not valid")
    key_hash = hash_key(key)
    cached = _local_cache.get(key_hash)
    if cached is None or cached.expires_at <= time.monotonic():
        cached = _Cached(_lookup(key_hash, settings), time.monotonic() + settings.api_key_cache_seconds)
        if len(_local_cache) >= _LOCAL_CACHE_ENTRIES:  # a flood of made-up keys must not grow it without end
            _local_cache.clear()
        _local_cache[key_hash] = cached
    if cached.principal is None:
        raise AuthenticationError("the API key is not valid")
    return cached.principal


def require_scope(principal: Principal, scope: Scope) -> None:
    if scope not in principal.scopes:
        raise PermissionDeniedError(f"this API key lacks the '{scope}' scope", details={"scope": str(scope)})


def _lookup(key_hash: bytes, settings: Settings) -> Principal | None:
    """Redis first (the entry of an active key, or the mark of a revoked one), then PostgreSQL (caching what it
    finds unless an entry appeared meanwhile or the lookup was too slow)."""
    redis_key = _redis_key(key_hash)
    try:
        cached = cache.client().get(redis_key)
    except redis.RedisError:
        cached = None
    if cached == _REVOKED:
        return None
    if cached:
        entry = json.loads(cached)
        return Principal(entry["id"], entry["org"], frozenset(entry["scopes"]))
    started = time.monotonic()
    found = key_store.find_active_key(key_hash)
    if found is None:
        return None
    principal = Principal(str(found.id), found.organization_id, frozenset(str(scope) for scope in found.scopes))
    if time.monotonic() - started < CACHE_WRITE_DEADLINE_SECONDS:
        _cache_in_redis(redis_key, principal, settings)
    return principal


def _cache_in_redis(redis_key: str, principal: Principal, settings: Settings) -> None:
    entry = json.dumps({"id": principal.key_id, "org": principal.organization_id, "scopes": sorted(principal.scopes)})
    try:
        cache.client().set(redis_key, entry, nx=True, ex=settings.api_key_redis_cache_seconds)
    except redis.RedisError as exc:
        logger.warning("api key not cached in Redis", extra={"error": str(exc)})


def _redis_key(key_hash: bytes) -> str:
    return f"apikey:{key_hash.hex()}"

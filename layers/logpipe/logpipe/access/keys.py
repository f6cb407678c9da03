"""API keys: creation, revocation and the per-request check, cached so a warm request costs no database trip.

A key is `lp_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a key this random cannot be
guessed or brute-forced from its hash, so a slow password hash (bcrypt, scrypt) would add milliseconds per
uncached check and no protection. Lookups are cached in process for `api_key_cache_seconds` and in Redis for
`api_key_redis_cache_seconds`; revocation deletes the Redis entry, so a revoked key stops working everywhere
within `api_key_cache_seconds` (docs/gateway.md).

`python -m logpipe.access.keys --org acme --scopes ingest,read [--name NAME]` creates a key and prints it last.
"""

import argparse
import hashlib
import re
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import redis

from logpipe.access import key_store, ratelimit
from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import AuthenticationError, EventNotFoundError, PermissionDeniedError, RateLimitedError
from logpipe.models import LogEventIn
from logpipe.observability import logger
from logpipe.read.models import ApiKey, CreatedApiKey, Scope

KEY_PREFIX = "lp_"
# The organization id rule of the ingest body.
ORGANIZATION_ID = re.compile(
    next(rule.pattern for rule in LogEventIn.model_fields["organization_id"].metadata if hasattr(rule, "pattern"))
)


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
_local_cache: dict[bytes, _Cached] = {}
# Client addresses over the failed-authentication limit, refused here until the given monotonic time.
_blocked_addresses: dict[str, tuple[float, ratelimit.Quota]] = {}


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def create_key(organization_id: str, scopes: list[Scope], name: str = "") -> CreatedApiKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    info = ApiKey(
        id=uuid4(),
        organization_id=organization_id,
        name=name,
        scopes=sorted(set(scopes)),
        prefix=secret[:10],
        created_at=datetime.now(UTC),
    )
    key_store.insert_key(info, hash_key(secret))
    logger.info("api key created", extra={"organization_id": organization_id, "key_id": str(info.id)})
    return CreatedApiKey(**info.model_dump(), key=secret)


def list_keys(organization_id: str) -> list[ApiKey]:
    return key_store.list_keys(organization_id)


def revoke_key(organization_id: str, key_id: UUID) -> None:
    """Revoke one of the organization's keys; another organization's key id is simply not found."""
    key_hash = key_store.revoke_key(organization_id, key_id)
    if key_hash is None:
        raise EventNotFoundError(f"no API key {key_id}")
    _local_cache.pop(key_hash, None)
    try:
        cache.client().delete(_redis_key(key_hash))
    except redis.RedisError as exc:  # the Redis entry then lives out its TTL
        logger.warning("revoked key still cached in Redis", extra={"error": str(exc)})
    logger.info("api key revoked", extra={"organization_id": organization_id, "key_id": str(key_id)})


def authenticate_request(key: str | None, client_address: str, settings: Settings) -> Principal:
    """The caller behind a key, counting failures per client address (over the limit: RateLimitedError)."""
    blocked = _blocked_addresses.get(client_address)
    if blocked and blocked[0] > time.monotonic():
        raise RateLimitedError("too many failed authentications from this address", blocked[1])
    try:
        return authenticate(key, settings)
    except AuthenticationError:
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
    """Redis first (the entry of an active key), then PostgreSQL (caching what it finds)."""
    redis_key = _redis_key(key_hash)
    try:
        cached = cache.client().hgetall(redis_key)
    except redis.RedisError:
        cached = None
    if cached:
        return Principal(
            key_id=cached[b"id"].decode(),
            organization_id=cached[b"org"].decode(),
            scopes=frozenset(cached[b"scopes"].decode().split(",")),
        )
    found = key_store.find_active_key(key_hash)
    if found is None:
        return None
    principal = Principal(str(found.id), found.organization_id, frozenset(str(scope) for scope in found.scopes))
    mapping = {"id": principal.key_id, "org": principal.organization_id, "scopes": ",".join(principal.scopes)}
    try:
        with cache.client().pipeline() as pipe:
            pipe.hset(redis_key, mapping=mapping).expire(redis_key, settings.api_key_redis_cache_seconds).execute()
    except redis.RedisError as exc:
        logger.warning("api key not cached in Redis", extra={"error": str(exc)})
    return principal


def _redis_key(key_hash: bytes) -> str:
    return f"apikey:{key_hash.hex()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create an API key; prints it alone on the last line.")
    parser.add_argument("--org", required=True, help="organization id")
    parser.add_argument("--scopes", default="ingest,read", help="comma-separated: ingest, read, admin")
    parser.add_argument("--name", default="", help="a label to recognise the key by")
    args = parser.parse_args(argv)
    if not ORGANIZATION_ID.fullmatch(args.org):
        parser.error("--org must be an organization id such as acme (letters, digits, . _ : -)")
    try:
        scopes = [Scope(scope.strip()) for scope in args.scopes.split(",") if scope.strip()]
    except ValueError:
        parser.error(f"scopes must be among {', '.join(scope.value for scope in Scope)}")
    created = create_key(args.org, scopes, args.name)
    print(f"created key {created.id} for {created.organization_id} with scopes {','.join(created.scopes)}")
    print(created.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())

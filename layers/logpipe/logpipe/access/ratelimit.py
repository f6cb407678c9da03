"""Rate limits: token buckets in Redis, taken atomically by one Lua script (one round trip per take).

Each organization has a bucket of `burst` events refilled at `rate` events/s (settings, with per-organization
overrides); a batch takes one token per event. A request is admitted while the bucket holds at least
min(cost, burst) tokens and then takes the whole cost, so a batch larger than the bucket is not refused forever:
it leaves the bucket in debt, repaid by the refill. Failed authentications have their own bucket per client
address. Redis down: buckets fail open for `rate_limit_fail_open_seconds` from the first failure, then closed (503).

Leases keep most requests off Redis: a take also claims up to `burst // 100` (at most
`rate_limit_lease_tokens`) spare tokens, which this process spends locally for up to one second. Claimed tokens
have left the Redis bucket, so the limit is never exceeded; a lease that expires unspent only under-admits.
Small buckets (burst < 100) get no lease: every request is decided in Redis.
"""

import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache

import redis

from logpipe.adapters import cache
from logpipe.config import RateLimitPolicy, Settings
from logpipe.errors import DependencyUnavailableError, RateLimitedError
from logpipe.observability import logger

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost, spare tokens wanted for a lease. Returns {admitted,
# whole tokens left, seconds until full, seconds until this cost would be admitted, spare tokens granted}.
_TAKE_TOKENS = """
local rate, burst, cost, spare = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local needed = math.min(cost, burst)
local admitted, wait, granted = 0, 0, 0
if tokens >= needed then
    granted = math.max(0, math.min(spare, math.floor(tokens - cost)))
    admitted, tokens = 1, tokens - cost - granted
else
    wait = (needed - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local refill = (burst - tokens) / rate
redis.call('PEXPIRE', KEYS[1], math.ceil(refill * 1000) + 1000)
return {admitted, math.max(0, math.floor(tokens)), math.ceil(refill), math.ceil(wait), granted}
"""

ORGANIZATION_POLICY = "org"
INGEST_BYTES_POLICY = "ingest-bytes"
AUTH_FAILURE_POLICY = "auth-failures"


@dataclass(frozen=True)
class Bucket:
    """One kind of per-organization bucket: its policy name (in the RateLimit fields) and Redis key prefix."""

    policy: str
    key_prefix: str


# Requests to the read and admin routes, one token each.
REQUESTS = Bucket(ORGANIZATION_POLICY, "ratelimit:org:")
# Ingest, one token per byte of the decoded request body (as Loki's ingestion_rate_mb), on every ingest route.
INGEST_BYTES = Bucket(INGEST_BYTES_POLICY, "ratelimit:ingest-bytes:")


@dataclass(frozen=True)
class Quota:
    """Where a bucket stands after a take, in the terms of the IETF RateLimit fields."""

    policy: str
    admitted: bool
    limit: int  # q: the bucket's capacity
    window_seconds: int  # w: time to refill an empty bucket
    remaining: int  # r
    reset_seconds: int  # t: time until the bucket is full again
    retry_after_seconds: int  # time until this request would have been admitted (0 when it was)


class _RedisOutage:
    """Since when Redis has been failing for this process; fail open within the allowance, closed after it."""

    def __init__(self) -> None:
        self.since: float | None = None

    def allows(self, allowance_seconds: float) -> bool:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return now - self.since <= allowance_seconds


_outage = _RedisOutage()

LEASE_SECONDS = 1.0


@dataclass
class _Lease:
    """Tokens this process claimed from an organization's bucket and may spend without asking Redis."""

    tokens: int
    expires_at: float
    quota: "Quota"  # the bucket as Redis reported it when the lease was granted


_leases: dict[tuple[Bucket, str], _Lease] = {}


def take_organization_tokens(
    organization_id: str, cost: int, settings: Settings, bucket: Bucket = REQUESTS
) -> Quota | None:
    """Take `cost` tokens from the organization's bucket; raises RateLimitedError when refused.

    Returns None while failing open (Redis down, within the allowance); DependencyUnavailableError after it.
    """
    lease = _leases.get((bucket, organization_id))
    if lease is not None and lease.tokens >= cost and lease.expires_at > time.monotonic():
        lease.tokens -= cost
        return replace(lease.quota, remaining=lease.quota.remaining + lease.tokens)
    policy, spare = _policy(bucket, organization_id, settings)
    taken = _take(f"{bucket.key_prefix}{organization_id}", bucket.policy, policy, cost, spare, settings)
    if taken is None:
        return None
    quota, granted = taken
    if not quota.admitted:
        raise RateLimitedError(f"organization {organization_id} is over its rate limit", quota)
    if granted:
        _leases[(bucket, organization_id)] = _Lease(granted, time.monotonic() + LEASE_SECONDS, quota)
        return replace(quota, remaining=quota.remaining + granted)
    return quota


def _policy(bucket: Bucket, organization_id: str, settings: Settings) -> tuple[RateLimitPolicy, int]:
    """The bucket's policy for the organization (its override, else the default) and the spare tokens a lease
    may claim (1 % of the burst; for requests also at most rate_limit_lease_tokens)."""
    if bucket is INGEST_BYTES:
        policy = settings.ingest_rate_overrides.get(organization_id) or RateLimitPolicy(
            rate=settings.ingest_rate_bytes, burst=settings.ingest_burst_bytes
        )
        return policy, policy.burst // 100
    policy = settings.rate_limit_overrides.get(organization_id) or RateLimitPolicy(
        rate=settings.rate_limit_rate, burst=settings.rate_limit_burst
    )
    return policy, min(settings.rate_limit_lease_tokens, policy.burst // 100)


def take_auth_failure_token(client_address: str, settings: Settings) -> Quota | None:
    """Count one failed authentication for a client address; the Quota says whether it is now blocked."""
    policy = RateLimitPolicy(rate=settings.auth_failures_per_minute / 60, burst=settings.auth_failures_burst)
    taken = _take(f"ratelimit:auth:{client_address}", AUTH_FAILURE_POLICY, policy, 1, 0, settings)
    return None if taken is None else taken[0]


def _take(
    key: str, name: str, policy: RateLimitPolicy, cost: int, spare: int, settings: Settings
) -> tuple[Quota, int] | None:
    """(the bucket after the take, spare tokens granted), or None while failing open."""
    try:
        admitted, remaining, reset, wait, granted = _script()(keys=[key], args=[policy.rate, policy.burst, cost, spare])
    except redis.RedisError as exc:
        if _outage.allows(settings.rate_limit_fail_open_seconds):
            logger.warning("rate limits failing open: Redis unavailable", extra={"error": str(exc)})
            return None
        raise DependencyUnavailableError("redis", "Rate limits are unavailable", settings.retry_after_seconds) from exc
    _outage.since = None
    window = math.ceil(policy.burst / policy.rate)
    return Quota(name, bool(admitted), policy.burst, window, remaining, reset, wait), granted


@lru_cache(maxsize=1)
def _registered(client: redis.Redis) -> "redis.commands.core.Script":
    return client.register_script(_TAKE_TOKENS)


def _script() -> "redis.commands.core.Script":
    """The script on the current client: EVALSHA, loading it into Redis on first use."""
    return _registered(cache.client())

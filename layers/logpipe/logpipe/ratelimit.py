"""Rate limits: token buckets in Redis, taken atomically by one Lua script (one round trip per take).

Each organization has a bucket of `burst` events refilled at `rate` events/s (settings, with per-organization
overrides); a batch takes one token per event. A request is admitted while the bucket holds at least
min(cost, burst) tokens and then takes the whole cost, so a batch larger than the bucket is not refused forever:
it leaves the bucket in debt, repaid by the refill. Failed authentications have their own bucket per client
address. Redis down: buckets fail open for `rate_limit_fail_open_seconds` from the first failure, then closed (503).
"""

import math
import time
from dataclasses import dataclass

import redis

from logpipe import cache
from logpipe.config import RateLimitPolicy, Settings
from logpipe.errors import DependencyUnavailableError, RateLimitedError
from logpipe.observability import logger

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost. Returns {admitted, tokens left, seconds until admitted}.
_TAKE_TOKENS = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local needed = math.min(cost, burst)
local admitted, wait = 0, 0
if tokens >= needed then
    admitted, tokens = 1, tokens - cost
else
    wait = (needed - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - math.min(tokens, 0)) / rate * 1000) + 1000)
return {admitted, tostring(tokens), tostring(wait)}
"""

ORGANIZATION_POLICY = "org"
AUTH_FAILURE_POLICY = "auth-failures"


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

    def recovered(self) -> None:
        self.since = None


_outage = _RedisOutage()


def take_organization_tokens(organization_id: str, cost: int, settings: Settings) -> Quota | None:
    """Take `cost` tokens from the organization's bucket; raises RateLimitedError when refused.

    Returns None while failing open (Redis down, within the allowance); DependencyUnavailableError after it.
    """
    policy = settings.rate_limit_overrides.get(organization_id) or RateLimitPolicy(
        rate=settings.rate_limit_rate, burst=settings.rate_limit_burst
    )
    quota = _take(f"ratelimit:org:{organization_id}", ORGANIZATION_POLICY, policy, cost, settings)
    if quota is not None and not quota.admitted:
        raise RateLimitedError(f"organization {organization_id} is over its rate limit", quota)
    return quota


def take_auth_failure_token(client_address: str, settings: Settings) -> Quota | None:
    """Count one failed authentication for a client address; the Quota says whether it is now blocked."""
    policy = RateLimitPolicy(rate=settings.auth_failures_per_minute / 60, burst=settings.auth_failures_burst)
    return _take(f"ratelimit:auth:{client_address}", AUTH_FAILURE_POLICY, policy, 1, settings)


def _take(key: str, name: str, policy: RateLimitPolicy, cost: int, settings: Settings) -> Quota | None:
    try:
        admitted, tokens, wait = _script()(keys=[key], args=[policy.rate, policy.burst, cost])
    except redis.RedisError as exc:
        if _outage.allows(settings.rate_limit_fail_open_seconds):
            logger.warning("rate limits failing open: Redis unavailable", extra={"error": str(exc)})
            return None
        raise DependencyUnavailableError("redis", "Rate limits are unavailable", settings.retry_after_seconds) from exc
    _outage.recovered()
    left = float(tokens)
    return Quota(
        policy=name,
        admitted=bool(admitted),
        limit=policy.burst,
        window_seconds=math.ceil(policy.burst / policy.rate),
        remaining=max(0, math.floor(left)),
        reset_seconds=math.ceil(max(0.0, policy.burst - left) / policy.rate),
        retry_after_seconds=math.ceil(float(wait)),
    )


def _script() -> "redis.commands.core.Script":
    """The script on the current client: EVALSHA, loading it into Redis on first use."""
    return cache.client().register_script(_TAKE_TOKENS)

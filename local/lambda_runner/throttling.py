"""API Gateway's stage throttling: one token bucket per throttled route.

A bucket holds at most ``burst`` tokens and refills at ``rate_per_s``; each request takes one token or is refused
with 429 before any function runs. The clock is injectable so tests drive time by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .sam_model import Throttle

TOO_MANY_REQUESTS_BODY = b'{"message":"Too Many Requests"}'
# Refills are sums of float fractions (ten 0.1 s steps at 10/s make 0.9999999...): count those as a whole token.
_ROUNDING = 1e-9


class TokenBucket:
    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = throttle.rate_per_s
        self.capacity = float(throttle.burst)
        self.tokens = self.capacity
        self._clock = clock
        self._updated = clock()

    def take(self) -> bool:
        """Take one token if there is one; False means the request is throttled."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self.tokens < 1 - _ROUNDING:
            return False
        self.tokens = max(0.0, self.tokens - 1)
        return True

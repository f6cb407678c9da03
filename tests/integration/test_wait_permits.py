"""Wait permits (logpipe.adapters.circuit_breaker.WaitPermits) in the real Redis: how many callers, across every
instance, may wait at once for a dependency slow to answer."""

import socket
import time
import uuid

from logpipe.adapters import cache
from logpipe.adapters.circuit_breaker import WaitPermits


def permits(limit: int, lease_seconds: float = 30) -> WaitPermits:
    return WaitPermits(f"it-{uuid.uuid4().hex}", limit, lease_seconds)


def test_no_more_than_the_limit_hold_a_permit_at_once_and_a_returned_one_is_granted_again() -> None:
    gate = permits(limit=2)
    with gate.permit() as first, gate.permit() as second, gate.permit() as third:
        refused_while_two_held = third
    with gate.permit() as after:
        granted_after = after

    assert (first, second, refused_while_two_held, granted_after) == (True, True, False, True)
    assert cache.client().zcard(gate.key) == 0  # every permit given back


def test_a_lease_whose_holder_died_expires_by_itself() -> None:
    gate = permits(limit=1, lease_seconds=0.3)
    held = gate.permit()
    assert held.__enter__() is True  # taken and never given back: the instance holding it was killed
    with gate.permit() as during:
        refused = during
    time.sleep(0.4)
    with gate.permit() as later:
        granted = later

    assert (refused, granted) == (False, True)


def test_with_redis_down_a_permit_is_granted_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dead_redis = cache.connect(f"redis://127.0.0.1:{closed_port}/0", timeout_seconds=0.5)
    gate = WaitPermits("it-no-redis", 1, 30, client=lambda: dead_redis)

    started = time.monotonic()
    with gate.permit() as first, gate.permit() as second:
        granted = (first, second)

    assert granted == (True, True)  # each instance waits on its own, as the breaker degrades without Redis
    assert time.monotonic() - started < 0.5

"""What the clients saw: every attempt (when, what, the answer) and, per request, the event ids it got acknowledged
(2xx) or refused (4xx). The checker holds PostgreSQL and the fault timeline against it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    """One HTTP exchange; status 0: no answer (connection refused or reset, or the client's timeout)."""

    kind: str
    started: float  # time.time()
    latency_s: float
    status: int
    retry_after: bool


@dataclass(frozen=True)
class Settled:
    """A request's outcome for one event id: the request kind and when the request was first sent."""

    kind: str
    sent_at: float  # time.time()


@dataclass
class Ledger:
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: dict[str, Settled] = field(default_factory=dict)  # by event id
    refused: dict[str, Settled] = field(default_factory=dict)  # by event id
    gave_up: int = 0  # requests still failing when the client's retry budget ran out
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def settle(self, outcome: Settled, acknowledged: list[str], refused: list[str]) -> None:
        with self._lock:
            self.acknowledged.update(dict.fromkeys(acknowledged, outcome))
            self.refused.update(dict.fromkeys(refused, outcome))

    def give_up(self) -> None:
        with self._lock:
            self.gave_up += 1

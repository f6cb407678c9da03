"""Read answers cached aside in Redis, refreshed ahead of expiry: the mechanism of /api/stats and the histogram.

Answers live in one Redis hash per organization and kind (`<kind>:<organization>`; field: the question asked)
and carry the time their query started (`computedAt`: the answer includes every event stored before it). One
older than `max_age` seconds is never served, so an answer is at most that stale. An answer past half that age is
still served, and the first caller to see it (a Redis lock, shared by every instance) recomputes it in a
background thread of its process: a question in steady use is recomputed every half bound or so, never on a
request's time, and by one caller, not by every request that arrives meanwhile. A question nobody asked within
the bound is computed on the request. The cache is an optimisation: without Redis every answer is computed.

A hash holds at most MAX_ANSWERS answers: one that grows past it (an organization asking more distinct questions
within the bound than that) is dropped whole, and its questions are computed again as they come. Each write
renews the hash's expiry, so without that bound a client varying its question would grow one hash for ever.

invalidate(organization_id) drops every cached answer of one kind of an organization at once (one DEL).
"""

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import redis
from pydantic import BaseModel

from logpipe.adapters import cache
from logpipe.observability import logger

Answer = TypeVar("Answer", bound=BaseModel)
MAX_ANSWERS = 64


class AnswerCache(Generic[Answer]):
    def __init__(self, kind: str, model: type[Answer]) -> None:
        self.kind = kind
        self.model = model
        # Refreshes run beside the requests; two at a time per process keep PostgreSQL's share bounded.
        self._refresher = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"{kind}-refresh")

    def get(self, organization_id: str, field: str, compute: Callable[[], Answer], max_age: int) -> Answer:
        """The cached answer to `field` if it is at most `max_age` seconds old, else compute()'s (cached)."""
        cached = self._cached(organization_id, field)
        if cached is not None:
            answer, computed_at = cached
            age = time.time() - computed_at
            if age <= max_age:
                if age >= max_age / 2:
                    self._refresh_ahead(organization_id, field, compute, max_age)
                return self.model.model_validate(answer)
        return self._compute(organization_id, field, compute, max_age)

    def invalidate(self, organization_id: str) -> None:
        cache.client().delete(self._hash_key(organization_id))

    def _compute(self, organization_id: str, field: str, compute: Callable[[], Answer], max_age: int) -> Answer:
        started = time.time()  # what the answer is as new as: its query sees every event stored before this
        answer = compute()
        self._store(organization_id, field, answer, started, max_age)
        return answer

    def _refresh_ahead(self, organization_id: str, field: str, compute: Callable[[], Answer], max_age: int) -> None:
        """Recompute the answer in the background if no caller anywhere is already doing it. The lock lasts half
        the bound: a refresher that died (or an instance frozen by Lambda) is replaced before the answer expires."""
        try:
            taken = cache.client().set(f"{self.kind}-refresh:{organization_id}:{field}", 1, nx=True, px=max_age * 500)
        except redis.RedisError as exc:
            logger.warning(f"{self.kind} refresh lock unavailable", extra={"error": str(exc)})
            return
        if taken:
            self._refresher.submit(self._refresh, organization_id, field, compute, max_age)

    def _refresh(self, organization_id: str, field: str, compute: Callable[[], Answer], max_age: int) -> None:
        try:
            self._compute(organization_id, field, compute, max_age)
        except Exception:  # no caller to tell: the cached answer is served until its bound, then recomputed
            logger.exception(f"{self.kind} refresh failed", extra={"organization_id": organization_id})

    def _cached(self, organization_id: str, field: str) -> tuple[dict, float] | None:
        """The cached answer (as JSON) and when its query started, if there is one."""
        try:
            raw = cache.client().hget(self._hash_key(organization_id), field)
        except redis.RedisError as exc:  # the cache is an optimisation: compute instead
            logger.warning(f"{self.kind} cache unavailable", extra={"error": str(exc)})
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        return entry["answer"], entry["computedAt"]

    def _store(self, organization_id: str, field: str, answer: Answer, computed_at: float, max_age: int) -> None:
        entry = json.dumps({"computedAt": computed_at, "answer": answer.model_dump(mode="json", by_alias=True)})
        key = self._hash_key(organization_id)
        try:
            with cache.client().pipeline(transaction=False) as pipe:
                _added, answers, _renewed = pipe.hset(key, field, entry).hlen(key).expire(key, max_age).execute()
            if answers > MAX_ANSWERS:
                cache.client().delete(key)
        except redis.RedisError as exc:
            logger.warning(f"{self.kind} not cached", extra={"error": str(exc)})

    def _hash_key(self, organization_id: str) -> str:
        return f"{self.kind}:{organization_id}"

"""The checker: the ledger of answers against what PostgreSQL and the dead-letter topic hold, once the consumer caught
up, and per fault what the clients saw.

Checks (any failure fails the run, with the ids or attempts): every event answered 2xx is stored exactly once per
(organization, id); no event answered 4xx is stored; no (organization, id) is stored twice; every dead letter says
why (``x-dlq-reason``); no answer is a 500 (a throttled invocation or a crash: a client cannot tell it from a bug,
and OTLP and Loki clients do not retry it), through any fault or outside one.

Figures per fault: the window of unavailability (first to last failed attempt: no answer or 5xx), the answers by
status in it, the slowest 503, the time from the part's return to the first 2xx and to the consumer's lag caught
up, and the events lost and duplicated among the requests first sent during the fault's slot.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer
from lag import Sample
from ledger import Attempt, Ledger

from logpipe.sink.deadletter import decode_headers

SHOWN_IDS = 20  # ids listed per failed check (the counts are complete)
FAST_503_S = 0.05  # the target for a 503 once the breaker is open


@dataclass(frozen=True)
class FaultRun:
    name: str
    injected_at: float  # time.time() when the fault began
    restored_at: float  # when the part was back (restarted, resumed, unlocked)
    slot_end: float  # when the next fault began (or the load stopped)


def stored_counts(database_url: str, organization_id: str) -> Counter[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, count(*) FROM log_events WHERE organization_id = %s GROUP BY id", (organization_id,)
        ).fetchall()
    return Counter({event_id: count for event_id, count in rows})


def dead_letters(bootstrap: str, topic: str, since: float) -> list[dict[str, str]]:
    """The headers of every record written to the dead-letter topic since ``since`` (time.time())."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-checker-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    headers, idle = [], 0
    try:
        while idle < 5:
            message = consumer.poll(1.0)
            if message is None or message.error():
                idle += 1
                continue
            if message.timestamp()[1] >= since * 1000:
                headers.append(decode_headers(message.headers()))
    finally:
        consumer.close()
    return headers


def _ids(ids: list[str]) -> dict[str, Any]:
    return {"count": len(ids), "ids": sorted(ids)[:SHOWN_IDS]}


def answers_500(attempts: list[Attempt], runs: list[FaultRun]) -> dict[str, Any]:
    """Every attempt answered 500, each with its time, request kind and the fault whose slot it fell in ("warm-up"
    before the first fault)."""
    found = sorted((a for a in attempts if a.status == 500), key=lambda a: a.started)
    return {"count": len(found), "attempts": [_shown(a, runs) for a in found[:SHOWN_IDS]]}


def _shown(attempt: Attempt, runs: list[FaultRun]) -> dict[str, str]:
    fault = next((run.name for run in reversed(runs) if run.injected_at <= attempt.started), "warm-up")
    at = datetime.fromtimestamp(attempt.started, UTC).isoformat(timespec="milliseconds")
    return {"at": at, "kind": attempt.kind, "fault": fault}


def check(
    ledger: Ledger, stored: Counter[str], letters: list[dict[str, str]], runs: list[FaultRun]
) -> dict[str, dict[str, Any]]:
    acknowledged = set(ledger.acknowledged)
    return {
        "lost": _ids([i for i in acknowledged if stored[i] == 0]),
        "duplicated": _ids([i for i, n in stored.items() if n > 1]),
        "refused_but_stored": _ids([i for i in ledger.refused if stored[i] > 0]),
        "dead_letters_without_reason": {
            "count": sum(1 for h in letters if not h.get("x-dlq-reason")),
            "of": len(letters),
        },
        "answers_500": answers_500(ledger.attempts, runs),
    }


def by_status(attempts: list[Attempt]) -> dict[str, int]:
    return dict(sorted(Counter(str(a.status) for a in attempts).items()))


def by_kind_and_status(attempts: list[Attempt]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for attempt in attempts:
        counts.setdefault(attempt.kind, Counter())[str(attempt.status)] += 1
    return {kind: dict(sorted(statuses.items())) for kind, statuses in sorted(counts.items())}


def failed(attempt: Attempt) -> bool:
    return attempt.status == 0 or attempt.status >= 500


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def fault_figures(run: FaultRun, attempts: list[Attempt], samples: list[Sample], ledger: Ledger, stored: Counter[str]):
    in_slot = sorted((a for a in attempts if run.injected_at <= a.started < run.slot_end), key=lambda a: a.started)
    failures = [a for a in in_slot if failed(a)]
    if failures:
        first, last = failures[0].started, max(a.started + a.latency_s for a in failures)
        during = [a for a in in_slot if first <= a.started <= last]
    else:
        first = last = None
        during = [a for a in in_slot if a.started <= run.restored_at]
    first_2xx = next((a for a in in_slot if a.started >= run.restored_at and 200 <= a.status < 300), None)
    back_s = None if first_2xx is None else first_2xx.started + first_2xx.latency_s - run.restored_at
    caught_up = next((s for s in samples if s.at >= run.restored_at and s.caught_up), None)
    lags = [s.lag for s in samples if run.injected_at <= s.at < run.slot_end and s.lag is not None]
    in_503 = sorted(a.latency_s for a in during if a.status == 503)
    slot_ids = [i for i, s in ledger.acknowledged.items() if run.injected_at <= s.sent_at < run.slot_end]
    return {
        "fault": run.name,
        "fault_s": _seconds(run.restored_at - run.injected_at),
        "unavailable_s": _seconds(None if first is None else last - first),
        "unavailable_from_injection_s": _seconds(None if first is None else first - run.injected_at),
        "answers_during": by_status(during),
        "answers_500": sum(1 for a in in_slot if a.status == 500),
        "slowest_503_ms": round(in_503[-1] * 1000, 1) if in_503 else None,
        "p99_503_ms": round(in_503[int(0.99 * (len(in_503) - 1))] * 1000, 1) if in_503 else None,
        "503_over_50ms": sum(1 for latency in in_503 if latency > FAST_503_S),
        "503_without_retry_after": sum(1 for a in during if a.status == 503 and not a.retry_after),
        "first_2xx_after_return_s": _seconds(back_s),
        "lag_caught_up_after_return_s": _seconds(None if caught_up is None else caught_up.at - run.restored_at),
        "max_lag": max(lags, default=None),
        "events_acknowledged": len(slot_ids),
        "lost": sum(1 for i in slot_ids if stored[i] == 0),
        "duplicated": sum(1 for i in slot_ids if stored[i] > 1),
    }

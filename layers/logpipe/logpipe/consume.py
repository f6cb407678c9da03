"""Consumer logic: decode a Kafka batch, store it in bulk, dead-letter what can never be stored."""

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from aws_lambda_powertools.utilities.kafka.consumer_records import ConsumerRecordRecords

from logpipe import db, kafka
from logpipe.kafka import DeadLetter
from logpipe.models import LogEvent
from logpipe.observability import MetricUnit, logger, metrics, tracer

# Errors that belong to a row, not to the database: retrying the batch would fail the same way forever.
_UNSTORABLE_ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError)


@dataclass(frozen=True)
class BatchOutcome:
    received: int
    stored: int
    duplicates: int
    dead_lettered: int


@dataclass(frozen=True)
class _Decoded:
    record: ConsumerRecordRecords
    event: LogEvent


@tracer.capture_method
def process_batch(records: Iterable[ConsumerRecordRecords]) -> BatchOutcome:
    """Store every decodable record exactly once; dead-letter the rest.

    Returns only when rows are committed and dead letters acknowledged, so the caller may commit offsets.
    A transient failure (PostgreSQL or Kafka down) raises, and the whole batch is delivered again.
    """
    started = time.perf_counter()
    decoded, undecodable = _decode(records)
    stored, unstorable = _store(decoded)
    letters = undecodable + unstorable
    kafka.publish_dead_letters(letters)

    outcome = BatchOutcome(
        received=len(decoded) + len(undecodable),
        stored=stored,
        duplicates=len(decoded) - len(unstorable) - stored,
        dead_lettered=len(letters),
    )
    _record_metrics(outcome, decoded, elapsed_ms=(time.perf_counter() - started) * 1000)
    logger.info("batch processed", extra=outcome.__dict__)
    return outcome


def _record_metrics(outcome: BatchOutcome, decoded: list[_Decoded], elapsed_ms: float) -> None:
    metrics.add_metric(name="log_events_processed_total", unit=MetricUnit.Count, value=outcome.stored)
    metrics.add_metric(name="log_event_processing_time", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if decoded:
        # From the producer's receipt to committed storage, for the batch's oldest event.
        oldest = min(item.event.received_at for item in decoded)
        latency_ms = max(0.0, (datetime.now(UTC) - oldest).total_seconds() * 1000)  # clocks may disagree
        metrics.add_metric(name="log_event_end_to_end_latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    if outcome.dead_lettered:
        metrics.add_metric(name="log_events_dead_lettered_total", unit=MetricUnit.Count, value=outcome.dead_lettered)
        metrics.add_metric(name="log_events_errors_total", unit=MetricUnit.Count, value=outcome.dead_lettered)


def _decode(records: Iterable[ConsumerRecordRecords]) -> tuple[list[_Decoded], list[DeadLetter]]:
    decoded: list[_Decoded] = []
    letters: list[DeadLetter] = []
    for record in records:
        try:
            decoded.append(_Decoded(record, record.value))
        except Exception as exc:  # malformed JSON, schema violations: this record can never be stored
            letters.append(_dead_letter(record, "undecodable", exc))
    return decoded, letters


def _store(decoded: list[_Decoded]) -> tuple[int, list[DeadLetter]]:
    try:
        return db.store_events([item.event for item in decoded]), []
    except _UNSTORABLE_ROW_ERRORS as exc:
        logger.warning("bulk store refused a row; isolating it", extra={"error": str(exc)})
    return _store_one_by_one(decoded)


def _store_one_by_one(decoded: list[_Decoded]) -> tuple[int, list[DeadLetter]]:
    stored = 0
    letters: list[DeadLetter] = []
    for item in decoded:
        try:
            stored += db.store_events([item.event])
        except _UNSTORABLE_ROW_ERRORS as exc:
            letters.append(_dead_letter(item.record, "unstorable", exc))
    return stored, letters


def _dead_letter(record: ConsumerRecordRecords, reason: str, exc: Exception) -> DeadLetter:
    return DeadLetter(
        key=base64.b64decode(record.original_key) if record.original_key else None,
        value=base64.b64decode(record.original_value),
        reason=reason,
        error=f"{type(exc).__name__}: {exc}",
        attempts=1,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
    )

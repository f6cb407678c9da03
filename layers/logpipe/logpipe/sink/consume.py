"""Consumer logic: decode a Kafka batch, store it in bulk, dead-letter what can never be stored.

A record that can never be stored never blocks its partition: it goes to the dead-letter topic with its reason
and its neighbours are stored. Rows PostgreSQL refuses are found by bisection (a batch with k bad rows costs
about 2·k·log2(n) small transactions, not n). A PostgreSQL outage raises and the whole batch comes again.
"""

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from aws_lambda_powertools.utilities.kafka.consumer_records import ConsumerRecordRecords
from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator, core_schema

from logpipe.config import Settings
from logpipe.encoding import strict_base64
from logpipe.errors import DependencyUnavailableError
from logpipe.models import MAX_ORGANIZATION_ID_CHARS, LogEvent
from logpipe.observability import MetricUnit, logger, metrics, tracer
from logpipe.receipts import accepted, outcomes
from logpipe.sink import deadletter, storage
from logpipe.sink.deadletter import REPLAY_COUNT_HEADER, DeadLetter
from logpipe.sink.storage import EventFields


@dataclass(frozen=True)
class RecordPosition:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class BatchOutcome:
    received: int
    stored: int
    duplicates: int
    dead_lettered: int
    # Records that could be neither stored nor dead-lettered (the dead-letter topic refused them): the event
    # source is to deliver them again.
    failed_records: list[RecordPosition]


class _Decoded(NamedTuple):
    """A record, its event, and the event's identity as receipts need it (logpipe.receipts.accepted.Accepted)."""

    record: ConsumerRecordRecords
    event: EventFields
    organization_id: str
    id: UUID
    received_at: datetime


def _fields_validator(model: type[BaseModel]) -> SchemaValidator:
    """The model's own validation (each field's schema, alias and default, the model's config) giving a dict of its
    fields instead of an instance: a batch validates thousands of record values, and building a model for each
    was a third of that (LogEvent.model_validate_json 7.2 us against 4.5 us per bench event)."""
    schema = model.__pydantic_core_schema__
    assert schema["type"] == "model" and schema["schema"]["type"] == "model-fields", schema["type"]
    fields = {
        name: core_schema.typed_dict_field(
            field["schema"], required=field["schema"]["type"] != "default", validation_alias=field["validation_alias"]
        )
        for name, field in schema["schema"]["fields"].items()
    }
    return SchemaValidator(core_schema.typed_dict_schema(fields, config=schema["config"]))


# A record's value is LogEvent's JSON (logpipe.ingest.records): checked as LogEvent checks it.
_EVENT_FIELDS = _fields_validator(LogEvent)


class _Unusable(Exception):
    """This record can never be stored (found while decoding); `reason` is its x-dlq-reason."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason


@tracer.capture_method
def process_batch(records: Iterable[ConsumerRecordRecords], settings: Settings, writer: str) -> BatchOutcome:
    """Store every storable record exactly once per (organization, id); dead-letter the rest.

    Returns only when rows are committed and dead letters acknowledged, so the caller may commit offsets.
    A PostgreSQL outage raises DependencyUnavailableError, and the whole batch is delivered again. Once PostgreSQL
    holds every decoded event's outcome, their accept records leave Redis.
    """
    started = time.perf_counter()
    decoded: list[_Decoded] = []
    rejected: list[DeadLetter] = []
    events = _decoded_events(records, _oldest_kept_day(settings), writer, decoded, rejected)
    stored, unstorable = _store_decoding(events, decoded, writer)
    letters = rejected + unstorable
    if letters:
        outcomes.record_dead_letters(_identities(letters))
    accepted.forget_settled(decoded, settings)
    failures = _publish(letters)

    outcome = BatchOutcome(
        received=len(decoded) + len(rejected),
        stored=stored,
        duplicates=len(decoded) - len(unstorable) - stored,
        dead_lettered=len(letters) - len(failures),
        failed_records=failures,
    )
    _record_metrics(outcome, decoded, elapsed_ms=(time.perf_counter() - started) * 1000)
    logger.info("batch processed", extra={k: v for k, v in outcome.__dict__.items() if k != "failed_records"})
    return outcome


def _identities(letters: list[DeadLetter]) -> list[tuple[str, UUID, str]]:
    """(organization, event id, reason) of each dead letter whose value names both, so the read API can answer
    `dead_lettered` for that id; a tombstone or a value without a readable identity has nothing to report."""
    identities = []
    for letter in letters:
        try:
            document = json.loads(letter.value)  # type: ignore[arg-type]
            organization_id, event_id = str(document["organizationId"]), UUID(str(document["id"]))
        except (TypeError, ValueError, KeyError):
            continue
        if len(organization_id) <= MAX_ORGANIZATION_ID_CHARS:  # longer ones were never accepted by ingest
            identities.append((organization_id, event_id, letter.reason))
    return identities


def _oldest_kept_day(settings: Settings) -> date:
    return datetime.now(UTC).date() - timedelta(days=settings.retention_days)


def _record_metrics(outcome: BatchOutcome, decoded: list[_Decoded], elapsed_ms: float) -> None:
    metrics.add_metric(name="log_events_processed_total", unit=MetricUnit.Count, value=outcome.stored)
    metrics.add_metric(name="log_event_processing_time", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if decoded:
        # From the producer's receipt to committed storage, for the batch's oldest event.
        oldest = min(item.received_at for item in decoded)
        latency_ms = max(0.0, (datetime.now(UTC) - oldest).total_seconds() * 1000)  # clocks may disagree
        metrics.add_metric(name="log_event_end_to_end_latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    if outcome.dead_lettered:
        metrics.add_metric(name="log_events_dead_lettered_total", unit=MetricUnit.Count, value=outcome.dead_lettered)
        metrics.add_metric(name="log_events_errors_total", unit=MetricUnit.Count, value=outcome.dead_lettered)


def _decoded_events(
    records: Iterable[ConsumerRecordRecords],
    oldest_kept_day: date,
    writer: str,
    decoded: list[_Decoded],
    rejected: list[DeadLetter],
) -> Iterator[EventFields]:
    """The batch's events as they are decoded, each one also appended to `decoded`; a record that can never be
    stored goes to `rejected`, as its dead letter."""
    for record in records:
        try:
            event = _event(record, oldest_kept_day)
        except _Unusable as exc:
            rejected.append(_dead_letter(record, exc.reason, str(exc), writer))
            continue
        decoded.append(_Decoded(record, event, event["organization_id"], event["id"], event["received_at"]))
        yield event


def _event(record: ConsumerRecordRecords, oldest_kept_day: date) -> EventFields:
    """The record's event, decoded straight from its bytes (UTF-8 and JSON checked by pydantic-core)."""
    value = record.get("value")
    if value is None:  # Lambda omits the value of a tombstone
        raise _Unusable("tombstone", "the record has no value (a tombstone)")
    try:
        raw = strict_base64(value)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise _Unusable("undecodable", f"value is not base64: {exc}") from exc
    try:
        event = _EVENT_FIELDS.validate_json(raw)
    except ValidationError as exc:
        raise _Unusable("undecodable", f"ValidationError: {_short(exc)}") from exc
    timestamp = event["timestamp"]
    if storage.utc_day(timestamp) < oldest_kept_day:
        raise _Unusable("expired", f"timestamp {timestamp.isoformat()} is older than the retention period")
    return event


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def _store_decoding(
    events: Iterator[EventFields], decoded: list[_Decoded], writer: str
) -> tuple[int, list[DeadLetter]]:
    """Store the events while they are decoded (PostgreSQL inserts a row while the next record is decoded); when
    PostgreSQL refuses a row, isolate it among all the `decoded` items (store_events consumes `events` whole)."""
    try:
        return storage.store_events(events), []
    except storage.UnstorableRowsError as exc:
        return _bisect(decoded, writer, exc)


def _store_isolating(items: list[_Decoded], writer: str) -> tuple[int, list[DeadLetter]]:
    """Store the items; when PostgreSQL refuses a row, halve and recurse until each refused row stands alone."""
    try:
        return storage.store_events([item.event for item in items]), []
    except storage.UnstorableRowsError as exc:
        return _bisect(items, writer, exc)


def _bisect(items: list[_Decoded], writer: str, refused: storage.UnstorableRowsError) -> tuple[int, list[DeadLetter]]:
    if len(items) == 1:
        return 0, [_dead_letter(items[0].record, "unstorable", str(refused), writer)]
    logger.warning("PostgreSQL refused a row; bisecting", extra={"rows": len(items), "error": str(refused)})
    middle = len(items) // 2
    stored_first, letters_first = _store_isolating(items[:middle], writer)
    stored_second, letters_second = _store_isolating(items[middle:], writer)
    return stored_first + stored_second, letters_first + letters_second


def _publish(letters: list[DeadLetter]) -> list[RecordPosition]:
    """Publish the dead letters; when the topic refuses them, report their records as failed instead."""
    try:
        deadletter.publish(letters)
    except DependencyUnavailableError:
        logger.exception("dead letters not acknowledged; reporting their records as failed")
        return [
            RecordPosition(letter.source_topic, letter.source_partition, letter.source_offset) for letter in letters
        ]
    return []


def _dead_letter(record: ConsumerRecordRecords, reason: str, error: str, writer: str) -> DeadLetter:
    replayed = _header(record, REPLAY_COUNT_HEADER)
    return DeadLetter(
        key=_bytes_or_none(record.get("key")),
        value=_bytes_or_none(record.get("value")),
        reason=reason,
        error=error,
        attempts=1,
        source_topic=record.topic,
        source_partition=int(record.partition),
        source_offset=int(record.offset),
        writer=writer,
        extra_headers={REPLAY_COUNT_HEADER: replayed} if replayed else {},
    )


def _header(record: ConsumerRecordRecords, name: str) -> str | None:
    for header in record.get("headers") or []:
        if name in header:
            return bytes(header[name]).decode("utf-8", "replace")
    return None


def _bytes_or_none(encoded: str | None) -> bytes | None:
    if encoded is None:
        return None
    try:
        return strict_base64(encoded)
    except ValueError:  # binascii.Error, or a str that is not ASCII: dead-lettered as it came
        return encoded.encode()

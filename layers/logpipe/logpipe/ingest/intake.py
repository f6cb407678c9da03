"""Ingest logic: turn decoded requests into normalized events and publish them to Kafka, once.

Every intake (one event, a batch in any of the protocols the edge decodes) ends here: a batch's items are validated
in one call of pydantic-core, each valid one turned into its Kafka record (logpipe.ingest.records), the records
published with one wait for Kafka's acknowledgement, and each item answered.

Idempotency (docs/ingest.md): a retried request with the same Idempotency-Key (or, for one event, the same
client `id`) gets the first answer back. Event ids under a key are derived (uuid5) from the organization, the
key and, in a batch, the item's index, so even a retry that publishes again (the first attempt failed after
Kafka acknowledged) carries the same ids, and storage keeps one row per (organization, id). A batch item without a
client id or a key gets its id from the organization, the digest of the request body and its index: log shippers
retry whole requests after a timeout or a 5xx, and each retried event is stored once.
"""

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from pydantic import TypeAdapter, ValidationError

from logpipe.config import Settings
from logpipe.errors import InvalidEventError, LogpipeError, OrganizationMismatchError
from logpipe.ingest import idempotency, publisher, rules
from logpipe.ingest.records import RecordMaker, event_record
from logpipe.models import (
    BatchAccepted,
    BatchItemResult,
    DecodedBatch,
    ErrorDetail,
    EventRecord,
    IngestAccepted,
    LogEventFields,
    LogEventIn,
    validation_problems,
)
from logpipe.observability import tracer

# Namespace of the event ids derived from idempotency keys (a fixed, random uuid: never change it).
EVENT_ID_NAMESPACE = UUID("3f6f7a2e-9c1b-4c4e-8a51-6f0d2b7c9e14")


_ITEM_FIELDS = TypeAdapter(list[LogEventFields])


class BatchRejectedError(InvalidEventError):
    """No item of a batch was accepted; details list every item's error."""

    code = "batch_rejected"


def derived_event_id(organization_id: str, key: str) -> UUID:
    """The id of the one event an idempotency key stands for: the same (organization, key), the same id."""
    return uuid5(EVENT_ID_NAMESPACE, json.dumps([organization_id, key, None]))


class _DerivedIds:
    """The ids of a batch's items without a client id: uuid5(namespace, JSON [organization, key]) with its last 32
    bits replaced by the item's index. The same (organization, key, index), the same id; the hash is taken once per
    organization of the batch, so an item's id costs one string format (a uuid5 per item would cost a SHA-1 and a
    UUID each). The 90 bits of hash left tell batches apart."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._prefixes: dict[str, str] = {}

    def __call__(self, organization_id: str, index: int) -> str:
        """The id as text, as the record holds it."""
        prefix = self._prefixes.get(organization_id)
        if prefix is None:
            prefix = str(uuid5(EVENT_ID_NAMESPACE, json.dumps([organization_id, self._key])))[:-8]
            self._prefixes[organization_id] = prefix
        return f"{prefix}{index:08x}"


def client_event_id(organization_id: str, client_id: str) -> UUID:
    """The event id of a client's own document id (Elasticsearch `_id`): the id itself when it is a UUID, else
    derived from (organization, id), so the same document sent again is stored once."""
    try:
        return UUID(client_id)
    except ValueError:
        return uuid5(EVENT_ID_NAMESPACE, json.dumps([organization_id, "client-id", client_id]))


def owning_organization(named: str | None, organization_id: str | None) -> str:
    """The organization an event belongs to: the caller's (when authenticated) or the one the event names."""
    if organization_id is None:
        if named is None:
            raise InvalidEventError("organizationId is required", details={"field": "organizationId"})
        return named
    if named not in (None, organization_id):
        raise OrganizationMismatchError(
            "the event names another organization than the API key's", details={"field": "organizationId"}
        )
    return organization_id


@tracer.capture_method
def ingest_event(
    event_in: LogEventIn, settings: Settings, idempotency_key: str | None = None, organization_id: str | None = None
) -> IngestAccepted:
    """Publish one event and answer once Kafka acknowledged it.

    With an Idempotency-Key, or else a client-chosen event id, a retry within the idempotency TTL gets the
    first answer back and publishes nothing.
    """
    organization = owning_organization(event_in.organization_id, organization_id)
    event_id = event_in.id or (derived_event_id(organization, idempotency_key) if idempotency_key else uuid4())
    fields = event_in.model_dump(by_alias=True)
    record = event_record(fields, organization, event_id, datetime.now(UTC), settings)

    def publish_event() -> IngestAccepted:
        publisher.publish([record], settings)
        return IngestAccepted(id=event_id)

    if idempotency_key is not None:
        scope = ["event-key", organization, idempotency_key]
    elif event_in.id is not None:
        scope = ["event-id", organization, str(event_in.id)]
    else:
        return publish_event()
    fingerprint = event_in.model_dump(mode="json", by_alias=True)
    return idempotency.once(scope, fingerprint, settings, publish_event, IngestAccepted)


def ingest_batch(
    batch: DecodedBatch,
    settings: Settings,
    idempotency_key: str | None = None,
    organization_id: str | None = None,
) -> BatchAccepted:
    """accept_batch, for the native batch route: raises BatchRejectedError when no item is valid."""
    answer = accept_batch(batch, settings, idempotency_key, organization_id)
    if not answer.accepted:
        raise BatchRejectedError(
            "no event of the batch was accepted", details={"items": answer.model_dump(mode="json")["items"]}
        )
    return answer


@tracer.capture_method
def accept_batch(
    batch: DecodedBatch,
    settings: Settings,
    idempotency_key: str | None = None,
    organization_id: str | None = None,
    *,
    receipts: bool = True,
) -> BatchAccepted:
    """Validate every item of a batch, publish the valid ones with one Kafka wait, answer per item (publishing
    nothing when no item is valid). `receipts=False` for a protocol whose answer names no event (OTLP, Loki push):
    nobody can ask for the status of an id they were never told, so no accept record is kept (one Redis set member
    per event, written by the producer and removed by the sink)."""
    items = batch.items
    ids = _DerivedIds(idempotency_key or f"sha256:{batch.digest}")
    validated, not_plain = _validated(items, settings)
    outcomes = _batch_records(validated, not_plain, RecordMaker(settings, datetime.now(UTC)), ids, organization_id)
    if not any(isinstance(outcome, EventRecord) for outcome in outcomes):
        return _batch_answer(outcomes)

    def publish_batch() -> BatchAccepted:
        publisher.publish([outcome for outcome in outcomes if isinstance(outcome, EventRecord)], settings, receipts)
        return _batch_answer(outcomes)

    if idempotency_key is None:
        return publish_batch()
    named = sorted({item.get("organizationId") for item in items if isinstance(item, dict)} - {None}, key=str)
    scope = ["batch-key", organization_id or named, idempotency_key]
    return idempotency.once(scope, batch.digest, settings, publish_batch, BatchAccepted)


def _validated(items: list[Any], settings: Settings) -> tuple[list[dict[str, Any] | ErrorDetail], set[int]]:
    """Each item's validated fields, or the error that refuses it alone, and the indexes of the valid items whose
    attributes are not plain (rules.plain_items). The batch is validated in one call of pydantic-core against the
    plain schema; the items it refuses, against the full one."""
    outcomes: list[Any] = [_error_detail(item) if isinstance(item, LogpipeError) else item for item in items]
    readable = [index for index, item in enumerate(items) if not isinstance(item, LogpipeError)]
    not_plain = _validate_into(outcomes, readable, rules.plain_items(settings))
    invalid = _validate_into(outcomes, sorted(not_plain), _ITEM_FIELDS)
    for index, problems in invalid.items():
        outcomes[index] = ErrorDetail(
            code="validation_failed",
            message="The event does not match the schema",
            details=validation_problems(problems),
        )
    return outcomes, not_plain.keys() - invalid.keys()


def _validate_into(outcomes: list[Any], indexes: list[int], schema: TypeAdapter) -> dict[int, list[Any]]:
    """Validate the items at `indexes` of `outcomes` as one list and put the valid ones' fields in their place;
    returns the errors of those the schema refuses, by index (the others are validated again without them)."""
    refused: dict[int, list[Any]] = defaultdict(list)
    try:
        valid = schema.validate_python([outcomes[index] for index in indexes])
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            position, *location = error["loc"]
            refused[indexes[position]].append({**error, "loc": location})
        indexes = [index for index in indexes if index not in refused]
        valid = schema.validate_python([outcomes[index] for index in indexes])
    for index, fields in zip(indexes, valid, strict=True):
        outcomes[index] = fields
    return refused


def _batch_records(
    validated: list[dict[str, Any] | ErrorDetail],
    not_plain: set[int],
    make: RecordMaker,
    ids: _DerivedIds,
    organization_id: str | None,
) -> list[EventRecord | ErrorDetail]:
    """The record of each valid item, or the error that refuses it alone; an item without a client id gets its id
    from (organization, the batch's key, index). One loop for the batch: this runs once per event."""
    outcomes: list[EventRecord | ErrorDetail] = []
    append = outcomes.append
    for index, fields in enumerate(validated):
        if isinstance(fields, ErrorDetail):
            append(fields)
            continue
        try:
            organization = owning_organization(fields.get("organizationId"), organization_id)
            append(make(fields, organization, fields.get("id") or ids(organization, index), index not in not_plain))
        except LogpipeError as error:
            append(_error_detail(error))
    return outcomes


def _error_detail(error: LogpipeError) -> ErrorDetail:
    return ErrorDetail(code=error.code, message=error.message, details=error.details)


def _batch_answer(outcomes: list[EventRecord | ErrorDetail]) -> BatchAccepted:
    items: list[BatchItemResult] = [
        {"index": index, "status": "accepted", "id": outcome.id, "error": None}
        if isinstance(outcome, EventRecord)
        else {"index": index, "status": "rejected", "id": None, "error": outcome}
        for index, outcome in enumerate(outcomes)
    ]
    rejected = sum(isinstance(outcome, ErrorDetail) for outcome in outcomes)
    accepted = len(outcomes) - rejected
    status = "rejected" if not accepted else "partial" if rejected else "success"
    return BatchAccepted.model_construct(status=status, accepted=accepted, rejected=rejected, items=items)

"""Ingest logic: turn decoded requests into normalized events and publish them to Kafka, once.

Every intake (one event, a batch in any of the protocols the edge decodes) ends here: items are validated one by
one, the valid ones published with one wait for Kafka's acknowledgement, and each item answered.

Idempotency (docs/ingest.md): a retried request with the same Idempotency-Key (or, for one event, the same
client `id`) gets the first answer back. Event ids under a key are derived (uuid5) from the organization, the
key and, in a batch, the item's index, so even a retry that publishes again (the first attempt failed after
Kafka acknowledged) carries the same ids, and storage keeps one row per (organization, id). A batch item without a
client id or a key gets its id from the organization, the digest of the request body and its index: log shippers
retry whole requests after a timeout or a 5xx, and each retried event is stored once.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from pydantic import TypeAdapter, ValidationError

from logpipe.config import Settings
from logpipe.errors import InvalidEventError, LogpipeError, OrganizationMismatchError
from logpipe.ingest import idempotency, publisher
from logpipe.ingest.rules import check_event
from logpipe.models import (
    BatchAccepted,
    BatchItemResult,
    DecodedBatch,
    ErrorDetail,
    IngestAccepted,
    LogEvent,
    LogEventIn,
    validation_problems,
)
from logpipe.observability import tracer

# Namespace of the event ids derived from idempotency keys (a fixed, random uuid: never change it).
EVENT_ID_NAMESPACE = UUID("3f6f7a2e-9c1b-4c4e-8a51-6f0d2b7c9e14")


_ITEM_RESULTS = TypeAdapter(list[BatchItemResult])


class BatchRejectedError(InvalidEventError):
    """No item of a batch was accepted; details list every item's error."""

    code = "batch_rejected"


def derived_event_id(organization_id: str, key: str, index: int | None = None) -> UUID:
    """The event id an idempotency key stands for: the same (organization, key, index), the same id."""
    return uuid5(EVENT_ID_NAMESPACE, json.dumps([organization_id, key, index]))


class _DerivedIds:
    """derived_event_id(organization, key, index) for the items of one batch, at a fraction of its cost: uuid5 is
    SHA-1 over the namespace and the name, and the names of an organization's items share the prefix
    `["<organization>", "<key>", `, hashed once per organization here."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._prefixes: dict[str, Any] = {}

    def __call__(self, organization_id: str, index: int) -> str:
        """The id as text: the event model parses it in its native validator, where UUID(bytes=...) would cost a
        Python constructor per event."""
        prefix = self._prefixes.get(organization_id)
        if prefix is None:
            name = json.dumps([organization_id, self._key, 0])[:-2]  # the JSON list up to its last element
            prefix = hashlib.sha1(EVENT_ID_NAMESPACE.bytes + name.encode(), usedforsecurity=False)
            self._prefixes[organization_id] = prefix
        digest = prefix.copy()
        digest.update(b"%d]" % index)
        hexed = digest.hexdigest()
        # uuid5's version (5) and RFC 4122 variant bits, as UUID(bytes=..., version=5) sets them
        variant = "89ab"[int(hexed[16], 16) & 3]
        return f"{hexed[:8]}-{hexed[8:12]}-5{hexed[13:16]}-{variant}{hexed[17:20]}-{hexed[20:32]}"


def client_event_id(organization_id: str, client_id: str) -> UUID:
    """The event id of a client's own document id (Elasticsearch `_id`): the id itself when it is a UUID, else
    derived from (organization, id), so the same document sent again is stored once."""
    try:
        return UUID(client_id)
    except ValueError:
        return uuid5(EVENT_ID_NAMESPACE, json.dumps([organization_id, "client-id", client_id]))


def owning_organization(event_in: LogEventIn, organization_id: str | None) -> str:
    """The organization an event belongs to: the caller's (when authenticated) or the one the event names."""
    if organization_id is None:
        if event_in.organization_id is None:
            raise InvalidEventError("organizationId is required", details={"field": "organizationId"})
        return event_in.organization_id
    if event_in.organization_id not in (None, organization_id):
        raise OrganizationMismatchError(
            "the event names another organization than the API key's", details={"field": "organizationId"}
        )
    return organization_id


def normalize_event(
    event_in: LogEventIn,
    settings: Settings,
    received_at: datetime,
    organization_id: str | None = None,
    event_id: UUID | str | None = None,
) -> LogEvent:
    """Apply the limits and fill in organization, id (a UUID, or its text) and timestamp; raises a 4xx domain error
    on violation."""
    check_event(event_in, settings, received_at)
    return LogEvent(
        id=event_in.id or event_id or uuid4(),
        organization_id=owning_organization(event_in, organization_id),
        level=event_in.level,
        message=event_in.message,
        source=event_in.source,
        timestamp=(event_in.timestamp or received_at).astimezone(UTC),
        received_at=received_at,
        attributes=event_in.attributes,
        trace_id=event_in.trace_id,
        span_id=event_in.span_id,
    )


@tracer.capture_method
def ingest_event(
    event_in: LogEventIn, settings: Settings, idempotency_key: str | None = None, organization_id: str | None = None
) -> IngestAccepted:
    """Publish one event and answer once Kafka acknowledged it.

    With an Idempotency-Key, or else a client-chosen event id, a retry within the idempotency TTL gets the
    first answer back and publishes nothing.
    """
    organization = owning_organization(event_in, organization_id)
    event_id = event_in.id or (derived_event_id(organization, idempotency_key) if idempotency_key else None)
    event = normalize_event(event_in, settings, datetime.now(UTC), organization, event_id)

    def publish_event() -> IngestAccepted:
        publisher.publish([event], settings)
        return IngestAccepted(id=event.id)

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
) -> BatchAccepted:
    """Validate every item of a batch, publish the valid ones with one Kafka wait, answer per item (publishing
    nothing when no item is valid)."""
    items = batch.items
    received_at = datetime.now(UTC)
    ids = _DerivedIds(idempotency_key or f"sha256:{batch.digest}")
    outcomes = [
        _batch_item(item, index, settings, received_at, ids, organization_id) for index, item in enumerate(items)
    ]
    if not any(isinstance(outcome, LogEvent) for outcome in outcomes):
        return _batch_answer(outcomes)

    def publish_batch() -> BatchAccepted:
        publisher.publish([outcome for outcome in outcomes if isinstance(outcome, LogEvent)], settings)
        return _batch_answer(outcomes)

    if idempotency_key is None:
        return publish_batch()
    named = sorted({item.get("organizationId") for item in items if isinstance(item, dict)} - {None}, key=str)
    scope = ["batch-key", organization_id or named, idempotency_key]
    return idempotency.once(scope, batch.digest, settings, publish_batch, BatchAccepted)


def _batch_item(
    item: Any,
    index: int,
    settings: Settings,
    received_at: datetime,
    ids: _DerivedIds,
    organization_id: str | None,
) -> LogEvent | ErrorDetail:
    """The normalized event for one item, or the error that refuses it alone; without a client id, its id is
    derived from (organization, the batch's key, index)."""
    if isinstance(item, LogpipeError):  # an item the decoder could not read (an NDJSON line that is not JSON)
        return _error_detail(item)
    try:
        event_in = LogEventIn.model_validate(item)
        organization = owning_organization(event_in, organization_id)
        event_id = None if event_in.id else ids(organization, index)
        return normalize_event(event_in, settings, received_at, organization, event_id)
    except ValidationError as exc:
        problems = validation_problems(exc.errors(include_url=False, include_input=False))
        return ErrorDetail(code="validation_failed", message="The event does not match the schema", details=problems)
    except LogpipeError as error:
        return _error_detail(error)


def _error_detail(error: LogpipeError) -> ErrorDetail:
    return ErrorDetail(code=error.code, message=error.message, details=error.details)


def _batch_answer(outcomes: list[LogEvent | ErrorDetail]) -> BatchAccepted:
    # One validation of plain dicts: a model built per item would cost a Python call each.
    results = _ITEM_RESULTS.validate_python(
        [
            {"index": index, "status": "accepted", "id": outcome.id}
            if isinstance(outcome, LogEvent)
            else {"index": index, "status": "rejected", "error": outcome}
            for index, outcome in enumerate(outcomes)
        ]
    )
    rejected = sum(result.status == "rejected" for result in results)
    accepted = len(results) - rejected
    return BatchAccepted(
        status="rejected" if not accepted else "partial" if rejected else "success",
        accepted=accepted,
        rejected=rejected,
        items=results,
    )

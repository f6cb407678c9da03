"""Pydantic models: the ingest request body, the normalized event (Kafka value) and API answers."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, NotRequired
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, with_config
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict  # pydantic takes typing.TypedDict only from Python 3.12 (3.11 runs locally)

# The longest organization id ingest accepts (keys, API keys and dead-letter records rely on the bound).
MAX_ORGANIZATION_ID_CHARS = 128
ORGANIZATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: such a parameter is a 422, not a driver error


class Level(StrEnum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"

    @classmethod
    def parse(cls, value: Any) -> "Level":
        """Case-insensitive; WARNING is accepted as WARN."""
        if isinstance(value, str):
            name = value.strip().upper()
            return cls("WARN" if name == "WARNING" else name)
        return cls(value)


# The fields of an event as a client sends them, shared by the single-event body (LogEventIn) and the batch items
# (LogEventFields): one definition of each constraint.
LevelName = Annotated[Level, BeforeValidator(Level.parse)]
OrganizationId = Annotated[
    str, Field(min_length=1, max_length=MAX_ORGANIZATION_ID_CHARS, pattern=ORGANIZATION_ID_PATTERN)
]
Message = Annotated[str, Field(min_length=1)]
Source = Annotated[str, Field(min_length=1, max_length=256)]
TraceContextId = Annotated[str, Field(max_length=128)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class LogEventIn(CamelModel):
    """What a client sends: the seed's four fields plus optional metadata."""

    model_config = ConfigDict(extra="forbid")

    # Optional in the body when the caller's API key names the organization (see logpipe.ingest.intake).
    organization_id: OrganizationId | None = None
    level: LevelName
    message: Message
    source: Source
    id: UUID | None = None
    timestamp: AwareDatetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    trace_id: TraceContextId | None = None
    span_id: TraceContextId | None = None


@with_config(ConfigDict(extra="forbid"))
class LogEventFields(TypedDict):
    """A batch item as the batch path validates it: LogEventIn's fields and rules, as a TypedDict, so a whole
    batch validates in one call of pydantic-core and yields plain dicts (a model instance per item would cost a
    Python constructor each). tests/unit/test_models.py keeps the two schemas identical."""

    organizationId: NotRequired[OrganizationId | None]
    level: LevelName
    message: Message
    source: Source
    id: NotRequired[UUID | None]
    timestamp: NotRequired[AwareDatetime | None]
    attributes: NotRequired[dict[str, Any]]
    traceId: NotRequired[TraceContextId | None]
    spanId: NotRequired[TraceContextId | None]


class LogEvent(CamelModel):
    """The normalized event: the Kafka record value and the stored row."""

    id: UUID
    organization_id: str
    level: Level
    message: str
    source: str
    timestamp: datetime
    received_at: datetime
    attributes: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None


class EventRecord(NamedTuple):
    """An accepted event as its Kafka record: the organization (the record's key), the event's id, when it was
    received, and the value, LogEvent's JSON (logpipe.ingest.records builds it)."""

    organization_id: str
    id: str
    received_at: datetime
    value: bytes


@dataclass(frozen=True)
class DecodedBatch:
    """A batch request decoded by its protocol's decoder: the items (each in LogEventFields' shape, or the error
    that made it unreadable) and the digest of the body, the idempotency fingerprint of the whole batch."""

    items: list[Any]
    digest: str

    @classmethod
    def of(cls, items: list[Any], body: bytes) -> "DecodedBatch":
        return cls(items, hashlib.sha256(body).hexdigest())


class IngestAccepted(BaseModel):
    status: Literal["success"] = "success"
    id: UUID
    message: str = "Log event queued for processing"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class BatchItemResult(TypedDict):
    """One item of a batch: accepted with its id, or rejected with the error it alone caused (a TypedDict: a
    batch's thousand results are plain dicts, not a model each; the id is the text its record holds)."""

    index: int
    status: Literal["accepted", "rejected"]
    id: Annotated[str, Field(json_schema_extra={"format": "uuid"})] | None
    error: ErrorDetail | None


class BatchAccepted(BaseModel):
    """The answer to a batch: "success" when every item was accepted, "partial" when some were rejected, "rejected"
    when none was (the native route answers that as an error, the shipper protocols in their own shapes). The batch
    path constructs it from results it made itself (logpipe.ingest.intake): validating a thousand items it just
    built would cost about a microsecond per event."""

    status: Literal["success", "partial", "rejected"]
    accepted: int
    rejected: int
    items: list[BatchItemResult]


def validation_problems(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as the API reports them: field path, message, type."""
    return [
        {"field": _field_path(error.get("loc", ())), "message": error.get("msg", ""), "type": error.get("type")}
        for error in errors
    ]


def _field_path(location: Any) -> str:
    return ".".join(str(part) for part in location) or "body"

"""Pydantic models of the gateway's API: API keys, event pages, statuses and stats."""

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from logpipe.models import CamelModel, LogEvent

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: such a parameter is a 422, not a driver error


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class NewApiKey(CamelModel):
    scopes: list[Scope] = Field(min_length=1)
    name: str = Field(default="", max_length=200, pattern=NO_NUL)


class ApiKey(CamelModel):
    """What can be shown of a key after its creation: never the key itself."""

    id: UUID
    organization_id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedApiKey(ApiKey):
    key: str = Field(description="The API key; shown only in this answer")


class ApiKeyList(CamelModel):
    items: list[ApiKey]


class LogPage(CamelModel):
    items: list[LogEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last")


class EventStatus(CamelModel):
    id: UUID
    status: Literal["queued", "stored", "dead_lettered"]
    reason: str | None = None


class Stats(CamelModel):
    from_: datetime = Field(alias="from")
    to: datetime
    total: int
    by_level: dict[str, int]
    by_source: dict[str, int]

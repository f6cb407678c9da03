"""Pydantic models of the read API's answers: event pages, statuses, stats and health."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from logpipe.models import CamelModel, LogEvent


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


DependencyStatus = Literal["up", "down"]


class DependencyHealth(BaseModel):
    status: DependencyStatus
    latency_ms: float = Field(serialization_alias="latencyMs")
    error: str | None = None


class HealthReport(BaseModel):
    status: DependencyStatus
    dependencies: dict[str, DependencyHealth]

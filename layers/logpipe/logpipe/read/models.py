"""Pydantic models of the read API's answers: event pages, statuses, stats, histograms, context and health."""

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


# /api/stats lists this many sources at most, those with the most events: 1,000 names of up to 256 bytes stay far
# below Lambda's 6 MB response (and the cached answer small), however many sources an organization writes.
MAX_SOURCES = 1000


class Stats(CamelModel):
    from_: datetime = Field(alias="from")
    to: datetime
    total: int
    by_level: dict[str, int]
    by_source: dict[str, int] = Field(description=f"Events per source: the {MAX_SOURCES:,} with the most events")


DependencyStatus = Literal["up", "down"]


class DependencyHealth(BaseModel):
    status: DependencyStatus
    latency_ms: float = Field(serialization_alias="latencyMs")
    error: str | None = None


class HealthReport(BaseModel):
    status: DependencyStatus
    dependencies: dict[str, DependencyHealth]


class HistogramBucket(CamelModel):
    start: datetime = Field(description="The bucket's first instant (buckets are [start, start + bucketSeconds))")
    counts: dict[str, int] = Field(description="Events per level; a level without events is absent")


class Histogram(CamelModel):
    from_: datetime = Field(alias="from")
    to: datetime
    bucket_seconds: int = Field(description="Every bucket's width: a round step (1 s, 5 s, ... 1 d, whole days)")
    buckets: list[HistogramBucket] = Field(description="Every bucket overlapping [from, to), oldest first")


class EventContext(CamelModel):
    before: list[LogEvent] = Field(description="The events of the same source just before it, oldest first")
    event: LogEvent
    after: list[LogEvent] = Field(description="The events of the same source just after it, oldest first")

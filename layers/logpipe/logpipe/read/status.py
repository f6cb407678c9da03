"""Where an accepted event id is: `stored` when log_event_ids holds it for the organization, `dead_lettered` when
the sink recorded it as such, `queued` while its accept record lives in Redis, otherwise not found."""

from uuid import UUID

from logpipe.config import Settings
from logpipe.errors import EventNotFoundError
from logpipe.read.models import EventStatus
from logpipe.receipts import accepted, outcomes


def event_status(organization_id: str, event_id: UUID, settings: Settings) -> EventStatus:
    stored, dead_letter_reason = outcomes.find_outcome(organization_id, event_id)
    if stored:
        return EventStatus(id=event_id, status="stored")
    if dead_letter_reason is not None:
        return EventStatus(id=event_id, status="dead_lettered", reason=dead_letter_reason)
    if accepted.was_accepted(organization_id, event_id, settings):
        return EventStatus(id=event_id, status="queued")
    raise EventNotFoundError(f"no accepted event {event_id}")
